import { z } from 'zod';

/** `gate:` — how the dev gate runs pytest and alembic inside the api service. */
export const gateSchema = z
  .object({
    /** The service to run in; default: the environment's api-service. */
    service: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be a compose service name')
      .optional(),
    'pytest-command': z.array(z.string().min(1)).min(1).default(['pytest']),
    'pytest-args': z.array(z.string()).default([]),
    alembic: z.boolean().default(true),
    'timeout-seconds': z.number().int().min(30).max(86400).default(1800),
  })
  .strict()
  .default({});
