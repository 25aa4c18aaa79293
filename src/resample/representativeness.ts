/**
 * How representative the sample is: per sampled table, the fraction copied against the target, and
 * for the busiest foreign keys the children per parent (median and p90) in production against the
 * sample. A table far from the target is a warning naming the policy that put it there (a `drop`
 * default that starves a child table, an `include` that floods a parent table).
 *
 * Cheap by design: the fractions come from figures the run already has (production's row counts,
 * exact or pg_class.reltuples, and the rows it copied); the children per parent cost one aggregate
 * per busy key, in production through the read-only role (on one hash bucket of a large parent
 * table's parents, see FANOUT_PARENTS) and in staging in the session that already counts rows and
 * orphans.
 */
import { z } from 'zod';
import type { Environment } from '../domain/environment';
import { errorMessage } from '../infra/errors';
import type { Host } from '../infra/host';
import { ident, literal } from '../infra/sql';
import type { Summary } from '../infra/summary';
import { queryJson } from './catalog';
import { fromClause, type FkPlan, type SamplePlan, type TablePlan } from './plan';
import type { RepresentativenessSettings } from '../config/representativeness';

export interface TableFraction {
  table: string;
  mode: string;
  prodRows: number;
  prodRowsExact: boolean;
  copied: number;
  /** copied / prodRows. */
  fraction: number;
  /** fraction / the target. */
  ratio: number;
  /** Enough rows expected to judge it (sample.representativeness.min-expected-rows). */
  judged: boolean;
  outside?: 'low' | 'high';
  /** The policy responsible, when outside. */
  cause?: string;
}

/** Children per parent of one key; median and p90 are null when the parent table is empty. */
export const fanout = z.object({
  parents: z.number(),
  median: z.number().nullable(),
  p90: z.number().nullable(),
  /** Set when only one hash bucket of the parents was measured (production's large tables): which share. */
  measured: z.string().optional(),
});
export type Fanout = z.infer<typeof fanout>;

/** fanoutSql's answer: one Fanout per key label. */
export const fanoutByKey = z.record(fanout);

export interface KeyFanout {
  /** `child(columns) → parent`, as sample.foreign-keys names it. */
  key: string;
  childRows: number;
  prod?: Fanout;
  sample?: Fanout;
}

export interface Representativeness {
  target: number;
  bounds: [number, number];
  tables: TableFraction[];
  keys: KeyFanout[];
  /** Production's children-per-parent query, in ms (it runs beside the rows' stream). */
  prodMs: number;
}

/** The figures the engine already has for one table. */
export interface CopiedTable {
  table: string;
  mode: string;
  prodRows: number;
  prodRowsExact: boolean;
  copied: number;
  checkDrops: Array<{ check: string; rows?: number }>;
}

const SAMPLED_MODES = ['root', 'owned', 'included'];

const short = (id: string) => (id.startsWith('public.') ? id.slice(7) : id);

/** A foreign key as sample.foreign-keys names it, with its target: `comment(post_id) → public.post`. */
export function keyLabel(p: FkPlan): string {
  return `${short(p.fk.table)}(${p.fk.columns.join(', ')}) → ${p.fk.refTable}`;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const times = (x: number) => `${x.toFixed(2)}x`;

/** The busiest foreign keys between sampled tables: most child rows in production first. */
export function busiestKeys(plan: SamplePlan, count: number): FkPlan[] {
  const byId = new Map(plan.tables.map((t) => [t.table.id, t]));
  const sampled = (id: string) => SAMPLED_MODES.includes(byId.get(id)?.mode ?? '');
  return plan.fks
    .filter((p) => p.target === 'members' && sampled(p.fk.table) && sampled(p.fk.refTable))
    .sort((a, b) => byId.get(b.fk.table)!.table.rows - byId.get(a.fk.table)!.table.rows || (keyLabel(a) < keyLabel(b) ? -1 : 1))
    .slice(0, count);
}

/**
 * Production's children per parent are measured on about this many parents per key: the parents
 * whose key hashes into one bucket of a power of two, and only their children, so the aggregate
 * stays in memory on a large production (500,000 parents grouped over 10 million children spilled
 * to disk beside the rows' stream). The buckets are a uniform draw of parents, and each measured
 * parent's count is exact, so median and p90 are estimates of production's own.
 */
export const FANOUT_PARENTS = 20_000;

/** The power of two that leaves about FANOUT_PARENTS of `rows` parents in one bucket (1: every parent). */
export function fanoutBuckets(rows: number): number {
  let m = 1;
  while (rows / m > FANOUT_PARENTS * 2 && m < 1 << 20) m *= 2;
  return m;
}

/** One aggregate per key: every parent row (or those of one hash bucket of `buckets`) with its count of children (0 included), then median and p90. */
function fanoutExpression(plan: SamplePlan, p: FkPlan, buckets: number): string {
  const child = plan.tables.find((t) => t.table.id === p.fk.table)!.table;
  const parent = plan.tables.find((t) => t.table.id === p.fk.refTable)!.table;
  const keys = p.fk.columns.map((c, i) => `c.${ident(c)} AS k${i}`).join(', ');
  const notNull = p.fk.columns.map((c) => `c.${ident(c)} IS NOT NULL`).join(' AND ');
  const match = p.fk.refColumns.map((c, i) => `n.k${i} = p.${ident(c)}`).join(' AND ');
  const groups = p.fk.columns.map((_c, i) => i + 1).join(', ');
  // The same hash of the same values on both sides: a row's key as text, as row(...)::text prints it.
  const bucket = (alias: string, cols: readonly string[]) =>
    `(hashtext(row(${cols.map((c) => `${alias}.${ident(c)}`).join(', ')})::text) & ${buckets - 1}) = 0`;
  const childWhere = buckets > 1 ? `${notNull} AND ${bucket('c', p.fk.columns)}` : notNull;
  const parentWhere = buckets > 1 ? ` WHERE ${bucket('p', p.fk.refColumns)}` : '';
  const counted = `(SELECT ${keys}, count(*) AS n FROM ${fromClause(child)} c WHERE ${childWhere} GROUP BY ${groups}) n`;
  const n = 'coalesce(n.n, 0)';
  return (
    `(SELECT json_build_object('parents', count(*), 'median', percentile_disc(0.5) WITHIN GROUP (ORDER BY ${n}), ` +
    `'p90', percentile_disc(0.9) WITHIN GROUP (ORDER BY ${n})) FROM ${fromClause(parent)} p LEFT JOIN ${counted} ON ${match}${parentWhere})`
  );
}

/** The parent table's rows as the catalog estimated them. */
function parentRows(plan: SamplePlan, p: FkPlan): number {
  return plan.tables.find((t) => t.table.id === p.fk.refTable)?.table.rows ?? 0;
}

/**
 * The children per parent of each key, as one JSON object keyed by keyLabel (the same SQL reads
 * production and staging). `measure: 'buckets'` (production) measures a large parent table on one
 * hash bucket of its parents (fanoutBuckets); staging, a tenth of that, is measured whole.
 */
export function fanoutSql(plan: SamplePlan, keys: FkPlan[], measure: 'all' | 'buckets' = 'all'): string {
  if (!keys.length) return `SELECT '{}'::json`;
  const buckets = (p: FkPlan) => (measure === 'buckets' ? fanoutBuckets(parentRows(plan, p)) : 1);
  return `SELECT json_build_object(${keys.map((p) => `${literal(keyLabel(p))}, ${fanoutExpression(plan, p, buckets(p))}`).join(', ')})`;
}

/** The staging side, printed by the session that counts rows and orphans. */
export function fanoutTagged(plan: SamplePlan, keys: FkPlan[]): string {
  return `SELECT 'ts:fanout:' || (${fanoutSql(plan, keys)})::text;`;
}

/**
 * Production's side, through the read-only role, beside the rows' stream. Never fails the run:
 * a report that could not be read is a warning.
 */
export async function readProductionFanout(
  host: Host,
  reader: Environment,
  plan: SamplePlan,
  keys: FkPlan[],
): Promise<{ values: Record<string, Fanout>; ms: number } | { error: string }> {
  const started = Date.now();
  if (!keys.length) return { values: {}, ms: 0 };
  try {
    const values = await queryJson(host, reader, {
      database: reader.cfg.database.name,
      sql: fanoutSql(plan, keys, 'buckets'),
      label: "reading production's children per parent for the representativeness report",
      schema: fanoutByKey,
    });
    for (const p of keys) {
      const v = values[keyLabel(p)];
      const m = fanoutBuckets(parentRows(plan, p));
      if (v && m > 1) v.measured = `1 in ${m} parents`;
    }
    return { values, ms: Date.now() - started };
  } catch (e) {
    return { error: errorMessage(e) };
  }
}

function tableFraction(t: CopiedTable, target: number, s: RepresentativenessSettings): TableFraction {
  const fraction = t.prodRows > 0 ? t.copied / t.prodRows : 0;
  const ratio = target > 0 ? fraction / target : 0;
  const judged = target > 0 && t.prodRows > 0 && target * t.prodRows >= s['min-expected-rows'];
  const [low, high] = s.bounds;
  const outside = !judged ? undefined : ratio < low ? 'low' : ratio > high ? 'high' : undefined;
  return {
    table: t.table,
    mode: t.mode,
    prodRows: t.prodRows,
    prodRowsExact: t.prodRowsExact,
    copied: t.copied,
    fraction,
    ratio,
    judged,
    ...(outside ? { outside } : {}),
  };
}

/** Why a key's policy is what it is: the config's, or the default for its columns. */
function policySource(p: FkPlan): string {
  // An entry with only owns: false is a config entry whose policy is still the default.
  const isDefault = p.policy === (p.nullable ? 'null' : 'drop') && (p.source === 'default' || p.ownsNothing);
  if (!isDefault) return 'set in sample.foreign-keys';
  return p.policy === 'drop' ? `the default: ${p.fk.columns.join(', ')} NOT NULL` : 'the default';
}

/** A table below the target: the keys that leave out rows whose parent is outside the sample. */
function lowCause(plan: SamplePlan, tp: TablePlan, t: CopiedTable, byTable: Map<string, TableFraction>): string {
  const causes: string[] = [];
  const owning = tp.outgoing.filter((p) => p.owning);
  // A key cannot starve the rows it brings itself: only rows that came through another key (or are members otherwise) lose theirs.
  const starving = tp.outgoing.filter((p) => p.strict && p.target === 'members' && !(owning.length === 1 && owning[0] === p));
  for (const p of starving) {
    const parent = byTable.get(p.fk.refTable);
    const arrived = parent ? `; ${pct(parent.fraction)} of ${p.fk.refTable} arrived` : '';
    causes.push(
      `the ${p.policy} policy of ${keyLabel(p)} (${policySource(p)}) leaves out each row whose ${short(p.fk.refTable)} is outside the sample${arrived}; ` +
        `include on that key (sample.foreign-keys) brings those parents along`,
    );
  }
  plan.references.forEach((r, i) => {
    if (r.table === tp.table.id && r.strict && r.target === 'members')
      causes.push(`the ${r.policy} policy of sample.references[${i}] (${r.label}) leaves out each row naming a parent outside the sample`);
  });
  for (const d of t.checkDrops) if ((d.rows ?? 0) > 0) causes.push(`${d.rows} row(s) dropped because a nulled reference would break CHECK ${d.check}`);
  const starvedOwners = owning.map((p) => byTable.get(p.fk.refTable)).filter((o) => o?.outside === 'low');
  if (!causes.length && starvedOwners.length)
    causes.push(`its owners are below the target themselves: ${starvedOwners.map((o) => `${o!.table} (${times(o!.ratio)})`).join(', ')}`);
  if (tp.mode === 'root' && plan.settings.filter) causes.push(`sample.filter (${plan.settings.filter}) leaves out root rows`);
  return causes.length ? causes.join('; ') : 'no policy leaves its rows out: they are unevenly spread over their owners (a few owners hold most of them)';
}

/** A table above the target: what brings in more than its share. */
function highCause(plan: SamplePlan, tp: TablePlan): string {
  const causes: string[] = [];
  const includes = plan.fks.filter((p) => (p.policy === 'include' || p.policy === 'structure') && p.fk.refTable === tp.table.id);
  for (const p of includes)
    causes.push(`the ${p.policy} policy of ${keyLabel(p)} (${policySource(p)}) brings in every ${short(tp.table.id)} a copied row names`);
  plan.references.forEach((r, i) => {
    if (r.refTable === tp.table.id && (r.policy === 'include' || r.policy === 'structure'))
      causes.push(`the ${r.policy} policy of sample.references[${i}] (${r.label}) brings in every parent it names`);
  });
  const owning = tp.outgoing.filter((p) => p.owning);
  if (owning.length > 1)
    causes.push(
      `its rows come along through any of ${owning.map(keyLabel).join(', ')}; owns: false (sample.foreign-keys) on the one that should not bring rows narrows it`,
    );
  if (tp.mode === 'root' && plan.settings.include.length) causes.push(`sample.include adds ${plan.settings.include.length} root row(s)`);
  return causes.length ? causes.join('; ') : 'no policy brings extra rows: they are unevenly spread over their owners (a few sampled owners hold many of them)';
}

/** The report, with each table outside the bounds given its cause. */
export function representativeness(
  plan: SamplePlan,
  tables: CopiedTable[],
  fanout: { prod: Record<string, Fanout>; sample: Record<string, Fanout>; keys: FkPlan[]; prodMs: number },
  s: RepresentativenessSettings,
): Representativeness {
  const sampled = tables.filter((t) => SAMPLED_MODES.includes(t.mode) && t.prodRows > 0);
  const rows = sampled.map((t) => tableFraction(t, plan.fraction, s));
  const byTable = new Map(rows.map((r) => [r.table, r]));
  for (const r of rows) {
    if (!r.outside) continue;
    const tp = plan.tables.find((x) => x.table.id === r.table)!;
    r.cause =
      r.outside === 'low'
        ? lowCause(
            plan,
            tp,
            tables.find((t) => t.table === r.table)!,
            byTable,
          )
        : highCause(plan, tp);
  }
  const keys = fanout.keys.map((p) => {
    const key = keyLabel(p);
    const childRows = plan.tables.find((t) => t.table.id === p.fk.table)!.table.rows;
    return { key, childRows, ...(fanout.prod[key] ? { prod: fanout.prod[key] } : {}), ...(fanout.sample[key] ? { sample: fanout.sample[key] } : {}) };
  });
  return { target: plan.fraction, bounds: s.bounds, tables: rows, keys, prodMs: fanout.prodMs };
}

/** One warning per table outside the bounds, naming the policy responsible. */
export function representativenessWarnings(r: Representativeness): string[] {
  const [low, high] = r.bounds;
  return r.tables
    .filter((t) => t.outside)
    .map(
      (t) =>
        `${t.table}: ${pct(t.fraction)} copied (${t.copied} of ${t.prodRowsExact ? '' : '≈'}${t.prodRows}) against the target ${pct(r.target)}, ` +
        `${times(t.ratio)} (outside ${low}x–${high}x, sample.representativeness.bounds): ${t.cause}`,
    );
}

/** The summary's part: a small table of fractions, and the children per parent of the busiest keys. */
export function representativenessSection(s: Summary, r: Representativeness): void {
  s.heading('Representativeness', 3);
  s.text(`Each sampled table's copied fraction against the target ${pct(r.target)}; outside ${r.bounds[0]}x–${r.bounds[1]}x is a warning above.`);
  s.table(
    ['table', 'copied', 'fraction', 'against target', ''],
    r.tables.map((t) => [
      t.table,
      String(t.copied),
      pct(t.fraction),
      times(t.ratio),
      t.outside ? `⚠️ ${t.outside}` : t.judged ? 'ok' : 'too few rows to judge',
    ]),
  );
  if (!r.keys.length) return;
  const f = (x?: Fanout) => (x ? `${x.median} / ${x.p90}` : 'not read');
  s.table(
    ['busiest foreign keys', 'children per parent in prod (median / p90)', 'in the sample (median / p90)', 'parents (prod / sample)'],
    r.keys.map((k) => [
      k.key,
      k.prod?.measured ? `${f(k.prod)} (${k.prod.measured})` : f(k.prod),
      f(k.sample),
      `${k.prod?.parents ?? '?'}${k.prod?.measured ? ` (${k.prod.measured})` : ''} / ${k.sample?.parents ?? '?'}`,
    ]),
  );
}
