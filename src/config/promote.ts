import { z } from 'zod';

const service = z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'must be a compose service name');

/**
 * `promote:` — how flip-the-switch moves dev's gated commit to prod: which branch it must come from,
 * the rehearsal of its migrations on a full copy of prod, the real migration's lock timeout, the
 * services stopped while it runs (write freeze), and how prod's containers are switched. Services in
 * `rolling` (stateless ones: api, web) are replaced with no failed request: a new container beside
 * the old one, the old one drained and removed (src/domain/rolling.ts); the rest are recreated in
 * place by `up -d`. Whether each rolling service fits the technique is checked by preflight.
 */
export const promoteSchema = z
  .object({
    /** The commit promoted must be on this branch of the remote (an ancestor of its tip); a pattern such as release/* matches several. */
    branch: z
      .string()
      .regex(/^[A-Za-z0-9._/*-]+$/, 'must be a branch name or pattern (letters, digits, . _ / - and *)')
      .default('main'),
    /** Rehearse the migrations on a copy of prod restored from the fresh backup: when some are pending (auto), always, or never. */
    rehearse: z.enum(['auto', 'always', 'never']).default('auto'),
    /** Refuse when the rehearsal holds an ACCESS EXCLUSIVE lock on one table longer than this (milliseconds). */
    'max-exclusive-lock-ms': z.number().int().min(1).max(86_400_000).optional(),
    /** The app's variable naming its database (a URL or a bare name): the rehearsal points it at the copy. */
    'database-env': z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
      .default('DATABASE_URL'),
    /** lock_timeout of the real migration (through PGOPTIONS), so it never queues behind prod's traffic for long. */
    'lock-timeout-ms': z.number().int().min(100).max(600_000).default(5000),
    /** Attempts of the real migration when it gives up waiting for a lock. */
    'migration-attempts': z.number().int().min(1).max(10).default(3),
    /** The person who dispatches the promotion must not be the one who pushed the commit (two-person rule). */
    'require-different-actor': z.boolean().default(false),
    /** Services that write, stopped from the backup to the end so a restore loses nothing (costs downtime). */
    'write-freeze': z.array(service).default([]),
    /** Stateless services switched with no failed request (see src/domain/rolling.ts). */
    rolling: z
      .array(service)
      .default([])
      .refine((l) => new Set(l).size === l.length, 'names a service twice'),
    /**
     * Run prod's containers from a directory of their own release (`<state-dir>/releases/prod/<sha>`,
     * a git worktree with the env file copied in) instead of the checkout: code the services
     * bind-mount from the checkout (Makapix's `../../api:/workspace/api`) then never changes under a
     * running container, old and new containers run side by side during a rolling switch, and a
     * rollback starts the previous release from its own directory.
     */
    'release-dirs': z.boolean().default(false),
    /** Files the stack needs that git does not hold (beside the env file, always copied), copied from the checkout into each release directory. */
    'release-files': z
      .array(
        z
          .string()
          .regex(/^[A-Za-z0-9._@+-][A-Za-z0-9._@+/-]*$/, 'must be a path relative to the checkout')
          .refine((f) => !f.split('/').includes('..'), 'must stay inside the checkout'),
      )
      .default([]),
    /** How long an old container may finish its requests after SIGTERM before it is killed (`docker stop -t`). */
    'drain-seconds': z.number().int().min(0).max(600).default(10),
    /**
     * Before an old container of a rolling service stops, wait until requests through the proxy
     * (prod's url + path, curl on the host) come back with `header` naming the new container: its
     * short id or address, or its hostname unless the old container has the same one (a fixed
     * `hostname:`) (Caddy: `header_down X-Upstream {http.reverse_proxy.upstream.hostport}`).
     * Without it, the proxy gets a fixed 3 s to notice the new container.
     */
    'route-probe': z
      .object({
        header: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be an HTTP header name'),
        path: z
          .string()
          .regex(/^\/[^\s]*$/, 'must be a path starting with /')
          .optional(),
        'timeout-seconds': z.number().int().min(1).max(600).default(30),
      })
      .strict()
      .optional(),
  })
  .strict()
  .default({});

export type PromoteSettings = z.output<typeof promoteSchema>;
