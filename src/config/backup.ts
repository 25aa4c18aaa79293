import { z } from 'zod';

/** `backup:` — where pg_dump backups go on the host, how they are verified, how many are kept. */
export const backupSchema = z
  .object({
    /** On the host, outside every checkout. Each environment gets a subdirectory. */
    dir: z
      .string()
      .regex(/^\/[A-Za-z0-9._/@+-]*$/, 'must be an absolute path of letters, digits and . _ / @ + -')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
      .transform((p) => p.replace(/\/+$/, ''))
      .default('/var/backups/twinstack'),
    /** How many verified backups to keep per environment (the newest verified one is never deleted). */
    keep: z.number().int().min(1).max(1000).default(7),
    /** `list`: pg_restore --list and the checksum; `restore`: also restore into a scratch database and compare row counts. */
    verify: z.enum(['list', 'restore']).default('list'),
    'timeout-seconds': z.number().int().min(60).max(86400).default(7200),
  })
  .strict()
  .default({});
