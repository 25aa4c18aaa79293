import { z } from 'zod';

const serviceName = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'must be a compose service name');

/**
 * `promote:` — how promote (and rollback) switch prod's containers. Services in `rolling` (stateless
 * ones: api, web) are replaced with no failed request: a new container beside the old one, the old one
 * drained and removed (src/domain/rolling.ts); the rest are recreated in place by `up -d`. Whether each
 * rolling service is named in prod's compose files and fits the technique is checked by preflight.
 */
export const promoteSchema = z
  .object({
    rolling: z
      .array(serviceName)
      .default([])
      .refine((l) => new Set(l).size === l.length, 'names a service twice'),
    /** How long an old container may finish its requests after SIGTERM before it is killed (`docker stop -t`). */
    'drain-seconds': z.number().int().min(0).max(600).default(10),
  })
  .strict()
  .default({});

export type PromoteSettings = z.output<typeof promoteSchema>;
