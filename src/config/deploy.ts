import { z } from 'zod';

/**
 * `deploy:` — what the deploy action may do. Prod normally changes only through promote (the commit
 * that passed on dev, after a backup, with its rollback); deploying prod directly is for the first
 * install or a repair, and has to be switched on here.
 */
export const deploySchema = z
  .object({
    'allow-prod': z.boolean().default(false),
  })
  .strict()
  .default({});
