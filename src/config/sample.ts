/**
 * The `sample` and `vault-sync` config sections: what the nightly resample copies from production
 * into dev, how each sensitive column is rewritten, and which vault files follow the rows.
 */
import { z } from 'zod';
import { fragmentProblem, type SqlFragmentKind } from './sql-guard';
import { representativenessSchema } from './representativeness';

/** `users` or `schema.users`: an unquoted PostgreSQL table name. */
const tableName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$/, 'must be a table name such as users or public.users');

/** `users.email` or `public.users.email`. */
const columnRef = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){1,2}$/, 'must name a column as table.column or schema.table.column');

/** `comments(author_id)`, `public.follows(a_id,b_id)` or a constraint name. */
const foreignKeyRef = z
  .string()
  .regex(
    /^([A-Za-z_][A-Za-z0-9_$]*\.)?[A-Za-z_][A-Za-z0-9_$]*(\(\s*[A-Za-z_][A-Za-z0-9_$]*(\s*,\s*[A-Za-z_][A-Za-z0-9_$]*)*\s*\))?$/,
    'must be table(column, ...) or a constraint name',
  );

const WRITE: Record<SqlFragmentKind, string> = {
  expression: 'one SQL expression over the row (columns, constants, operators, casts, CASE and read-only functions)',
  query: "one SELECT over dev's tables",
  statement: 'one UPDATE, INSERT, DELETE or REFRESH MATERIALIZED VIEW',
};

/** SQL text from the config, parsed by PostgreSQL's parser and refused in one line unless every node is allowed (sql-guard.ts). */
function sqlFragment(kind: SqlFragmentKind, max = 2000) {
  return z
    .string()
    .min(1)
    .max(max)
    .superRefine((text, ctx) => {
      const problem = fragmentProblem(text, kind);
      if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${problem}; write ${WRITE[kind]}` });
    });
}

/**
 * What happens to a column's value on its way out of production. YAML's bare `null` means the
 * `null` rule. `keep` copies the value as it is (the column holds nothing personal, e.g. a storage
 * key); `rehash`, `fake-email` and `fake-name` are derived from a keyed hash of the value (the key
 * comes from the seed): the same value gives the same masked value in every table and every run
 * with that seed, and different values stay different, so unique columns stay unique. `rehash` is
 * 32 hex digits (an address in fd00::/8 for inet columns), `fake-email` an address at
 * example.invalid, `fake-name` an invented first and last name (with a hash suffix on a unique
 * column). `dev-password` is one hash of the dev password input; `sql` is one expression over the
 * row's columns, evaluated in production (parsed by PostgreSQL's parser and walked against an
 * allowlist in sql-guard.ts: columns, constants, operators, allowed casts and read-only functions).
 */
export const columnRuleSchema = z.union([
  z.null().transform(() => 'null' as const),
  z.enum(['keep', 'null', 'rehash', 'fake-email', 'fake-name', 'dev-password']),
  z.object({ sql: sqlFragment('expression') }).strict(),
]);
export type ColumnRule = z.output<typeof columnRuleSchema>;

/**
 * `structure` sits between `drop` and `include`: the parent comes along for the shape of the data
 * (an ancestor comment of a sampled reply) but is no member of the sample: its keys to owners
 * outside the sample point at the owner table's placeholder row (sample.placeholders), or are
 * nulled where nullable, and nothing else of those owners follows. A row whose parent cannot come
 * is left out, never copied with the reference cleared.
 */
export const foreignKeyPolicySchema = z.union([z.null().transform(() => 'null' as const), z.enum(['include', 'structure', 'null', 'drop'])]);
export type ForeignKeyPolicy = z.output<typeof foreignKeyPolicySchema>;

/**
 * A foreign key's entry: its policy alone, or `{policy, owns}`. `owns: false`: rows of the table do
 * not come along through this key (a player's current post does not make the player part of the
 * sample); only its owning keys bring them. The policy still resolves the reference.
 */
export const foreignKeySettingSchema = z.union([
  foreignKeyPolicySchema,
  z
    .object({ policy: foreignKeyPolicySchema.optional(), owns: z.boolean().optional() })
    .strict()
    .refine((o) => o.policy !== undefined || o.owns !== undefined, 'give policy (include, structure, null or drop), owns (true or false), or both'),
]);
export type ForeignKeySetting = z.output<typeof foreignKeySettingSchema>;

/**
 * A reference without a foreign key (a virtual reference): `keys` is one expression over the child
 * table's columns that yields the parent key, or an array of them (ids in an array column, the
 * labels of an ltree path as `string_to_array(ltree2text(path), '.')`). `to` is the parent table,
 * matched on its one-column primary key, or `table(column)`. The sample treats it as a foreign key
 * that owns nothing: `drop` (default) leaves out a child with a parent outside the sample, `include`
 * brings the parents along (an ancestor's ancestors too), `null` clears `column` instead.
 */
export const referenceSchema = z
  .object({
    table: tableName,
    keys: sqlFragment('expression'),
    to: foreignKeyRef,
    policy: z.enum(['include', 'structure', 'null', 'drop']).default('drop'),
    column: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_$]*$/, 'must be a column name')
      .optional(),
  })
  .strict()
  .refine((r) => r.policy !== 'null' || r.column !== undefined, {
    message: 'policy null needs column: the column to clear when a parent is missing',
    path: ['column'],
  })
  .refine((r) => r.policy !== 'structure' || r.column === undefined, {
    message: 'policy structure clears nothing (a row whose parent cannot come is left out); remove column, or use policy null',
    path: ['column'],
  });
export type ReferenceSetting = z.output<typeof referenceSchema>;

/** A column name, unquoted. */
const columnName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]*$/, 'must be a column name');

const keyValue = z.union([z.number().int(), z.string().min(1).max(200)]).transform(String);

/**
 * The placeholder row of an owner table (a "deleted" person, as forums show for removed accounts):
 * rows brought along for structure point at it instead of at their real owner, who stays outside
 * the sample. `key` is its primary key (a value production does not use), or for a primary key of
 * several columns a map naming each; `values` gives other columns as SQL constant expressions
 * (checked like every SQL fragment), the rest take their default.
 */
export const placeholderSchema = z
  .object({
    key: z.union([keyValue, z.record(columnName, keyValue)]),
    values: z.record(columnName, sqlFragment('expression', 500)).default({}),
  })
  .strict();
export type PlaceholderSetting = z.output<typeof placeholderSchema>;

/** Name fragments that make a column count as sensitive (matched against the words of its name). */
export const DEFAULT_SENSITIVE_NAMES = [
  'email',
  'password',
  'passwd',
  'pwd',
  'secret',
  'token',
  'key',
  'cert',
  'ip',
  'phone',
  'mobile',
  'address',
  'salt',
  'private',
  'credential',
  'otp',
  'totp',
  'iban',
  'ssn',
  'birth',
];

export const sampleSchema = z
  .object({
    /** The table whose rows are sampled; everything that belongs to a sampled row comes along. */
    root: tableName.default('users'),
    fraction: z.number().min(0).max(1).default(0.1),
    /** Membership is a hash of (seed, key): the same seed picks the same rows every night. */
    seed: z.string().min(1).max(200).default('twinstack'),
    /** A SQL condition over the root's columns, e.g. `banned_until IS NULL`. */
    filter: sqlFragment('expression').optional(),
    /** Root keys (as text) always sampled: developers' own and test accounts. */
    include: z.array(z.union([z.string().min(1).max(200), z.number()]).transform(String)).default([]),
    /** Tables copied whole (licenses, badge definitions, alembic_version). */
    'reference-tables': z.array(tableName).default([]),
    /** Tables copied empty whatever reaches them (token tables, sessions). */
    'empty-tables': z.array(tableName).default([]),
    /**
     * Public values, declared (catalog data, enums, lookup tables): every column of these tables,
     * and these columns, hold nothing personal. They are kept unless a rule says otherwise, never
     * probed by the leak scan, and a probe found in them is not a leak (an actor's surname that is
     * also a customer's).
     */
    'public-tables': z.array(tableName).default([]),
    'public-columns': z.array(columnRef).default([]),
    /**
     * Per foreign key: include the referenced row, null the column, or drop the referencing row;
     * and whether the key owns its rows (`owns: false`: rows do not come along through it).
     */
    'foreign-keys': z.record(foreignKeyRef, foreignKeySettingSchema).default({}),
    /** References the schema keeps without a foreign key (ltree paths, arrays of ids), resolved like foreign keys. */
    references: z.array(referenceSchema).max(200).default([]),
    /** Per owner table: the placeholder row that rows brought along for structure point at (policy structure). */
    placeholders: z.record(tableName, placeholderSchema).default({}),
    /** Per column: keep, null, rehash, dev-password, or {sql: expression}. */
    columns: z.record(columnRef, columnRuleSchema).default({}),
    'sensitive-names': z
      .array(z.string().regex(/^[a-z0-9]+$/, 'must be a lower-case word'))
      .min(1)
      .default(DEFAULT_SENSITIVE_NAMES),
    /** The format of the dev password hash, matching what the app verifies. */
    'password-hash': z.enum(['pbkdf2-sha256', 'django-pbkdf2-sha256', 'pgcrypto-bcrypt']).default('pbkdf2-sha256'),
    /** Run the app's migrations on the refreshed dev database (dev may be ahead of production). */
    migrate: z.boolean().default(true),
    'migrate-command': z.array(z.string().min(1)).min(1).default(['alembic', 'upgrade', 'head']),
    /**
     * The role production is read through: the server keeps it read-only (reader.ts). Created by
     * twinstack through production's user when missing; a role that could write is refused.
     */
    'reader-role': z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a role name of lower-case letters, digits and _')
      .default('twinstack_reader'),
    /** A database on dev's server to connect to while dev's own is renamed. */
    'maintenance-database': z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, 'must be a database name')
      .default('postgres'),
    'leak-scan': z
      .object({
        'values-per-column': z.number().int().min(1).max(1000).default(20),
        'min-length': z.number().int().min(3).max(100).default(6),
      })
      .strict()
      .default({}),
    /** After the swap, wait for dev's services to be healthy and its health URL to answer. */
    'health-check': z.boolean().default(true),
    /**
     * SQL run in the staging database after the rows, constraints and sequences are in and before the
     * swap, in order: derived data the load bypassed (counts and totals kept by triggers) made true again.
     */
    'after-load': z.array(sqlFragment('statement', 8000)).max(100).default([]),
    /** A sampled table whose copied fraction is outside bounds × fraction is a warning naming the policy responsible. */
    representativeness: representativenessSchema,
  })
  .strict()
  .default({});
export type SampleSettings = z.output<typeof sampleSchema>;

/** Checked like any query when written in the config; the default needs no parser (a config without SQL parses before it loads). */
const DEFAULT_VAULT_QUERY = "SELECT storage_shard || '/' || storage_key || '.' || format FROM posts";

export const vaultSyncSchema = z
  .object({
    /** SQL on the refreshed dev database returning one relative vault path per row. */
    query: sqlFragment('query', 4000)
      .optional()
      .transform((q) => q ?? DEFAULT_VAULT_QUERY),
    /**
     * Other files derived from each path, copied when they exist in production: `{stem}` is the
     * path without its extension, `{path}` the whole path, `{ext}` the extension without the dot.
     */
    variants: z.array(z.string().regex(/^[A-Za-z0-9{}._/@+-]+$/, 'must be a pattern such as {stem}_upscaled.webp')).default(['{stem}_upscaled.webp']),
    /** Remove files from the dev vault that the dev database no longer references. */
    delete: z.boolean().default(true),
  })
  .strict()
  .default({});
export type VaultSyncSettings = z.output<typeof vaultSyncSchema>;
