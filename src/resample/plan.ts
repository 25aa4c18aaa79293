/**
 * The sample plan: pure functions from production's catalog and the `sample` settings to what is
 * copied and how. No I/O here, so every rule is unit-tested.
 *
 * Membership: a root row is sampled when md5(seed || ':' || key) falls below the fraction (or its
 * key is in `include`), and passes `filter`. A table that references a sampled table is "owned":
 * its rows come along when any of their owning foreign keys points at a sampled row (posts of
 * sampled users, comments on those posts...). Every other reference from a copied row to a row
 * outside the sample is resolved by the foreign key's policy: include the referenced row, null the
 * column, or drop the referencing row. The plan renders one production-side psql script that
 * computes member keys into temporary tables inside one read-only repeatable-read transaction and
 * streams each table's rows as `COPY ... FROM stdin` blocks for the staging database.
 */
import { createHash } from 'node:crypto';
import { ConfigurationError } from '../infra/errors';
import type { Catalog, Check, Column, ForeignKey, Table } from './catalog';
import { PERSONAL_SHAPE, RuleError, describeRule, isTextual, needsRule, ruleExpression, sensitiveMatch, type RunSecrets } from './anonymize';
import type { ColumnRule, ForeignKeyPolicy, PlaceholderSetting, SampleSettings } from '../config/sample';
import { dollarTag, ident, literal, qualified, tuple } from '../infra/sql';

export type TableMode = 'root' | 'owned' | 'included' | 'reference' | 'empty' | 'unreached';

/** What of a foreign key's target exists in the sample. */
export type TargetKind = 'members' | 'all' | 'none';

export interface FkPlan {
  fk: ForeignKey;
  policy: ForeignKeyPolicy;
  source: 'default' | 'config';
  /** Membership flows along it: the row belongs to the sample when its target row does. */
  owning: boolean;
  target: TargetKind;
  nullable: boolean;
  /** A dangling reference removes the row (drop, or include where the column cannot be nulled). */
  strict: boolean;
  /** The config says `owns: false`: rows never come along through it. */
  ownsNothing: boolean;
  /**
   * On a table whose rows can come along for structure: the placeholder its key points at on such a
   * row when the real target is outside the sample (instead of dropping or nulling).
   */
  placeholder?: PlaceholderPlan;
}

/** A placeholder row (sample.placeholders), inserted into dev for rows that came along for structure. */
export interface PlaceholderPlan {
  table: string;
  /** The primary key's columns, in the table's order. */
  keyColumns: string[];
  /** Per key column, its value as a typed SQL constant. */
  keys: string[];
  /** The key as written in the config (`0`, or `instance_id=0, id=0`). */
  keyText: string;
  /** Columns and their SQL expressions, the key columns first. */
  values: Array<[string, string]>;
}

/** A reference without a foreign key (sample.references), resolved like one. */
export interface ReferencePlan {
  /** `child: keys → parent(column)`, for the report. */
  label: string;
  table: string;
  /** The expression yielding the parent key(s), over the child's columns (unqualified). */
  keys: string;
  refTable: string;
  refColumn: string;
  /** The parent key's type: the expression's values are cast to it. */
  keyType: string;
  policy: ForeignKeyPolicy;
  /** The column cleared when a parent is missing (policy null, or include with a column). */
  column?: string;
  target: TargetKind;
  /** A missing parent removes the row (drop, or include without a column to clear). */
  strict: boolean;
  /** The parent table as read (`ONLY schema.name`). */
  refFrom: string;
}

export interface ColumnPlan {
  name: string;
  expression: string;
  /** The config rule applied, or `fk null` for a reference nulled by policy. */
  rule?: string;
  sensitive?: string;
  /** Declared public (sample.public-tables or public-columns): never probed, and a probe found in it is no leak. */
  public?: boolean;
}

export interface TablePlan {
  table: Table;
  mode: TableMode;
  /** Its member keys live in a temporary table (roots, referenced tables, tables with include keys). */
  keyed: boolean;
  temp: string;
  memberColumns: string[];
  outgoing: FkPlan[];
  columns: ColumnPlan[];
  estimate: number;
  note: string;
  /** Rows of it can come along for structure (policy structure): its member keys mark them (ts_struct). */
  structural: boolean;
  /**
   * CHECK constraints over a column nulled by policy: a row whose nulled version would break one
   * is dropped rather than copied (the load would refuse it).
   */
  checkDrops: string[];
}

export interface ProbeColumn {
  table: string;
  column: string;
  /** `keep` columns are probed only with values that look personal by shape. */
  shapedOnly: boolean;
}

export interface SampleRequest {
  settings: SampleSettings;
  fraction: number;
  seed: string;
  secrets: RunSecrets;
}

export interface SamplePlan {
  root: string;
  fraction: number;
  seed: string;
  tables: TablePlan[];
  fks: FkPlan[];
  references: ReferencePlan[];
  probes: ProbeColumn[];
  warnings: string[];
  settings: SampleSettings;
  placeholders: PlaceholderPlan[];
}

const HASH_BITS = 52;

/** The hash threshold for a fraction: a key is sampled when its 52-bit hash is below it. */
export function thresholdFor(fraction: number): number {
  return Math.floor(fraction * 2 ** HASH_BITS);
}

/** The same hash production computes in SQL, for tests and reports: first 13 hex digits of md5. */
export function memberHash(seed: string, key: string): number {
  return parseInt(createHash('md5').update(`${seed}:${key}`).digest('hex').slice(0, 13), 16);
}

export function isSampled(seed: string, fraction: number, key: string): boolean {
  return memberHash(seed, key) < thresholdFor(fraction);
}

function fail(message: string): never {
  throw new ConfigurationError(`sample: ${message}`);
}

/** Finds a table named in the config: `name` (unique across schemas, or in public) or `schema.name`. */
export function resolveTable(catalog: Catalog, name: string, where: string): Table {
  if (name.includes('.')) {
    const t = catalog.tables.find((x) => x.id === name);
    if (!t) fail(`${where}: production has no table ${name}`);
    return t;
  }
  const matches = catalog.tables.filter((x) => x.name === name);
  if (matches.length === 1) return matches[0];
  const pub = matches.find((x) => x.schema === 'public');
  if (pub) return pub;
  if (matches.length === 0) fail(`${where}: production has no table ${name}`);
  fail(`${where}: ${name} is ambiguous (${matches.map((m) => m.id).join(', ')}); write it as schema.table`);
}

function resolveForeignKey(catalog: Catalog, key: string): ForeignKey {
  const m = /^(.+?)\((.*)\)$/.exec(key);
  if (m) {
    const table = resolveTable(catalog, m[1], `foreign-keys "${key}"`);
    const cols = m[2].split(',').map((c) => c.trim());
    const fk = catalog.foreignKeys.find((f) => f.table === table.id && f.columns.length === cols.length && cols.every((c) => f.columns.includes(c)));
    if (!fk) fail(`foreign-keys "${key}": ${table.id} has no foreign key on (${cols.join(', ')})`);
    return fk;
  }
  const byName = catalog.foreignKeys.filter((f) => f.name === key || f.names?.includes(key));
  if (byName.length === 1) return byName[0];
  if (byName.length === 0) fail(`foreign-keys "${key}": production has no foreign key of that name; write table(column)`);
  fail(`foreign-keys "${key}": several tables have a constraint of that name; write table(column)`);
}

/**
 * The public markers checked against the catalog: a table that does not exist is refused (as in
 * reference-tables), a column that does not exist is warned about (as in columns).
 */
function publicMarkers(catalog: Catalog, settings: SampleSettings, warnings: string[]): (table: string, column: string) => boolean {
  const tables = new Set(settings['public-tables'].map((n) => resolveTable(catalog, n, 'public-tables').id));
  const columns = new Set<string>();
  for (const ref of settings['public-columns']) {
    const r = resolveColumnRef(catalog, ref);
    if (r) columns.add(`${r.table.id}.${r.column}`);
    else warnings.push(`public-columns: ${ref} names no column in production; the marker is ignored`);
  }
  return (table, column) => tables.has(table) || columns.has(`${table}.${column}`);
}

function resolveColumnRef(catalog: Catalog, ref: string): { table: Table; column: string } | undefined {
  const parts = ref.split('.');
  const column = parts.pop() as string;
  const tableName = parts.join('.');
  const table = tableName.includes('.')
    ? catalog.tables.find((t) => t.id === tableName)
    : catalog.tables.filter((t) => t.name === tableName).find((t, _i, all) => all.length === 1 || t.schema === 'public');
  if (!table || !table.columns.some((c) => c.name === column)) return undefined;
  return { table, column };
}

/** A sample.references entry checked against the catalog. */
function resolveReference(catalog: Catalog, r: SampleSettings['references'][number], i: number): Omit<ReferencePlan, 'target' | 'strict'> {
  const where = `references[${i}]`;
  const child = resolveTable(catalog, r.table, `${where}.table`);
  const m = /^(.+?)\((.*)\)$/.exec(r.to);
  const parent = resolveTable(catalog, m ? m[1] : r.to, `${where}.to`);
  let refColumn: string;
  if (m) {
    refColumn = m[2].trim();
    if (refColumn.includes(',')) fail(`${where}.to: a reference without a foreign key points at one column; ${r.to} names several`);
  } else {
    if (parent.primaryKey?.length !== 1) fail(`${where}.to: ${parent.id} has no one-column primary key; write ${parent.name}(column)`);
    refColumn = parent.primaryKey[0];
  }
  const refCol = parent.columns.find((c) => c.name === refColumn);
  if (!refCol) fail(`${where}.to: ${parent.id} has no column ${refColumn}`);
  if (r.column !== undefined) {
    const col = child.columns.find((c) => c.name === r.column);
    if (!col) fail(`${where}.column: ${child.id} has no column ${r.column}`);
    if (col.notNull) fail(`${where}.column: ${child.id}.${r.column} is NOT NULL and cannot be cleared; use policy drop`);
  }
  return {
    label: `${child.id}: ${r.keys} → ${parent.id}(${refColumn})`,
    table: child.id,
    keys: r.keys,
    refTable: parent.id,
    refColumn,
    keyType: refCol.type,
    policy: r.policy,
    column: r.column,
    refFrom: from(parent),
  };
}

/** The parent keys a child row names, as rows of ts_k(v): one key or an array of them, cast to the key's type. */
function parentKeys(r: Pick<ReferencePlan, 'keys' | 'keyType'>): string {
  return `unnest(ARRAY[(${r.keys})]::${r.keyType}[]) ts_k(v)`;
}

/**
 * True when every parent key the row names is in the sample (over the child's columns, unqualified:
 * used where the child table is the nearest FROM item). `temp` holds the parent's member keys.
 */
function parentsPresent(r: Omit<ReferencePlan, 'label'>, temp: string | undefined): string {
  const found =
    r.target === 'none'
      ? 'false'
      : `EXISTS (SELECT 1 FROM ${r.target === 'all' ? r.refFrom : `pg_temp.${temp}`} ts_p WHERE ts_p.${ident(r.refColumn)} = ts_k.v)`;
  return `NOT EXISTS (SELECT 1 FROM ${parentKeys(r)} WHERE ts_k.v IS NOT NULL AND NOT ${found})`;
}

/** The references without a foreign key that clear this column (policy null, or include with a column) when a parent is missing. */
function clearingReferences(refs: readonly ReferencePlan[], table: string, column: string): ReferencePlan[] {
  return refs.filter((r) => r.table === table && !r.strict && r.column === column);
}

/** A column's value as copied under those references (over the child's row): null when one of them names a parent outside the sample. */
function referenceCleared(refs: readonly ReferencePlan[], tempOf: (table: string) => string | undefined, value: string): string {
  return refs.reduce((v, r) => `CASE WHEN ${parentsPresent(r, tempOf(r.refTable))} THEN ${v} END`, value);
}

function from(table: Table): string {
  return `${table.partitioned ? '' : 'ONLY '}${qualified(table.schema, table.name)}`;
}

/** Tables in an order where every owning parent comes first; cycles are broken by distance from the root. */
function ownershipOrder(
  owned: Table[],
  owningTargets: Map<string, Set<string>>,
  distance: ReadonlyMap<string, number>,
): { order: string[]; broken: Array<[string, string]> } {
  const remaining = new Set(owned.map((t) => t.id));
  const order: string[] = [];
  const broken: Array<[string, string]> = [];
  const rank = (id: string) => [distance.get(id) ?? 0, id] as const;
  const cmp = (a: string, b: string) => {
    const [da, ia] = rank(a);
    const [db, ib] = rank(b);
    return da - db || (ia < ib ? -1 : ia > ib ? 1 : 0);
  };
  while (remaining.size) {
    const ready = [...remaining].filter((id) => [...(owningTargets.get(id) ?? [])].every((p) => !remaining.has(p))).sort(cmp);
    if (ready.length) {
      order.push(ready[0]);
      remaining.delete(ready[0]);
      continue;
    }
    // A cycle among owned tables: the one nearest the root goes first, its links into the cycle stop owning it.
    const first = [...remaining].sort(cmp)[0];
    for (const p of owningTargets.get(first) ?? []) {
      if (remaining.has(p)) {
        owningTargets.get(first)?.delete(p);
        broken.push([first, p]);
      }
    }
  }
  return { order, broken };
}

/**
 * The plan, drawn in the order its rules depend on: the tables the config names, the tables the
 * root reaches, the policies and what they include, the owners' order, the keys and references,
 * the tables whose member keys are looked up, structure, then each table's columns.
 */
export function buildPlan(catalog: Catalog, req: SampleRequest): SamplePlan {
  const { settings } = req;
  const scope = resolveScope(catalog, settings);
  const reached = reachFromRoot(catalog, scope);
  refuseImpossiblePolicies(scope);
  const virtual = resolveReferences(catalog, settings, scope.root);
  const mode = includeParents(catalog, scope, reached.mode, virtual);
  const owners = ownership(catalog, scope, mode, reached.distance);
  const keys = planForeignKeys(catalog, scope, mode, owners.owningTargets);
  const references = planReferences(virtual, mode);
  const keyed = keyedTables({ catalog, scope, mode, fkPlans: keys, refPlans: references });
  const structure = planStructure({ catalog, settings, root: scope.root, mode, fkPlans: keys, refPlans: references });
  const columns = columnContext(catalog, settings);
  const ctx: TableContext = {
    req,
    root: scope.root,
    byId: scope.byId,
    mode,
    keyed,
    temps: memberTables(catalog, scope.root, owners.ownedOrder, keyed),
    fks: structure.fks,
    references,
    structural: structure.structural,
    columns,
  };
  const outcomes = copyOrder(catalog, scope.root, owners.ownedOrder, mode).map((id) => planTable(ctx, id));
  refuseUncoveredColumns(outcomes);
  if (settings.filter && /;/.test(settings.filter.replace(/'[^']*'/g, ''))) fail('filter must be one SQL condition, without ";"');
  return {
    root: scope.root.id,
    fraction: req.fraction,
    seed: req.seed,
    tables: outcomes.map((o) => o.plan),
    fks: structure.fks,
    references,
    probes: outcomes.flatMap((o) => o.probes),
    warnings: [...owners.warnings, ...structure.warnings, ...columns.warnings],
    settings,
    placeholders: structure.placeholders,
  };
}

/** The tables the config names, checked against the catalog, and its entries per foreign key. */
interface Scope {
  root: Table;
  byId: ReadonlyMap<string, Table>;
  empty: ReadonlySet<string>;
  reference: ReadonlySet<string>;
  /** The config's policy per foreign key. */
  configured: ReadonlyMap<ForeignKey, ForeignKeyPolicy>;
  /** Keys the config says own nothing. */
  notOwning: ReadonlySet<ForeignKey>;
}

function resolveScope(catalog: Catalog, settings: SampleSettings): Scope {
  const byId = new Map(catalog.tables.map((t) => [t.id, t]));
  const root = resolveTable(catalog, settings.root, 'root');
  if (!root.primaryKey) fail(`root table ${root.id} has no primary key to sample by`);
  const empty = new Set(settings['empty-tables'].map((n) => resolveTable(catalog, n, 'empty-tables').id));
  const reference = new Set(settings['reference-tables'].map((n) => resolveTable(catalog, n, 'reference-tables').id));
  for (const id of empty) if (reference.has(id)) fail(`${id} is listed both in empty-tables and reference-tables`);
  if (empty.has(root.id) || reference.has(root.id)) fail(`the root ${root.id} cannot be an empty or reference table`);

  const configured = new Map<ForeignKey, ForeignKeyPolicy>();
  const notOwning = new Set<ForeignKey>();
  for (const [key, setting] of Object.entries(settings['foreign-keys'])) {
    const fk = resolveForeignKey(catalog, key);
    const policy = typeof setting === 'object' ? setting.policy : setting;
    if (policy !== undefined) configured.set(fk, policy);
    if (typeof setting === 'object' && setting.owns === false) notOwning.add(fk);
  }
  return { root, byId, empty, reference, configured, notOwning };
}

/** Tables reached from the root by following owning foreign keys backwards; the rest as the config lists them. */
function reachFromRoot(catalog: Catalog, scope: Scope): { mode: ReadonlyMap<string, TableMode>; distance: ReadonlyMap<string, number> } {
  const { root, empty, reference, notOwning } = scope;
  const mode = new Map<string, TableMode>();
  const distance = new Map<string, number>([[root.id, 0]]);
  mode.set(root.id, 'root');
  let frontier = [root.id];
  while (frontier.length) {
    const next: string[] = [];
    for (const fk of catalog.foreignKeys) {
      if (!frontier.includes(fk.refTable) || fk.table === fk.refTable || mode.has(fk.table) || notOwning.has(fk)) continue;
      if (empty.has(fk.table) || reference.has(fk.table)) continue;
      mode.set(fk.table, 'owned');
      distance.set(fk.table, (distance.get(fk.refTable) ?? 0) + 1);
      next.push(fk.table);
    }
    frontier = next;
  }
  for (const t of catalog.tables) {
    if (mode.has(t.id)) continue;
    mode.set(t.id, empty.has(t.id) ? 'empty' : reference.has(t.id) ? 'reference' : 'unreached');
  }
  return { mode, distance };
}

/** True when every column of the key is nullable. */
function fkNullable(scope: Scope, fk: ForeignKey): boolean {
  const t = scope.byId.get(fk.table) as Table;
  return fk.columns.every((c) => !t.columns.find((x) => x.name === c)?.notNull);
}

/** A key's policy: the config's, else null where every column of the key is nullable, else drop. */
function policyOf(scope: Scope, fk: ForeignKey): { policy: ForeignKeyPolicy; source: 'default' | 'config' } {
  const p = scope.configured.get(fk);
  if (p) return { policy: p, source: 'config' };
  return { policy: fkNullable(scope, fk) ? 'null' : 'drop', source: scope.notOwning.has(fk) ? 'config' : 'default' };
}

/** Configured policies the schema cannot honour. */
function refuseImpossiblePolicies(scope: Scope): void {
  const { root } = scope;
  for (const [fk, p] of scope.configured) {
    if (p === 'null' && !fkNullable(scope, fk)) fail(`foreign-keys ${fk.table}(${fk.columns.join(', ')}): null needs nullable columns; use drop or include`);
    if (p === 'structure' && fk.refTable === root.id)
      fail(
        `foreign-keys ${fk.table}(${fk.columns.join(', ')}): structure cannot bring root rows (${root.id}), whose rows are owners; give sample.placeholders a ${root.name} row for such keys to point at`,
      );
  }
}

/** A sample.references entry resolved, before the sample says what of its parent exists. */
type ResolvedReference = Omit<ReferencePlan, 'target' | 'strict'>;

function resolveReferences(catalog: Catalog, settings: SampleSettings, root: Table): ResolvedReference[] {
  const virtual = settings.references.map((r, i) => resolveReference(catalog, r, i));
  virtual.forEach((r, i) => {
    if (r.policy === 'structure' && r.refTable === root.id)
      fail(`references[${i}]: structure cannot bring root rows (${root.id}), whose rows are owners; give sample.placeholders a ${root.name} row instead`);
  });
  return virtual;
}

/** True for a table whose rows are copied (some or all). */
function copiesRows(mode: ReadonlyMap<string, TableMode>, id: string): boolean {
  return ['root', 'owned', 'included', 'reference'].includes(mode.get(id) as TableMode);
}

/** `include` pulls rows into tables no path reaches; they become "included" (and so on, transitively). */
function includeParents(
  catalog: Catalog,
  scope: Scope,
  reached: ReadonlyMap<string, TableMode>,
  virtual: readonly ResolvedReference[],
): ReadonlyMap<string, TableMode> {
  const mode = new Map(reached);
  const includes = [
    ...catalog.foreignKeys
      .filter((fk) => bringsParent(policyOf(scope, fk).policy))
      .map((fk) => ({ from: fk.table, to: fk.refTable, what: `foreign-keys ${fk.table}(${fk.columns.join(', ')})` })),
    ...virtual.filter((r) => bringsParent(r.policy)).map((r) => ({ from: r.table, to: r.refTable, what: `references ${r.label}` })),
  ];
  for (let changed = true; changed;) {
    changed = false;
    for (const inc of includes) {
      if (!copiesRows(mode, inc.from)) continue;
      const m = mode.get(inc.to);
      if (m === 'empty') fail(`${inc.what}: include into ${inc.to}, which is listed in empty-tables`);
      if (m === 'unreached') {
        mode.set(inc.to, 'included');
        changed = true;
      }
    }
  }
  return mode;
}

function targetOf(mode: ReadonlyMap<string, TableMode>, id: string): TargetKind {
  const m = mode.get(id);
  return m === 'reference' ? 'all' : m === 'empty' || m === 'unreached' ? 'none' : 'members';
}

/** Owning links (an owned table's keys into the root or other owned tables, not into itself) and the owned tables' order. */
function ownership(
  catalog: Catalog,
  scope: Scope,
  mode: ReadonlyMap<string, TableMode>,
  distance: ReadonlyMap<string, number>,
): { owningTargets: ReadonlyMap<string, ReadonlySet<string>>; ownedOrder: string[]; warnings: string[] } {
  const owningTargets = new Map<string, Set<string>>();
  for (const fk of catalog.foreignKeys) {
    if (mode.get(fk.table) !== 'owned' || fk.table === fk.refTable || scope.notOwning.has(fk)) continue;
    const m = mode.get(fk.refTable);
    if (m !== 'root' && m !== 'owned') continue;
    if (!owningTargets.has(fk.table)) owningTargets.set(fk.table, new Set());
    owningTargets.get(fk.table)?.add(fk.refTable);
  }
  const ownedTables = catalog.tables.filter((t) => mode.get(t.id) === 'owned');
  // ownershipOrder drops the links that close a cycle from owningTargets.
  const { order, broken } = ownershipOrder(ownedTables, owningTargets, distance);
  const warnings = broken.map(([a, b]) => `cycle between owned tables: rows of ${a} do not come along through their reference to ${b}`);
  return { owningTargets, ownedOrder: order, warnings };
}

/** The plan of every foreign key on a copied table. */
function planForeignKeys(
  catalog: Catalog,
  scope: Scope,
  mode: ReadonlyMap<string, TableMode>,
  owningTargets: ReadonlyMap<string, ReadonlySet<string>>,
): FkPlan[] {
  const fkPlans: FkPlan[] = [];
  for (const fk of catalog.foreignKeys) {
    if (!copiesRows(mode, fk.table)) continue;
    const { policy, source } = policyOf(scope, fk);
    const target = targetOf(mode, fk.refTable);
    const isNullable = fkNullable(scope, fk);
    const owning = mode.get(fk.table) === 'owned' && (owningTargets.get(fk.table)?.has(fk.refTable) ?? false);
    // structure never clears: a row whose parent cannot come is left out, not kept half-null.
    const strict = policy === 'drop' || policy === 'structure' || (policy === 'include' && !isNullable);
    if (mode.get(fk.table) === 'reference' && strict && target !== 'all') {
      fail(
        `reference table ${fk.table} has a required foreign key ${fk.name} to ${fk.refTable}, which is not copied whole: list ${fk.refTable} as a reference table too, or make the key nullable`,
      );
    }
    fkPlans.push({ fk, policy, source, owning, target, nullable: isNullable, strict, ownsNothing: scope.notOwning.has(fk) });
  }
  return fkPlans;
}

/** The plan of every reference without a foreign key from a copied table. */
function planReferences(virtual: readonly ResolvedReference[], mode: ReadonlyMap<string, TableMode>): ReferencePlan[] {
  const refPlans: ReferencePlan[] = [];
  for (const r of virtual) {
    if (!copiesRows(mode, r.table)) continue;
    const target = targetOf(mode, r.refTable);
    const strict = r.policy === 'drop' || r.policy === 'structure' || (r.policy === 'include' && r.column === undefined);
    if (mode.get(r.table) === 'reference' && target !== 'all')
      fail(`references ${r.label}: ${r.table} is copied whole but ${r.refTable} is not; list ${r.refTable} as a reference table too`);
    refPlans.push({ ...r, target, strict });
  }
  return refPlans;
}

/** The catalog, each table's mode, and the foreign-key and reference plans made for them. */
interface PlannedLinks {
  catalog: Catalog;
  mode: ReadonlyMap<string, TableMode>;
  fkPlans: readonly FkPlan[];
  refPlans: readonly ReferencePlan[];
}

/** Keyed tables: those whose member keys other tables look up. */
function keyedTables({ catalog, scope, mode, fkPlans, refPlans }: PlannedLinks & { scope: Scope }): ReadonlySet<string> {
  const keyed = new Set<string>([scope.root.id]);
  for (const p of fkPlans) {
    // Every reference into sampled rows is looked up: to own, to drop, to null or to include.
    if (p.target === 'members') keyed.add(p.fk.refTable);
    if (bringsParent(p.policy)) keyed.add(p.fk.table);
  }
  for (const r of refPlans) {
    if (r.target === 'members') keyed.add(r.refTable);
    if (bringsParent(r.policy)) keyed.add(r.table);
  }
  for (const t of catalog.tables) if (mode.get(t.id) === 'included') keyed.add(t.id);
  for (const id of keyed) {
    const t = scope.byId.get(id) as Table;
    if (!copiesRows(mode, id) || mode.get(id) === 'reference') {
      keyed.delete(id);
      continue;
    }
    if (!t.primaryKey)
      fail(`${id} has no primary key but its sampled rows are referenced or included; give it a primary key, or list it as a reference or empty table`);
  }
  return keyed;
}

/**
 * Tables whose rows can come along for structure, the placeholder rows their keys may point at, and
 * the foreign-key plans with those placeholders attached.
 */
function planStructure({ catalog, settings, root, mode, fkPlans, refPlans }: PlannedLinks & { settings: SampleSettings; root: Table }): {
  structural: ReadonlySet<string>;
  placeholders: PlaceholderPlan[];
  fks: FkPlan[];
  warnings: string[];
} {
  const structural = new Set<string>([
    ...fkPlans.filter((p) => p.policy === 'structure' && p.target === 'members').map((p) => p.fk.refTable),
    ...refPlans.filter((r) => r.policy === 'structure' && r.target === 'members').map((r) => r.refTable),
  ]);
  const placeholders = Object.entries(settings.placeholders).map(([name, ph]) => resolvePlaceholder(catalog, name, ph, mode));
  const fks = fkPlans.map((p) => {
    const ph = placeholders.find((x) => x.table === p.fk.refTable);
    if (!structural.has(p.fk.table) || !ph || p.target !== 'members') return p;
    if (samePlaceholderKey(p, ph)) return { ...p, placeholder: ph };
    // A nullable key is cleared on such rows, as the README says; one that would drop them must be said.
    if (p.source !== 'config' && p.strict) refuseUnmatchedKey(p, ph);
    return p;
  });
  for (const p of fks.filter((x) => x.placeholder)) refuseSharedKeyColumns(catalog, p);
  const warnings: string[] = [];
  for (const id of structural)
    for (const p of fks.filter((x) => x.fk.table === id && x.strict && !x.placeholder && x.fk.refTable === root.id && x.target === 'members'))
      warnings.push(
        `${id} rows come along for structure, but their ${p.fk.columns.join(', ')} → ${root.id} cannot be cleared: a row whose ${root.name} is outside the sample is left out; give sample.placeholders a ${root.name} row to point at`,
      );
  return { structural, placeholders, fks, warnings };
}

/** The config's column rules and public markers, and the key columns (which may only be kept). */
interface ColumnContext {
  rules: ReadonlyMap<string, ColumnRule>;
  isPublic: (table: string, column: string) => boolean;
  keyColumns: ReadonlySet<string>;
  warnings: string[];
}

function columnContext(catalog: Catalog, settings: SampleSettings): ColumnContext {
  const warnings: string[] = [];
  const rules = new Map<string, ColumnRule>();
  for (const [ref, rule] of Object.entries(settings.columns)) {
    const r = resolveColumnRef(catalog, ref);
    if (!r) {
      warnings.push(`columns: ${ref} names no column in production; the rule is ignored`);
      continue;
    }
    rules.set(`${r.table.id}.${r.column}`, rule);
  }
  const isPublic = publicMarkers(catalog, settings, warnings);
  const keyColumns = new Set<string>();
  for (const t of catalog.tables) for (const c of t.primaryKey ?? []) keyColumns.add(`${t.id}.${c}`);
  for (const fk of catalog.foreignKeys) {
    for (const c of fk.columns) keyColumns.add(`${fk.table}.${c}`);
    for (const c of fk.refColumns) keyColumns.add(`${fk.refTable}.${c}`);
  }
  return { rules, isPublic, keyColumns, warnings };
}

/** The temporary table holding each keyed table's member keys, numbered in copy order. */
function memberTables(catalog: Catalog, root: Table, ownedOrder: readonly string[], keyed: ReadonlySet<string>): ReadonlyMap<string, string> {
  const temps = new Map<string, string>();
  let n = 0;
  for (const id of [root.id, ...ownedOrder, ...catalog.tables.map((t) => t.id)]) if (keyed.has(id) && !temps.has(id)) temps.set(id, `ts_m${++n}`);
  return temps;
}

/** The order tables are copied in: owners before what they own, then included, reference and empty tables. */
function copyOrder(catalog: Catalog, root: Table, ownedOrder: readonly string[], mode: ReadonlyMap<string, TableMode>): string[] {
  return [
    root.id,
    ...ownedOrder,
    ...catalog.tables.filter((t) => mode.get(t.id) === 'included').map((t) => t.id),
    ...catalog.tables.filter((t) => mode.get(t.id) === 'reference').map((t) => t.id),
    ...catalog.tables.filter((t) => ['empty', 'unreached'].includes(mode.get(t.id) as string)).map((t) => t.id),
  ];
}

/** What each table's plan is drawn from. */
interface TableContext {
  req: SampleRequest;
  root: Table;
  byId: ReadonlyMap<string, Table>;
  mode: ReadonlyMap<string, TableMode>;
  keyed: ReadonlySet<string>;
  temps: ReadonlyMap<string, string>;
  fks: readonly FkPlan[];
  references: readonly ReferencePlan[];
  structural: ReadonlySet<string>;
  columns: ColumnContext;
}

/** A table's plan, and what its columns refuse or report. */
interface TableOutcome {
  plan: TablePlan;
  ruleErrors: string[];
  uncovered: string[];
  probes: ProbeColumn[];
}

function planTable(ctx: TableContext, id: string): TableOutcome {
  const table = ctx.byId.get(id) as Table;
  const m = ctx.mode.get(id) as TableMode;
  const keyed = ctx.keyed.has(id);
  const outgoing = ctx.fks.filter((p) => p.fk.table === id);
  const incoming = ctx.fks.filter((p) => p.fk.refTable === id);
  const memberColumns = keyed
    ? unique([
        ...(table.primaryKey ?? []),
        ...incoming.flatMap((p) => p.fk.refColumns),
        ...ctx.references.filter((r) => r.refTable === id).map((r) => r.refColumn),
        ...outgoing.flatMap((p) => p.fk.columns),
      ])
    : [];
  const copied = copiesRows(ctx.mode, id);
  const outcomes = copied ? table.columns.filter((c) => !c.generated).map((c) => planColumn(ctx, table, outgoing, c)) : [];
  // Key columns are only ever kept, so every copied column under a nulling key is nulled as planned.
  const checkDrops = copied
    ? (table.checks ?? [])
        .filter((k) =>
          k.columns.some((c) => !columnType(table, c)?.generated && (nullingKey(outgoing, c) || clearingReferences(ctx.references, id, c).length > 0)),
        )
        .map((k) => k.name)
    : [];
  // A rough guess for the dry run: the fraction of each owned table; included rows are not guessed.
  const { fraction, settings } = ctx.req;
  const estimate =
    m === 'reference' ? table.rows : m === 'root' || m === 'owned' ? Math.round(table.rows * fraction) + (m === 'root' ? settings.include.length : 0) : 0;
  const checkNote = checkDrops.length ? `; rows whose nulled reference would break CHECK ${checkDrops.join(', ')} are dropped` : '';
  const structureNote = ctx.structural.has(id) ? '; rows named by a structure policy come along for structure, without their owners' : '';
  const columns: ColumnPlan[] = [];
  const ruleErrors: string[] = [];
  const uncovered: string[] = [];
  const probes: ProbeColumn[] = [];
  for (const o of outcomes) {
    if (o.kind === 'refused') {
      ruleErrors.push(o.error);
      continue;
    }
    columns.push(o.column);
    if (o.uncovered) uncovered.push(o.uncovered);
    if (o.probe) probes.push(o.probe);
  }
  const plan: TablePlan = {
    table,
    mode: m,
    keyed,
    temp: ctx.temps.get(id) ?? '',
    memberColumns,
    outgoing,
    columns,
    estimate,
    note: `${tableNote(ctx, id, m, outgoing)}${checkNote}${structureNote}`,
    checkDrops,
    structural: ctx.structural.has(id) && keyed,
  };
  return { plan, ruleErrors, uncovered, probes };
}

/** How a table's rows are chosen, in words for the report. */
function tableNote(ctx: TableContext, id: string, m: TableMode, outgoing: readonly FkPlan[]): string {
  const { fraction, settings } = ctx.req;
  switch (m) {
    case 'root':
      return `${Math.round(fraction * 1000) / 10}% of rows by hash of (seed, ${ctx.root.primaryKey?.join(', ')})${settings.filter ? ` where ${settings.filter}` : ''}${settings.include.length ? `, plus ${settings.include.length} included key(s)` : ''}`;
    case 'owned':
      return `rows whose ${outgoing
        .filter((p) => p.owning)
        .map((p) => `${p.fk.columns.join(', ')} → ${p.fk.refTable}`)
        .join(' or ')} is sampled`;
    case 'included':
      return ctx.structural.has(id) ? 'only rows that sampled rows name for structure or include' : 'only rows that sampled rows include';
    case 'reference':
      return 'copied whole (reference table)';
    case 'empty':
      return 'copied empty (empty-tables)';
    default:
      return 'copied empty (no foreign-key path from the root; list it in reference-tables to copy it whole)';
  }
}

/** A copied column's plan, or the reason its rule is refused. */
type ColumnOutcome = { kind: 'refused'; error: string } | { kind: 'copied'; column: ColumnPlan; uncovered?: string; probe?: ProbeColumn };

/** What the config and the names say of one column. */
interface ColumnClass {
  key: string;
  rule: ColumnRule | undefined;
  isKey: boolean;
  /** The sensitive name the column's own name matches. */
  ownName: string | undefined;
  /** The sensitive name its own name or its table's matches. */
  sensitive: string | undefined;
  declaredPublic: boolean;
}

function classifyColumn(ctx: TableContext, table: Table, c: Column): ColumnClass {
  const names = ctx.req.settings['sensitive-names'];
  const key = `${table.id}.${c.name}`;
  // Key columns can only be kept (rewriting them breaks references), and numbers, dates or
  // booleans hold no name or address: name matching applies to the other text columns.
  const isKey = ctx.columns.keyColumns.has(key);
  const ownName = isKey || !needsRule(c) ? undefined : sensitiveMatch(c, names);
  // The table's name counts too: private_message.content is as private as its table says.
  const tableName = isKey || !needsRule(c) || ownName ? undefined : sensitiveMatch({ name: table.name, category: c.category }, names);
  const declaredPublic = needsRule(c) && ctx.columns.isPublic(table.id, c.name);
  return { key, rule: ctx.columns.rules.get(key), isKey, ownName, sensitive: ownName ?? tableName, declaredPublic };
}

function planColumn(ctx: TableContext, table: Table, outgoing: readonly FkPlan[], c: Column): ColumnOutcome {
  const cls = classifyColumn(ctx, table, c);
  const ruled = applyRule(ctx, c, cls);
  if (ruled.kind === 'refused') return ruled;
  const rewritten = referenceRewrites(ctx, { table, outgoing, c, rule: cls.rule, value: ruled.expression });
  const { rule, sensitive, declaredPublic } = cls;
  const described = [ruled.ruleText, ...rewritten.notes].filter((x) => x !== undefined);
  const ruleText = declaredPublic ? `${described.join(', ') || 'keep'}, public` : described.join(', ') || undefined;
  // Probes come only from columns classified personal: masked, or kept under a sensitive name
  // (searched by shape), and never declared public.
  const probe =
    !declaredPublic && isTextual(c) && rule !== undefined && (rule !== 'keep' || sensitive)
      ? { table: table.id, column: c.name, shapedOnly: rule === 'keep' }
      : undefined;
  const column = { name: c.name, expression: rewritten.expression, rule: ruleText, sensitive, ...(declaredPublic ? { public: true } : {}) };
  return { kind: 'copied', column, uncovered: ruled.uncovered, probe };
}

/** The column's value under its rule, or why it is uncovered (no rule on a column that needs one). */
function applyRule(
  ctx: TableContext,
  c: Column,
  cls: ColumnClass,
): { kind: 'refused'; error: string } | { kind: 'ruled'; expression: string; ruleText?: string; uncovered?: string } {
  const { key, rule, sensitive, ownName, declaredPublic } = cls;
  const kept = `t.${ident(c.name)}`;
  if (rule !== undefined) {
    if (rule !== 'keep' && cls.isKey)
      return { kind: 'refused', error: `${key} is part of a primary or foreign key; only keep is allowed there (rewriting it would break references)` };
    try {
      return { kind: 'ruled', expression: ruleExpression(rule, c, `columns ${key}`, ctx.req.secrets), ruleText: describeRule(rule) };
    } catch (e) {
      if (e instanceof RuleError) return { kind: 'refused', error: e.message };
      throw e;
    }
  }
  // Declared public: kept as it is, the declaration stands for the rule.
  if (declaredPublic) return { kind: 'ruled', expression: kept, ruleText: 'keep' };
  if (sensitive)
    return { kind: 'ruled', expression: kept, uncovered: ownName ? `${key} (matches "${sensitive}")` : `${key} (its table's name matches "${sensitive}")` };
  // Fail closed: free text (names, bios, comments, JSON) is kept only when the config says so.
  if (!cls.isKey && needsRule(c)) return { kind: 'ruled', expression: kept, uncovered: `${key} (${c.baseType})` };
  return { kind: 'ruled', expression: kept };
}

/**
 * The column's value as its references leave it: nulled by policy, repointed at a placeholder on a
 * row brought for structure, cleared by a reference without a foreign key; with a note per rewrite
 * for the report.
 */
function referenceRewrites(
  ctx: TableContext,
  { table, outgoing, c, rule, value }: { table: Table; outgoing: readonly FkPlan[]; c: Column; rule: ColumnRule | undefined; value: string },
): { expression: string; notes: string[] } {
  const id = table.id;
  const kept = rule === undefined || rule === 'keep';
  const notes: string[] = [];
  let expression = value;
  // A reference nulled by policy when its target row is not in the sample.
  const nulling = nullingKey(outgoing, c.name);
  if (nulling && kept) {
    // An owner cleared on a row that came along through another key is counted as the row is
    // written (a leaf has no member table to count it from afterwards).
    const m = ctx.mode.get(id) as TableMode;
    const counted = !ctx.keyed.has(id) && c.name === nulling.fk.columns[0] && clearableKeys(m, outgoing).includes(nulling);
    expression = nulledValue(nulling, ctx.temps.get(nulling.fk.refTable) ?? '', expression, counted ? clearedCounter(id, nulling) : undefined);
    notes.push(`fk ${nulling.policy === 'include' ? 'include (nulled if not kept)' : 'null'}`);
  }
  // On a row that came along for structure, a key whose owner is outside the sample points at the placeholder.
  const repointing = outgoing.find((p) => p.placeholder && p.fk.columns.includes(c.name));
  if (repointing?.placeholder && kept) {
    expression = placeholderValue({
      p: repointing,
      column: c.name,
      ownTemp: ctx.temps.get(id) ?? '',
      refTemp: ctx.temps.get(repointing.fk.refTable) ?? '',
      table,
      value: expression,
    });
    notes.push(`placeholder ${repointing.placeholder.table} ${repointing.placeholder.keyText} on rows brought for structure`);
  }
  // A column cleared when a reference without a foreign key finds a parent outside the sample.
  const clearing = clearingReferences(ctx.references, id, c.name);
  expression = referenceCleared(clearing, (t) => ctx.temps.get(t), expression);
  for (const r of clearing) notes.push(`reference ${r.policy === 'include' ? 'include (cleared if not kept)' : 'null'}`);
  return { expression, notes };
}

/** Refuses a plan with a rule that cannot apply, or a copied text column without a rule. */
function refuseUncoveredColumns(outcomes: readonly TableOutcome[]): void {
  const ruleErrors = outcomes.flatMap((o) => o.ruleErrors);
  const uncovered = outcomes.flatMap((o) => o.uncovered);
  if (ruleErrors.length) fail(ruleErrors.join('; '));
  if (uncovered.length) {
    fail(
      `refusing to start: ${uncovered.length} copied text column${uncovered.length > 1 ? 's have' : ' has'} no rule: ${uncovered.join(', ')}. ` +
        "Add a rule for each under sample.columns (null, rehash, fake-email, fake-name, dev-password, {sql: ...}) or keep if it holds nothing personal; resample with init: true writes a starter section from production's catalog.",
    );
  }
}

/** Policies that bring the named parent along: as a member (include), or for structure only. */
function bringsParent(policy: ForeignKeyPolicy): boolean {
  return policy === 'include' || policy === 'structure';
}

/** A sample.placeholders entry checked against the catalog: one line per problem. */
function resolvePlaceholder(catalog: Catalog, name: string, ph: PlaceholderSetting, mode: ReadonlyMap<string, TableMode>): PlaceholderPlan {
  const where = `placeholders.${name}`;
  const table = resolveTable(catalog, name, where);
  if (!table.primaryKey?.length) fail(`${where}: ${table.id} has no primary key for the placeholder's key`);
  const m = mode.get(table.id) as TableMode;
  if (!['root', 'owned', 'included'].includes(m))
    fail(`${where}: ${table.id} is ${m === 'reference' ? 'copied whole' : 'copied empty'}, so no row needs a placeholder there; remove the entry`);
  const keyColumns = table.primaryKey;
  const keyTexts = placeholderKeyTexts(where, table, ph.key);
  const values: Array<[string, string]> = keyColumns.map((k, i) => [k, `${literal(keyTexts[i])}::${columnType(table, k).type}`]);
  for (const [column, sql] of Object.entries(ph.values)) {
    const c = table.columns.find((x) => x.name === column);
    if (!c) fail(`${where}.values: ${table.id} has no column ${column}`);
    if (keyColumns.includes(column)) fail(`${where}.values: ${column} is the primary key; give it as key`);
    if (c.generated) fail(`${where}.values: ${table.id}.${column} is generated; leave it out`);
    values.push([column, `(${sql})::${c.type}`]);
  }
  const missing = table.columns.filter((c) => c.notNull && !c.generated && !c.hasDefault && !values.some(([n]) => n === c.name)).map((c) => c.name);
  if (missing.length) fail(`${where}: ${table.id}.${missing.join(', ')} NOT NULL without a default; give ${missing.length > 1 ? 'them' : 'it'} under values`);
  const keyText = typeof ph.key === 'string' ? ph.key : keyColumns.map((k, i) => `${k}=${keyTexts[i]}`).join(', ');
  return { table: table.id, keyColumns, keys: values.slice(0, keyColumns.length).map(([, v]) => v), keyText, values };
}

/** The placeholder's key, one text per primary-key column: a single value, or a map naming each column. */
function placeholderKeyTexts(where: string, table: Table, key: PlaceholderSetting['key']): string[] {
  const pk = table.primaryKey as string[];
  if (typeof key === 'string') {
    if (pk.length > 1)
      fail(`${where}.key: ${table.id}'s primary key has ${pk.length} columns; give key as a map naming each: {${pk.map((c) => `${c}: ...`).join(', ')}}`);
    return [key];
  }
  const named = Object.keys(key);
  if (named.length !== pk.length || !pk.every((c) => c in key))
    fail(`${where}.key: name exactly ${table.id}'s primary-key columns (${pk.join(', ')}); got ${named.join(', ') || 'none'}`);
  return pk.map((c) => key[c]);
}

/** The key points at exactly the placeholder table's primary key (in any column order). */
function samePlaceholderKey(p: FkPlan, ph: PlaceholderPlan): boolean {
  return p.fk.refColumns.length === ph.keyColumns.length && ph.keyColumns.every((c) => p.fk.refColumns.includes(c));
}

/**
 * A key into the placeholder's table that names other columns than its primary key (a unique
 * email, part of the key) cannot be re-pointed at it: where it cannot be cleared either, the config
 * must say what happens, rather than rows coming for structure being left out unannounced.
 */
function refuseUnmatchedKey(p: FkPlan, ph: PlaceholderPlan): never {
  const own = p.fk.table.split('.').pop();
  const key = `${own}(${p.fk.columns.join(', ')})`;
  fail(
    `placeholders.${ph.table.split('.').pop()}: ${p.fk.table}(${p.fk.columns.join(', ')}) → ${p.fk.refTable}(${p.fk.refColumns.join(', ')}) does not name the placeholder's key (${ph.keyColumns.join(', ')}), so its columns cannot all point at the placeholder; make the foreign key reference ${ph.table}(${ph.keyColumns.join(', ')}), or set foreign-keys ${key} to drop${p.nullable ? ' or null' : ''}`,
  );
}

/**
 * A key the placeholder rewrites must own its columns: a column it shares with the row's primary key
 * or with another foreign key (a tenant id, say) would be rewritten for that one too and break it.
 */
function refuseSharedKeyColumns(catalog: Catalog, p: FkPlan): void {
  const table = catalog.tables.find((t) => t.id === p.fk.table) as Table;
  const others = catalog.foreignKeys.filter((f) => f.table === p.fk.table && f.name !== p.fk.name);
  for (const c of p.fk.columns) {
    const other = others.find((f) => f.columns.includes(c));
    const inPk = table.primaryKey?.includes(c);
    if (!other && !inPk) continue;
    const shared = other ? `its foreign key ${p.fk.table}(${other.columns.join(', ')}) → ${other.refTable}` : `its primary key`;
    fail(
      `placeholders.${p.placeholder?.table.split('.').pop()}: ${p.fk.table}(${p.fk.columns.join(', ')}) → ${p.fk.refTable} shares ${c} with ${shared}, so a placeholder cannot stand in for it; set foreign-keys ${p.fk.table.split('.').pop()}(${p.fk.columns.join(', ')}) to drop or include instead of bringing ${p.fk.table.split('.').pop()} rows for structure`,
    );
  }
}

/**
 * A key column on a table whose rows can come along for structure (over alias t): on such a row
 * whose target is outside the sample, the placeholder's value for that column; else the value as
 * the policy leaves it. Every column of a key of several columns takes its part of the placeholder.
 */
function placeholderValue({
  p,
  column,
  ownTemp,
  refTemp,
  table,
  value,
}: {
  p: FkPlan;
  column: string;
  ownTemp: string;
  refTemp: string;
  table: Table;
  value: string;
}): string {
  const ph = p.placeholder as PlaceholderPlan;
  const part = ph.keys[ph.keyColumns.indexOf(p.fk.refColumns[p.fk.columns.indexOf(column)])];
  return `CASE WHEN ${allNotNull('t', p.fk.columns)} AND ${structuralRow('t', table, ownTemp)} AND NOT ${matchIn('t', p.fk.columns, refTemp, p.fk.refColumns)} THEN ${part} ELSE ${value} END`;
}

/** True for a row (over alias) that came along for structure. */
function structuralRow(alias: string, table: Table, temp: string): string {
  const pk = table.primaryKey as string[];
  return `${tuple(alias, pk)} IN (SELECT ${pk.map((c) => `m.${ident(c)}`).join(', ')} FROM pg_temp.${temp} m WHERE m.ts_struct)`;
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/** `t.a IS NULL OR t.b IS NULL`: MATCH SIMPLE ignores a key with any null column. */
function nullAny(alias: string, columns: readonly string[]): string {
  return columns.map((c) => `${alias}.${ident(c)} IS NULL`).join(' OR ');
}

function allNotNull(alias: string, columns: readonly string[]): string {
  return columns.map((c) => `${alias}.${ident(c)} IS NOT NULL`).join(' AND ');
}

function matchIn(alias: string, columns: readonly string[], temp: string, refColumns: readonly string[]): string {
  return `${tuple(alias, columns)} IN (SELECT ${refColumns.map((r) => `p.${ident(r)}`).join(', ')} FROM pg_temp.${temp} p)`;
}

function existsIn(alias: string, columns: readonly string[], temp: string, refColumns: readonly string[]): string {
  return `EXISTS (SELECT 1 FROM pg_temp.${temp} p WHERE ${refColumns.map((r, i) => `p.${ident(r)} = ${alias}.${ident(columns[i])}`).join(' AND ')})`;
}

function tableById(plan: SamplePlan, id: string): TablePlan {
  return plan.tables.find((t) => t.table.id === id) as TablePlan;
}

function columnType(table: Table, name: string): Column {
  return table.columns.find((c) => c.name === name) as Column;
}

/** The key that nulls a column when its target row is not in the sample (policy null, or include on a nullable key). */
function nullingKey(outgoing: readonly FkPlan[], column: string): FkPlan | undefined {
  return outgoing.find((p) => p.fk.columns.includes(column) && !p.strict && p.target !== 'all');
}

/**
 * A column under a nulling key as copied (over alias t): its value while the key is null or its
 * target a member, else null. With `counter`, each nulled row also advances that temporary sequence
 * (allowed in the read-only snapshot), so the COPY itself counts them.
 */
function nulledValue(p: FkPlan, refTemp: string, value: string, counter?: string): string {
  const cond =
    p.target === 'none'
      ? nullAny('t', p.fk.columns)
      : `${nullAny('t', p.fk.columns)} OR ${tuple('t', p.fk.columns)} IN (SELECT ${p.fk.refColumns.map((r) => `p.${ident(r)}`).join(', ')} FROM pg_temp.${refTemp} p)`;
  return `CASE WHEN ${cond} THEN ${value}${counter ? ` WHEN nextval(${literal(`pg_temp.${counter}`)}) > 0 THEN NULL` : ''} END`;
}

/** Owning keys of an owned table with several owners whose reference a copied row may lose (see clearableOwners). */
function clearableKeys(mode: TableMode, outgoing: readonly FkPlan[]): FkPlan[] {
  if (mode !== 'owned' || outgoing.filter((p) => p.owning).length < 2) return [];
  return outgoing.filter((p) => p.owning && !p.strict && p.target === 'members');
}

/** The temporary sequence counting a leaf table's rows copied with this owner cleared. */
function clearedCounter(table: string, p: FkPlan): string {
  return `ts_c${createHash('md5').update(`${table}|${p.fk.name}`).digest('hex').slice(0, 12)}`;
}

/**
 * Per CHECK in checkDrops, the condition (over alias t) that the row as copied, its references
 * nulled, still passes it: a CHECK passes unless FALSE. The expression's unqualified column names
 * resolve to the innermost scope, the row with the nulled values.
 */
export function checkGuards(plan: SamplePlan, tp: TablePlan): Array<{ name: string; guard: string }> {
  return tp.checkDrops.map((name) => {
    const check = (tp.table.checks ?? []).find((k) => k.name === name) as Check;
    const values = check.columns.map((c) => {
      const generated = columnType(tp.table, c)?.generated;
      const p = generated ? undefined : nullingKey(tp.outgoing, c);
      let value = `t.${ident(c)}`;
      if (p) value = nulledValue(p, tableById(plan, p.fk.refTable).temp, value);
      // A column a reference without a foreign key clears, as the COPY clears it.
      if (!generated) value = referenceCleared(clearingReferences(plan.references, tp.table.id, c), (t) => tempOf(plan, t), value);
      return `${value} AS ${ident(c)}`;
    });
    return { name, guard: `(SELECT (${check.expression}) IS NOT FALSE FROM (SELECT ${values.join(', ')}) n)` };
  });
}

/** The root's sampling condition, over alias t. */
export function rootCondition(plan: SamplePlan): string {
  const root = tableById(plan, plan.root).table;
  const pk = root.primaryKey as string[];
  const keyText = pk.length === 1 ? `t.${ident(pk[0])}::text` : `concat_ws(',', ${pk.map((c) => `t.${ident(c)}::text`).join(', ')})`;
  const hash = `('x' || substr(md5(${literal(plan.seed)} || ':' || ${keyText}), 1, 13))::bit(${HASH_BITS})::bigint`;
  const sampled = `${hash} < ${thresholdFor(plan.fraction)}`;
  const filtered = plan.settings.filter ? `(${plan.settings.filter}) AND ${sampled}` : sampled;
  const include = plan.settings.include.length ? ` OR ${keyText} IN (${plan.settings.include.map(literal).join(', ')})` : '';
  return `(${filtered})${include}`;
}

/**
 * The WHERE clause selecting a table's copied rows (over alias t). A keyed table's CHECK guards act
 * on its member keys (membershipProgram), a leaf's here.
 */
export function rowCondition(plan: SamplePlan, tp: TablePlan): string | undefined {
  if (tp.keyed)
    return `${tuple('t', tp.table.primaryKey as string[])} IN (SELECT ${(tp.table.primaryKey as string[]).map((c) => `m.${ident(c)}`).join(', ')} FROM pg_temp.${tp.temp} m)`;
  const parts = [leafCondition(plan, tp), ...checkGuards(plan, tp).map((g) => g.guard)].filter((x) => x !== undefined);
  return parts.length ? parts.join(' AND ') : undefined;
}

/** A table without member keys: every row of a reference table, else owned rows whose strict keys hold. */
function leafCondition(plan: SamplePlan, tp: TablePlan): string | undefined {
  if (tp.mode === 'reference') return undefined;
  // A leaf: owned through any owning key, and every strict key satisfied.
  const owning = tp.outgoing.filter((p) => p.owning).map((p) => matchIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns));
  const strict = tp.outgoing
    .filter((p) => p.strict && p.target !== 'all')
    .map((p) =>
      p.target === 'none'
        ? `(${nullAny('t', p.fk.columns)})`
        : `(${nullAny('t', p.fk.columns)} OR ${matchIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns)})`,
    );
  const virtual = plan.references.filter((r) => r.table === tp.table.id && r.strict).map((r) => parentsPresent(r, tempOf(plan, r.refTable)));
  return [`(${owning.join(' OR ') || 'false'})`, ...strict, ...virtual].join(' AND ');
}

function tempOf(plan: SamplePlan, id: string): string | undefined {
  return plan.tables.find((t) => t.table.id === id)?.temp || undefined;
}

/**
 * The membership program: fills each keyed table's temporary table, growing the sample along
 * `include` keys until nothing changes, then pruning rows whose strict references dangle (and owned
 * rows whose owners were pruned) until nothing changes. Runs inside the read-only transaction;
 * only temporary tables are written.
 */
export function membershipProgram(plan: SamplePlan): string {
  const anyStructure = structureKeys(plan).length + structureReferences(plan).length > 0;
  const lines = [
    `DECLARE ts_n bigint; ts_total bigint; ts_round int := 0;${anyStructure ? ' ts_added bigint;' : ''}`,
    'BEGIN',
    ...placeholderGuards(plan),
    seedRoot(plan),
    // Grow and prune the sample; then bring the ancestors of what survived for structure, and again
    // until they bring nothing new (rows they own come along and are pruned like any other).
    ...(anyStructure ? ['  LOOP'] : []),
    ...growLoop(plan),
    // Before the parents named for structure are in, a structure reference is not checked (the
    // parent may still come).
    ...pruneLoop(plan, !anyStructure),
    ...(anyStructure
      ? [
          ...structureLoop(plan),
          '  EXIT WHEN ts_added = 0;',
          '  END LOOP;',
          // Now every parent that could come for structure is in: a row naming one that could not is left out.
          ...pruneLoop(plan, true),
        ]
      : []),
    'END',
  ];
  return doBlock(lines.join('\n'));
}

/** A statement of the program, and the count of the rows it changed added to ts_total. */
function counted(sql: string): string[] {
  return [`  ${sql}`, '  GET DIAGNOSTICS ts_n = ROW_COUNT; ts_total := ts_total + ts_n;'];
}

function memberColumnsOf(tp: TablePlan, alias: string): string {
  return tp.memberColumns.map((c) => `${alias}.${ident(c)}`).join(', ');
}

function memberTarget(tp: TablePlan): string {
  return `pg_temp.${tp.temp} (${tp.memberColumns.map(ident).join(', ')}, ts_keep)`;
}

function structureKeys(plan: SamplePlan): FkPlan[] {
  return plan.fks.filter((p) => p.policy === 'structure' && p.target === 'members');
}

function structureReferences(plan: SamplePlan): ReferencePlan[] {
  return plan.references.filter((r) => r.policy === 'structure' && r.target === 'members');
}

/** A placeholder's key must be no real row's, or dev could not tell the two apart. */
function placeholderGuards(plan: SamplePlan): string[] {
  return plan.placeholders.map((ph) => {
    const tp = tableById(plan, ph.table);
    return `  IF EXISTS (SELECT 1 FROM ${from(tp.table)} t WHERE ${tuple('t', ph.keyColumns)} = ${ph.keys.length === 1 ? ph.keys[0] : `(${ph.keys.join(', ')})`}) THEN RAISE EXCEPTION '%', ${literal(
      `sample.placeholders.${tp.table.name}: production has a row with key ${ph.keyText}; pick a key production does not use`,
    )}; END IF;`;
  });
}

function seedRoot(plan: SamplePlan): string {
  const rootPlan = tableById(plan, plan.root);
  return `  INSERT INTO ${memberTarget(rootPlan)} SELECT ${memberColumnsOf(rootPlan, 't')}, true FROM ${from(rootPlan.table)} t WHERE ${rootCondition(plan)} ON CONFLICT DO NOTHING;`;
}

/** One round after another, owned rows follow their owners and included parents come, until nothing changes. */
function growLoop(plan: SamplePlan): string[] {
  const includes = plan.fks.filter((p) => p.policy === 'include' && p.target === 'members');
  // Parents named by references without a foreign key: an included row's own parents follow in the next round.
  const virtualIncludes = plan.references.filter((r) => r.policy === 'include' && r.target === 'members');
  return [
    '  LOOP',
    '  ts_total := 0; ts_round := ts_round + 1;',
    ...plan.tables.filter((tp) => tp.keyed && tp.mode === 'owned').flatMap((tp) => counted(ownedRows(plan, tp))),
    ...includes.flatMap((p) => counted(includedByKey(plan, p))),
    ...virtualIncludes.flatMap((r) => counted(includedByReference(plan, r))),
    `  EXIT WHEN ts_total = 0${includes.length || virtualIncludes.length ? '' : ' OR true'};`,
    '  END LOOP;',
  ];
}

function ownedRows(plan: SamplePlan, tp: TablePlan): string {
  const owning = tp.outgoing.filter((p) => p.owning).map((p) => matchIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns));
  return `INSERT INTO ${memberTarget(tp)} SELECT ${memberColumnsOf(tp, 't')}, false FROM ${from(tp.table)} t WHERE ${owning.join(' OR ')} ON CONFLICT DO NOTHING;`;
}

/** Structural rows include nothing: their owners stay outside the sample. */
function membersOnly(src: TablePlan, alias: string): string {
  return src.structural ? ` WHERE NOT ${alias}.ts_struct` : '';
}

/** An include makes a row a member, even one that came for structure before. */
function includeConflict(dst: TablePlan): string {
  const upgrade = dst.structural
    ? `DO UPDATE SET ts_keep = true, ts_struct = false WHERE NOT pg_temp.${dst.temp}.ts_keep OR pg_temp.${dst.temp}.ts_struct`
    : `DO UPDATE SET ts_keep = true WHERE NOT pg_temp.${dst.temp}.ts_keep`;
  return `ON CONFLICT (${(dst.table.primaryKey as string[]).map(ident).join(', ')}) ${upgrade}`;
}

function includedByKey(plan: SamplePlan, p: FkPlan): string {
  const src = tableById(plan, p.fk.table);
  const dst = tableById(plan, p.fk.refTable);
  return (
    `INSERT INTO ${memberTarget(dst)} SELECT ${memberColumnsOf(dst, 't')}, true FROM ${from(dst.table)} t WHERE ${tuple('t', p.fk.refColumns)} IN (SELECT ${p.fk.columns.map((c) => `s.${ident(c)}`).join(', ')} FROM pg_temp.${src.temp} s${membersOnly(src, 's')}) ` +
    `${includeConflict(dst)};`
  );
}

function includedByReference(plan: SamplePlan, r: ReferencePlan): string {
  const src = tableById(plan, r.table);
  const dst = tableById(plan, r.refTable);
  const srcPk = src.table.primaryKey as string[];
  return (
    `INSERT INTO ${memberTarget(dst)} SELECT ${memberColumnsOf(dst, 't')}, true FROM ${from(dst.table)} t WHERE t.${ident(r.refColumn)} IN (SELECT ts_k.v FROM ${from(src.table)} s, ${parentKeys(r)} ` +
    `WHERE ${tuple('s', srcPk)} IN (SELECT ${srcPk.map((c) => `m.${ident(c)}`).join(', ')} FROM pg_temp.${src.temp} m${membersOnly(src, 'm')})) ` +
    `${includeConflict(dst)};`
  );
}

/** Prunes rows whose strict references dangle, until nothing changes; structure references only `withStructure`. */
function pruneLoop(plan: SamplePlan, withStructure: boolean): string[] {
  return [
    '  LOOP',
    '  ts_total := 0;',
    ...plan.tables.filter((t) => t.keyed).flatMap((tp) => pruneTable(plan, tp, withStructure)),
    '  EXIT WHEN ts_total = 0;',
    '  END LOOP;',
  ];
}

function pruneTable(plan: SamplePlan, tp: TablePlan, withStructure: boolean): string[] {
  const pk = tp.table.primaryKey as string[];
  const lines: string[] = [];
  for (const r of plan.references) {
    if (r.table !== tp.table.id || !r.strict || (r.policy === 'structure' && !withStructure)) continue;
    lines.push(
      ...counted(
        `DELETE FROM pg_temp.${tp.temp} m WHERE ${tuple('m', pk)} IN (SELECT ${pk.map((c) => `t.${ident(c)}`).join(', ')} FROM ${from(tp.table)} t ` +
          `WHERE ${tuple('t', pk)} IN (SELECT ${pk.map((c) => `x.${ident(c)}`).join(', ')} FROM pg_temp.${tp.temp} x) AND NOT ${parentsPresent(r, tempOf(plan, r.refTable))});`,
      ),
    );
  }
  for (const p of tp.outgoing) {
    if (!p.strict || p.target === 'all' || (p.policy === 'structure' && !withStructure)) continue;
    // A row that came for structure keeps a key the placeholder stands in for.
    const repointed = p.placeholder ? ' AND NOT t.ts_struct' : '';
    const dangling = p.target === 'none' ? '' : ` AND NOT ${existsIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns)}${repointed}`;
    lines.push(...counted(`DELETE FROM pg_temp.${tp.temp} t WHERE ${allNotNull('t', p.fk.columns)}${dangling};`));
  }
  if (tp.mode === 'owned') {
    const owning = tp.outgoing.filter((p) => p.owning).map((p) => existsIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns));
    lines.push(...counted(`DELETE FROM pg_temp.${tp.temp} t WHERE NOT t.ts_keep AND NOT (${owning.join(' OR ')});`));
  }
  // Members whose nulled references would break a CHECK: gone before anything looks them up.
  for (const g of checkGuards(plan, tp)) {
    lines.push(
      ...counted(
        `DELETE FROM pg_temp.${tp.temp} m USING ${from(tp.table)} t WHERE ${pk.map((c) => `m.${ident(c)} = t.${ident(c)}`).join(' AND ')} AND NOT ${g.guard};`,
      ),
      `  IF ts_n > 0 THEN INSERT INTO pg_temp.${CHECK_DROPS_TABLE} VALUES (${literal(tp.table.id)}, ${literal(g.name)}, ts_n); END IF;`,
    );
  }
  return lines;
}

/**
 * Parents named for structure by the rows that survived (an owned row about to be pruned names
 * none), kept whatever their owners; a row already owned but not kept becomes one of them. Again
 * until they bring nothing new.
 */
function structureLoop(plan: SamplePlan): string[] {
  return [
    '  ts_added := 0;',
    '  LOOP',
    '  ts_total := 0;',
    ...structureKeys(plan).flatMap((p) => counted(structureByKey(plan, p))),
    ...structureReferences(plan).flatMap((r) => counted(structureByReference(plan, r))),
    '  ts_added := ts_added + ts_total;',
    '  EXIT WHEN ts_total = 0;',
    '  END LOOP;',
  ];
}

function structureConflict(dst: TablePlan): string {
  return `ON CONFLICT (${(dst.table.primaryKey as string[]).map(ident).join(', ')}) DO UPDATE SET ts_keep = true, ts_struct = true WHERE NOT pg_temp.${dst.temp}.ts_keep`;
}

function structureByKey(plan: SamplePlan, p: FkPlan): string {
  const src = tableById(plan, p.fk.table);
  const dst = tableById(plan, p.fk.refTable);
  return (
    `INSERT INTO pg_temp.${dst.temp} (${dst.memberColumns.map(ident).join(', ')}, ts_keep, ts_struct) SELECT ${memberColumnsOf(dst, 't')}, true, true FROM ${from(dst.table)} t ` +
    `WHERE ${tuple('t', p.fk.refColumns)} IN (SELECT ${p.fk.columns.map((c) => `s.${ident(c)}`).join(', ')} FROM pg_temp.${src.temp} s)${structureReady(plan, dst)} ${structureConflict(dst)};`
  );
}

function structureByReference(plan: SamplePlan, r: ReferencePlan): string {
  const src = tableById(plan, r.table);
  const dst = tableById(plan, r.refTable);
  const srcPk = src.table.primaryKey as string[];
  return (
    `INSERT INTO pg_temp.${dst.temp} (${dst.memberColumns.map(ident).join(', ')}, ts_keep, ts_struct) SELECT ${memberColumnsOf(dst, 't')}, true, true FROM ${from(dst.table)} t ` +
    `WHERE t.${ident(r.refColumn)} IN (SELECT ts_k.v FROM ${from(src.table)} s, ${parentKeys(r)} ` +
    `WHERE ${tuple('s', srcPk)} IN (SELECT ${srcPk.map((c) => `m.${ident(c)}`).join(', ')} FROM pg_temp.${src.temp} m))${structureReady(plan, dst)} ${structureConflict(dst)};`
  );
}

function doBlock(body: string): string {
  const tag = dollarTag(body);
  return `DO ${tag}\n${body}\n${tag};`;
}

/**
 * ` AND ...` over a parent row (alias t) about to come for structure: its strict keys hold, except
 * those a placeholder stands in for and structure references (checked once all such parents are
 * in). A parent that could not stay is never brought, so bringing and pruning cannot alternate.
 */
function structureReady(plan: SamplePlan, dst: TablePlan): string {
  const keys = dst.outgoing
    .filter((p) => p.strict && p.target !== 'all' && !p.placeholder && p.policy !== 'structure')
    .map((p) =>
      p.target === 'none'
        ? `(${nullAny('t', p.fk.columns)})`
        : `(${nullAny('t', p.fk.columns)} OR ${existsIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns)})`,
    );
  const refs = plan.references
    .filter((r) => r.table === dst.table.id && r.strict && r.policy !== 'structure')
    .map((r) => parentsPresent(r, tempOf(plan, r.refTable)));
  return [...keys, ...refs].map((c) => ` AND ${c}`).join('');
}

/** `CREATE TEMP TABLE` statements for the member keys, and the members dropped by a CHECK (run before the read-only transaction). */
export function tempTables(plan: SamplePlan): string[] {
  const keyed = plan.tables.filter((t) => t.keyed);
  const out = keyed.map((tp) => {
    const defs = tp.memberColumns.map((c) => `${ident(c)} ${columnType(tp.table, c).type}`);
    const struct = tp.structural ? ', ts_struct boolean NOT NULL DEFAULT false' : '';
    return `CREATE TEMP TABLE ${tp.temp} (${defs.join(', ')}, ts_keep boolean NOT NULL${struct}, PRIMARY KEY (${(tp.table.primaryKey as string[]).map(ident).join(', ')}));`;
  });
  if (keyed.some((tp) => tp.checkDrops.length)) out.push(`CREATE TEMP TABLE ${CHECK_DROPS_TABLE} (tbl text, con text, n bigint);`);
  for (const { tp, fks } of clearableOwners(plan)) if (!tp.keyed) for (const p of fks) out.push(`CREATE TEMP SEQUENCE ${clearedCounter(tp.table.id, p)};`);
  return out;
}

/** The SELECT producing a table's rows as they land in dev: only member rows, rules applied. */
export function selectFor(plan: SamplePlan, tp: TablePlan): string {
  const where = rowCondition(plan, tp);
  return `SELECT ${tp.columns.map((c) => c.expression).join(', ')} FROM ${from(tp.table)} t${where ? ` WHERE ${where}` : ''}`;
}

export function copyHeader(tp: TablePlan): string {
  return `COPY ${qualified(tp.table.schema, tp.table.name)} (${tp.columns.map((c) => ident(c.name)).join(', ')}) FROM stdin;`;
}

export const PROBE_TABLE = 'ts_probe';
export const CLEARED_TABLE = 'ts_cleared';
/** Production side: member rows each CHECK dropped, per pruning round. */
export const CHECK_DROPS_TABLE = 'ts_check_drops';

/**
 * Owning keys whose reference a copied row may lose: the row came along through another of its
 * keys (a comment on a sampled post) while this owner (its author) is outside the sample, so the
 * reference is cleared. Counted per table and key for the report.
 */
export function clearableOwners(plan: SamplePlan): Array<{ tp: TablePlan; fks: FkPlan[] }> {
  return plan.tables.map((tp) => ({ tp, fks: clearableKeys(tp.mode, tp.outgoing) })).filter((x) => x.fks.length > 0);
}

/**
 * Rows (table, name, count, kind), read in the same snapshot: per owning key, copied rows whose
 * owner was cleared (kind owner); per CHECK in checkDrops, rows it dropped (kind check; a row
 * breaking several is counted under the first).
 */
export function clearedSelect(plan: SamplePlan): string | undefined {
  const parts = clearableOwners(plan).map(({ tp, fks }) => {
    // A leaf counted its cleared owners while its rows were copied (clearedCounter).
    if (!tp.keyed)
      return fks
        .map(
          (p) =>
            `SELECT ${literal(tp.table.id)}, ${literal(p.fk.name)}, CASE WHEN is_called THEN last_value ELSE 0 END, 'owner' FROM pg_temp.${clearedCounter(tp.table.id, p)}`,
        )
        .join(' UNION ALL ');
    // A row that came for structure points at the placeholder instead (counted below).
    const cleared = fks.map(
      (p, i) =>
        `count(*) FILTER (WHERE NOT (${nullAny('t', p.fk.columns)}) AND NOT ${existsIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns)}${p.placeholder ? ' AND NOT t.ts_struct' : ''}) AS n${i}`,
    );
    // A keyed table's members (and their keys) are already in its temporary table.
    const values = fks.map((p, i) => `(${literal(tp.table.id)}, ${literal(p.fk.name)}, s.n${i}, 'owner')`).join(', ');
    return `SELECT v.* FROM (SELECT ${cleared.join(', ')} FROM pg_temp.${tp.temp} t) s CROSS JOIN LATERAL (VALUES ${values}) v(tbl, fk, n, kind)`;
  });
  for (const tp of plan.tables.filter((t) => !t.keyed && t.checkDrops.length)) {
    const guards = checkGuards(plan, tp).map((g) => g.guard);
    const counts = guards.map((g, i) => `count(*) FILTER (WHERE ${[...guards.slice(0, i), `NOT ${g}`].join(' AND ')}) AS n${i}`);
    const where = leafCondition(plan, tp);
    const values = tp.checkDrops.map((name, i) => `(${literal(tp.table.id)}, ${literal(name)}, s.n${i}, 'check')`).join(', ');
    parts.push(
      `SELECT v.* FROM (SELECT ${counts.join(', ')} FROM ${from(tp.table)} t${where ? ` WHERE ${where}` : ''}) s CROSS JOIN LATERAL (VALUES ${values}) v(tbl, fk, n, kind)`,
    );
  }
  // Rows that came for structure (kind structure), and those of them pointing at a placeholder, per key (kind placeholder).
  for (const tp of plan.tables.filter((t) => t.structural)) {
    const repointed = tp.outgoing.filter((p) => p.placeholder);
    const counts = [
      'count(*) FILTER (WHERE t.ts_struct) AS n0',
      ...repointed.map(
        (p, i) =>
          `count(*) FILTER (WHERE t.ts_struct AND NOT (${nullAny('t', p.fk.columns)}) AND NOT ${existsIn('t', p.fk.columns, tableById(plan, p.fk.refTable).temp, p.fk.refColumns)}) AS n${i + 1}`,
      ),
    ];
    const values = [
      `(${literal(tp.table.id)}, '', s.n0, 'structure')`,
      ...repointed.map((p, i) => `(${literal(tp.table.id)}, ${literal(p.fk.name)}, s.n${i + 1}, 'placeholder')`),
    ].join(', ');
    parts.push(`SELECT v.* FROM (SELECT ${counts.join(', ')} FROM pg_temp.${tp.temp} t) s CROSS JOIN LATERAL (VALUES ${values}) v(tbl, fk, n, kind)`);
  }
  if (plan.tables.some((t) => t.keyed && t.checkDrops.length))
    parts.push(`SELECT tbl, con, sum(n)::bigint, 'check' FROM pg_temp.${CHECK_DROPS_TABLE} GROUP BY tbl, con`);
  return parts.length ? parts.join(' UNION ALL ') : undefined;
}

/**
 * Probes are drawn from the first copied values of each column, this many per probe wanted: the
 * scan stops there instead of reading a large table's copied rows again.
 */
const PROBE_POOL = 50;

/** Real values of sensitive columns among the copied rows, for the leak scan (values unique among those read). */
export function probeSelect(plan: SamplePlan): string | undefined {
  const limit = plan.settings['leak-scan']['values-per-column'];
  const minLength = plan.settings['leak-scan']['min-length'];
  const parts = plan.probes.map((p) => {
    const tp = tableById(plan, p.table);
    const where = rowCondition(plan, tp);
    const c = `t.${ident(p.column)}`;
    const shaped = p.shapedOnly ? ` AND v ~ ${literal(PERSONAL_SHAPE)}` : '';
    return (
      `(SELECT ${literal(`${p.table}.${p.column}`)}, v, ${p.shapedOnly} FROM (SELECT v FROM (SELECT ${c}::text AS v FROM ${from(tp.table)} t WHERE ${where ? `(${where}) AND ` : ''}${c} IS NOT NULL LIMIT ${limit * PROBE_POOL}) r GROUP BY 1 HAVING count(*) = 1) s ` +
      `WHERE length(v) >= ${minLength}${shaped} ORDER BY md5(v) LIMIT ${limit})`
    );
  });
  return parts.length ? parts.join(' UNION ALL ') : undefined;
}

/**
 * The whole production-side psql script. Its standard output is a psql script for the staging
 * database: one `COPY ... FROM stdin` block per copied table, then the leak-scan probes into a
 * temporary table of the receiving session.
 */
export function productionScript(plan: SamplePlan): string {
  const out: string[] = [];
  // No statement limit (a big sample takes long), but never queued behind a lock for long either.
  // work_mem: membership lookups inside OR'd conditions and CASE expressions are subplans, hashed
  // only when the member keys fit; at the default 4MB they stop fitting and cost grows with rows².
  // 32MB holds millions of keys and is a session setting (the bench shows the difference).
  out.push(
    "SET client_min_messages = warning; SET statement_timeout = 0; SET lock_timeout = '30s'; SET work_mem = '32MB'; SET jit = off; SET idle_in_transaction_session_timeout = 0; SET application_name = 'twinstack resample';",
  );
  // The read-only role starts every transaction read-only; its temporary tables are the one thing
  // it writes (a role without rights on production's tables can write nothing else).
  out.push('SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;');
  out.push(...tempTables(plan));
  // From here the session writes nothing but its temporary tables: every transaction is read-only,
  // and the config's expressions (parsed and allowlisted beforehand, see sql-guard.ts) run inside the snapshot.
  out.push('SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET standard_conforming_strings = on;');
  out.push('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;');
  out.push(membershipProgram(plan));
  for (const tp of plan.tables) {
    if (!['root', 'owned', 'included', 'reference'].includes(tp.mode) || tp.columns.length === 0) continue;
    out.push(`SELECT ${literal(copyHeader(tp))};`);
    out.push(`COPY (${selectFor(plan, tp)}) TO STDOUT;`);
    out.push(`SELECT ${literal('\\.')};`);
  }
  const cleared = clearedSelect(plan);
  if (cleared) {
    out.push(`SELECT ${literal(`COPY pg_temp.${CLEARED_TABLE} (tbl, fk, n, kind) FROM stdin;`)};`);
    out.push(`COPY (${cleared}) TO STDOUT;`);
    out.push(`SELECT ${literal('\\.')};`);
  }
  const probes = probeSelect(plan);
  if (probes) {
    out.push(`SELECT ${literal(`COPY pg_temp.${PROBE_TABLE} (src, v, shaped) FROM stdin;`)};`);
    out.push(`COPY (${probes}) TO STDOUT;`);
    out.push(`SELECT ${literal('\\.')};`);
  }
  out.push('COMMIT;');
  return `${out.join('\n')}\n`;
}

/** The placeholder rows, inserted in staging after the rows (their columns not given take their defaults). */
export function placeholderInserts(plan: SamplePlan): string | undefined {
  if (!plan.placeholders.length) return undefined;
  return plan.placeholders
    .map((ph) => {
      const t = tableById(plan, ph.table).table;
      return `INSERT INTO ${qualified(t.schema, t.name)} (${ph.values.map(([c]) => ident(c)).join(', ')}) VALUES (${ph.values.map(([, v]) => v).join(', ')});`;
    })
    .join(' ');
}

export function copiedTables(plan: SamplePlan): TablePlan[] {
  return plan.tables.filter((t) => ['root', 'owned', 'included', 'reference'].includes(t.mode));
}

export { from as fromClause };
