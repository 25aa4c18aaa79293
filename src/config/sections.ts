/**
 * Config sections owned by individual capabilities (backup, sample, preflight, monitor...).
 * Each capability exports its zod schema from its own module; they are gathered here so the
 * top-level schema stays strict.
 */
import { gateSchema } from './gate';
import { monitorSchema, preflightSchema } from '../safety/config';

export const sectionSchemas = {
  preflight: preflightSchema,
  monitor: monitorSchema,
  gate: gateSchema,
};
