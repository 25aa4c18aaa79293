/**
 * `resample` with `init: true`: a starter `sample:` section written from production's catalog, so
 * nobody has to list a schema's columns by hand. Every copied text, JSON or address column gets a
 * rule (the run refuses any without one); free text gets a masking rule, never `keep`, until a
 * person decides it holds nothing personal. Pure: catalog in, YAML text out.
 */
import { parse as parseYaml } from 'yaml';
import type { Catalog, Column, Table } from './catalog';
import { maxLength, nameWords, needsRule, RuleError, ruleExpression, sensitiveMatch } from './anonymize';
import { buildPlan } from './plan';
import { DEFAULT_SENSITIVE_NAMES, sampleSchema, type ColumnRule, type SampleSettings } from '../config/sample';
import { ident } from '../infra/sql';

const ROOT_NAMES = ['users', 'user', 'accounts', 'account', 'customers', 'customer', 'members', 'member', 'people', 'persons', 'person'];
const MIGRATION_TABLES = ['alembic_version', 'schema_migrations', 'django_migrations', 'flyway_schema_history', 'knex_migrations', 'ar_internal_metadata'];
/** Tables whose rows are credentials or sessions: dev starts without them. */
const SECRET_TABLE_WORDS = ['token', 'tokens', 'session', 'sessions', 'otp', 'otps', 'nonce', 'nonces', 'credential', 'credentials', 'secret', 'secrets'];

/** What a column's name says it holds, in the order the words are tried. */
const KINDS: Array<{ words: string[]; kind: 'email' | 'password' | 'ip' | 'secret' | 'name' | 'contact' }> = [
  { words: ['email', 'mail'], kind: 'email' },
  { words: ['password', 'passwd', 'pwd'], kind: 'password' },
  { words: ['ip'], kind: 'ip' },
  { words: ['secret', 'token', 'key', 'cert', 'salt', 'private', 'credential', 'otp', 'totp', 'hash', 'signature'], kind: 'secret' },
  { words: ['name', 'first', 'last', 'full', 'display', 'nick', 'nickname', 'surname', 'given', 'handle', 'username', 'login'], kind: 'name' },
  {
    words: [
      'phone',
      'mobile',
      'address',
      'street',
      'city',
      'zip',
      'postcode',
      'location',
      'iban',
      'ssn',
      'birth',
      'birthday',
      'dob',
      'geo',
      'lat',
      'lon',
      'latitude',
      'longitude',
    ],
    kind: 'contact',
  },
];

/** Contact words that name a person's own data even in a lookup table (a store's address row holds a phone). */
const PERSONAL_CONTACT = ['phone', 'mobile', 'address', 'street', 'zip', 'postcode', 'postal', 'iban', 'ssn', 'birth', 'birthday', 'dob'];

/** What the column's name says it holds. */
function kindOf(column: Pick<Column, 'name'>): (typeof KINDS)[number]['kind'] | undefined {
  const words = nameWords(column.name);
  return KINDS.find((k) => words.some((w) => k.words.includes(w)))?.kind;
}

/** A column that holds a person's data by its name: an address's phone, a staff member's e-mail. */
function personalByName(column: Pick<Column, 'name' | 'category'>): boolean {
  const kind = kindOf(column);
  if (kind === 'email' || kind === 'password' || kind === 'ip' || kind === 'secret') return true;
  return kind === 'contact' && nameWords(column.name).some((w) => PERSONAL_CONTACT.includes(w));
}

/**
 * A lookup table's column that is personal all the same: personal by its name, named like a
 * sensitive column or in a table so named (the run probes those), or a name in a table that holds
 * people (a phone or an e-mail beside it).
 */
function personalInReference(column: Column, table: Table): boolean {
  if (personalByName(column)) return true;
  if (sensitiveMatch(column, DEFAULT_SENSITIVE_NAMES) || sensitiveMatch({ name: table.name, category: column.category }, DEFAULT_SENSITIVE_NAMES)) return true;
  // A name or a picture beside a person's e-mail or phone is that person's.
  return (kindOf(column) === 'name' || binary(column)) && table.columns.some((c) => needsRule(c) && personalByName(c));
}

function binary(column: Pick<Column, 'baseType'>): boolean {
  return column.baseType === 'bytea' || column.baseType === '_bytea';
}

export interface InitColumn {
  ref: string;
  rule: ColumnRule;
  why: string;
}

export interface InitResult {
  root: string;
  referenceTables: string[];
  /** Reference tables whose text init keeps whole: declared public (sample.public-tables). */
  publicTables: string[];
  emptyTables: Array<{ table: string; why: string }>;
  columns: InitColumn[];
  yaml: string;
}

function pickRoot(catalog: Catalog, wanted?: string): Table {
  const named = wanted
    ? (catalog.tables.find((t) => t.id === wanted || (t.name === wanted && t.schema === 'public')) ?? catalog.tables.find((t) => t.name === wanted))
    : undefined;
  if (named) return named;
  for (const n of ROOT_NAMES) {
    const t = catalog.tables.find((x) => x.name === n && x.primaryKey);
    if (t) return t;
  }
  // The table most foreign keys point at.
  const incoming = new Map<string, number>();
  for (const fk of catalog.foreignKeys) incoming.set(fk.refTable, (incoming.get(fk.refTable) ?? 0) + 1);
  const best = [...catalog.tables].filter((t) => t.primaryKey).sort((a, b) => (incoming.get(b.id) ?? 0) - (incoming.get(a.id) ?? 0))[0];
  if (!best) throw new Error('production has no table with a primary key to sample by');
  return best;
}

/** A rule that keeps no value: null where allowed, else a value derived from the hash. */
function erase(column: Column): ColumnRule {
  if (!column.notNull) return 'null';
  if (column.category === 'S' || ['inet', 'cidr'].includes(column.baseType)) return 'rehash';
  if (['json', 'jsonb'].includes(column.baseType)) return { sql: "'{}'" };
  if (column.category === 'A') return { sql: "'{}'" };
  return { sql: "''" };
}

/** Few distinct values over many rows (a format, a status, an emoji): nothing that tells people apart. */
function categorical(column: Column, table: Table): number | undefined {
  const d = column.distinct;
  if (d === undefined || d === null || d <= 0 || d > 20 || table.rows < 100) return undefined;
  return d;
}

export function suggestRule(column: Column, table: Table, reference: boolean): { rule: ColumnRule; why: string } {
  const kind = kindOf(column);
  const json = ['json', 'jsonb', 'xml'].includes(column.baseType);
  if (kind === 'email')
    return column.category === 'S'
      ? { rule: 'fake-email', why: 'e-mail: an address at example.invalid from the keyed hash' }
      : { rule: erase(column), why: 'e-mail' };
  if (kind === 'password')
    return column.category === 'S' && !column.unique
      ? { rule: 'dev-password', why: 'password: the hash of the dev-password input' }
      : { rule: erase(column), why: 'password' };
  if (kind === 'ip')
    return { rule: column.category === 'S' || ['inet', 'cidr'].includes(column.baseType) ? 'rehash' : erase(column), why: 'IP address: keyed hash' };
  if (kind === 'secret') return { rule: erase(column), why: 'secret: nothing of it reaches dev' };
  // A small table the sample points at is a lookup (licenses, countries): its text is the app's own.
  if (reference && table.rows <= 1000 && !personalInReference(column, table)) return { rule: 'keep', why: 'reference table, copied whole' };
  if (kind === 'name' && column.category === 'S' && !json) return { rule: 'fake-name', why: 'name: an invented name from the keyed hash' };
  if (kind === 'contact') return { rule: erase(column), why: 'contact or location' };
  if (binary(column)) return { rule: erase(column), why: 'binary (a photo, a file): keep only if it holds nothing personal' };
  const few = categorical(column, table);
  if (few !== undefined && !json) return { rule: 'keep', why: `${few} distinct values in production: a category, not a person's` };
  return { rule: erase(column), why: json ? 'JSON: keep only if it holds nothing personal' : 'free text: keep only if it holds nothing personal' };
}

/** Secrets for checking rules as the run builds them: their values do not matter here. */
const CHECK_SECRETS = { maskKey: 'init', devPasswordHash: 'init' };

/**
 * A value that stays unique and fits a short unique column: the row's integer key in hex (8 digits
 * for an integer, 16 for a bigint), an address at example.invalid for an e-mail when it fits.
 */
function keyDerived(column: Column, table: Table, email: boolean): ColumnRule | undefined {
  const pk = table.primaryKey;
  const key = pk?.length === 1 ? table.columns.find((c) => c.name === pk[0]) : undefined;
  const digits = key ? ({ int2: 8, int4: 8, int8: 16 } as Record<string, number>)[key.baseType] : undefined;
  const max = maxLength(column);
  if (!key || digits === undefined || max === undefined || max < digits) return undefined;
  const hex = `to_hex(${ident(key.name)})`;
  const value = email && max >= digits + 17 ? `'u' || ${hex} || '@example.invalid'` : hex;
  return { sql: column.notNull ? value : `CASE WHEN ${ident(column.name)} IS NULL THEN NULL ELSE ${value} END` };
}

/**
 * suggestRule's rule, checked as the run checks it: a unique column too short for the keyed hash
 * (rehash needs 32 characters) gets its row's key instead, or null.
 */
export function proposeRule(column: Column, table: Table, reference: boolean): { rule: ColumnRule; why: string } {
  const suggested = suggestRule(column, table, reference);
  try {
    ruleExpression(suggested.rule, column, column.name, CHECK_SECRETS);
    return suggested;
  } catch (e) {
    if (!(e instanceof RuleError)) throw e;
  }
  const derived = keyDerived(column, table, suggested.rule === 'fake-email');
  const what = suggested.why.split(':')[0];
  if (derived) return { rule: derived, why: `${what}: unique and ${column.type}, too short for the keyed hash: its row's key in hex` };
  if (!column.notNull) return { rule: 'null', why: `${what}: unique and ${column.type}, too short for the keyed hash` };
  return { rule: 'keep', why: `unique, ${column.type} and no integer key to mask it by: keep only if it holds nothing personal` };
}

/** The run's own checks (schema, then plan) on the written section: init never writes what the run refuses. */
function checkProposal(catalog: Catalog, yaml: string): void {
  const parsed = sampleSchema.safeParse((parseYaml(yaml) as { sample?: unknown }).sample);
  const refused = (why: string) => new Error(`init would write a sample section its own run refuses (a twinstack bug; please report it): ${why}`);
  if (!parsed.success) throw refused(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  try {
    buildPlan(catalog, { settings: parsed.data, fraction: parsed.data.fraction, seed: parsed.data.seed, secrets: CHECK_SECRETS });
  } catch (e) {
    throw refused(e instanceof Error ? e.message : String(e));
  }
}

function yamlRule(rule: ColumnRule): string {
  if (typeof rule === 'object') return `{ sql: "${rule.sql.replace(/"/g, '\\"')}" }`;
  return rule === 'null' ? "'null'" : rule;
}

function shortName(catalog: Catalog, t: Table): string {
  return t.schema === 'public' || catalog.tables.filter((x) => x.name === t.name).length === 1 ? t.name : t.id;
}

/** A rule for every copied text column, and the reference tables whose text is kept whole (declared public). */
function proposeColumns(
  catalog: Catalog,
  owned: ReadonlySet<string>,
  reference: ReadonlySet<string>,
  name: (id: string) => string,
): { columns: InitColumn[]; publicTables: string[] } {
  const keyColumns = new Set<string>();
  for (const t of catalog.tables) for (const c of t.primaryKey ?? []) keyColumns.add(`${t.id}.${c}`);
  for (const fk of catalog.foreignKeys) {
    for (const c of fk.columns) keyColumns.add(`${fk.table}.${c}`);
    for (const c of fk.refColumns) keyColumns.add(`${fk.refTable}.${c}`);
  }
  const columns: InitColumn[] = [];
  const kept = new Set<string>();
  const masked = new Set<string>();
  for (const t of catalog.tables) {
    if (!owned.has(t.id) && !reference.has(t.id)) continue;
    for (const c of t.columns) {
      if (c.generated || !needsRule(c) || keyColumns.has(`${t.id}.${c.name}`)) continue;
      const { rule, why } = proposeRule(c, t, reference.has(t.id));
      (rule === 'keep' ? kept : masked).add(t.id);
      columns.push({ ref: `${name(t.id)}.${c.name}`, rule, why });
    }
  }
  // Lookups whose text is kept whole are declared public: a customer's surname that is also a city's name is no leak.
  const publicTables = [...reference].filter((id) => kept.has(id) && !masked.has(id));
  return { columns, publicTables };
}

/** A link table is copied whole only up to this many rows: beyond, it is more than a catalog's detail. */
const LINK_TABLE_MAX_ROWS = 100_000;

/**
 * Tables no path from the root reaches that only link lookups together (a film's cast: film and
 * actor): every column a key or no text, some key into a table copied whole and none into the
 * sample or a table copied empty. Left empty, dev would have films without casts or categories.
 */
function catalogLinks(
  catalog: Catalog,
  { owned, reference, empty }: Record<'owned' | 'reference', ReadonlySet<string>> & { empty: ReadonlyMap<string, string> },
): Table[] {
  return catalog.tables.filter((t) => {
    if (owned.has(t.id) || reference.has(t.id) || empty.has(t.id) || t.rows > LINK_TABLE_MAX_ROWS) return false;
    const keys = catalog.foreignKeys.filter((fk) => fk.table === t.id);
    if (!keys.some((fk) => reference.has(fk.refTable))) return false;
    if (keys.some((fk) => owned.has(fk.refTable) || empty.has(fk.refTable))) return false;
    const keyColumns = new Set([...(t.primaryKey ?? []), ...keys.flatMap((fk) => fk.columns)]);
    return t.columns.every((c) => keyColumns.has(c.name) || c.generated || !needsRule(c));
  });
}

/** The starter `sample:` section for production's catalog; `settings` supplies root, fraction and seed when set. */
export function initSample(catalog: Catalog, settings: Pick<SampleSettings, 'root' | 'fraction' | 'seed'>): InitResult {
  const root = pickRoot(catalog, settings.root);
  const byId = new Map(catalog.tables.map((t) => [t.id, t]));
  const name = (id: string) => shortName(catalog, byId.get(id) as Table);
  const secretTable = (t: Table) => nameWords(t.name).some((w) => SECRET_TABLE_WORDS.includes(w));

  // Reached from the root backwards, as the sample will (credential tables stop the walk).
  const owned = new Set([root.id]);
  const empty = new Map<string, string>();
  for (let frontier = [root.id]; frontier.length;) {
    const next: string[] = [];
    for (const fk of catalog.foreignKeys) {
      if (!frontier.includes(fk.refTable) || owned.has(fk.table) || empty.has(fk.table)) continue;
      const t = byId.get(fk.table) as Table;
      if (secretTable(t)) {
        empty.set(t.id, 'credentials or sessions: dev starts without them');
        continue;
      }
      owned.add(t.id);
      next.push(t.id);
    }
    frontier = next;
  }
  // Tables the copied rows point at and the sample does not reach: lookups, copied whole; with them
  // the catalog's link tables and what those point at (a film's cast and its actors).
  const reference = new Set<string>();
  for (const t of catalog.tables) if (MIGRATION_TABLES.includes(t.name) && !owned.has(t.id)) reference.add(t.id);
  for (let changed = true; changed;) {
    changed = false;
    for (const fk of catalog.foreignKeys) {
      if ((owned.has(fk.table) || reference.has(fk.table)) && !owned.has(fk.refTable) && !reference.has(fk.refTable) && !empty.has(fk.refTable)) {
        reference.add(fk.refTable);
        changed = true;
      }
    }
    for (const t of catalogLinks(catalog, { owned, reference, empty })) {
      reference.add(t.id);
      changed = true;
    }
  }
  for (const t of catalog.tables) {
    if (owned.has(t.id) || reference.has(t.id) || empty.has(t.id) || t.rows === 0) continue;
    empty.set(t.id, 'nothing leads from it to the sampled rows; move it to reference-tables to copy it whole');
  }

  const { columns, publicTables } = proposeColumns(catalog, owned, reference, name);

  const refs = [...reference].map(name);
  const lines = [
    `# Written by twinstack resample (init) from production's catalog: ${catalog.tables.length} tables, ${catalog.foreignKeys.length} foreign keys.`,
    '# Review every rule marked "keep only if": the run refuses a copied text column without a rule.',
    'sample:',
    `  root: ${name(root.id)}`,
    `  fraction: ${settings.fraction}`,
    `  seed: ${settings.seed}`,
    `  reference-tables: [${refs.join(', ')}]`,
    `  public-tables: [${publicTables.map(name).join(', ')}]${publicTables.length ? "   # lookups: no one's values; the leak scan neither probes nor reports them" : ''}`,
    ...(empty.size ? ['  empty-tables:', ...[...empty].map(([id, why]) => `    - ${name(id)}   # ${why}`)] : ['  empty-tables: []']),
    ...(columns.length ? ['  columns:'] : ['  columns: {}']),
  ];
  const width = Math.max(0, ...columns.map((c) => `    ${c.ref}: ${yamlRule(c.rule)}`.length));
  for (const c of columns) {
    const line = `    ${c.ref}: ${yamlRule(c.rule)}`;
    lines.push(`${line.padEnd(width)}   # ${c.why}`);
  }
  const yaml = `${lines.join('\n')}\n`;
  checkProposal(catalog, yaml);
  return {
    root: root.id,
    referenceTables: [...reference],
    publicTables,
    emptyTables: [...empty].map(([table, why]) => ({ table, why })),
    columns,
    yaml,
  };
}
