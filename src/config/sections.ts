/**
 * Config sections owned by individual capabilities (backup, sample, preflight, monitor...).
 * Each capability exports its zod schema from its own module; they are gathered here so the
 * top-level schema stays strict.
 */
import { backupSchema } from './backup';
import { deploySchema } from './deploy';
import { gateSchema } from './gate';
import { promoteSchema } from './promote';
import { monitorSchema, preflightSchema } from './checks';
import { sampleSchema, vaultSyncSchema } from './sample';
import { swarmSchema } from './swarm';

export const sectionSchemas = {
  sample: sampleSchema,
  'vault-sync': vaultSyncSchema,
  preflight: preflightSchema,
  monitor: monitorSchema,
  gate: gateSchema,
  deploy: deploySchema,
  backup: backupSchema,
  promote: promoteSchema,
  swarm: swarmSchema,
};
