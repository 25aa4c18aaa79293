/**
 * Config sections owned by individual capabilities (backup, sample, preflight, monitor...).
 * Each capability exports its zod schema from its own module; they are gathered here so the
 * top-level schema stays strict.
 */
export const sectionSchemas = {};
