/**
 * One resample run, in the order of the runbook:
 *   1. read production's catalog and build the plan (refuse uncovered sensitive columns);
 *   2. under dev's lock: recover leftovers of a dead run, create the staging database beside dev's;
 *   3. production's schema without constraints (pg_dump pre-data) into staging;
 *   4. rows: one production psql session, one read-only repeatable-read snapshot, piped on the host
 *      straight into a staging psql session; the same session counts rows, orphans and leaks;
 *   5. constraints and indexes (post-data: an orphan fails here too), sequences, dev's grants;
 *   6. swap staging into dev's place (stop app, rename, migrate, start, health), or swap back.
 * Production is only read; table data never crosses the SSH connection.
 */
import { z } from 'zod';
import type { RunInfo } from '../infra/actions-io';
import type { Config } from '../domain/config';
import { Environment } from '../domain/environment';
import { errorMessage, OperationFailed } from '../infra/errors';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { pendingDirOf } from '../domain/host-log';
import { underLock, type Operation } from '../domain/operation';
import { EnvironmentLock } from '../domain/lock';
import { parseHostJson } from '../infra/json';
import { quote } from '../infra/shell';
import { hashDevPassword, isTextual, maskKeyFor, type RunSecrets } from './anonymize';
import { readCatalog, type Catalog } from './catalog';
import { productionReader, productionReaderWith } from './reader';
import { leakFix, leakLine } from './leak-advice';
import { CLEARED_TABLE, PROBE_TABLE, buildPlan, copiedTables, fromClause, placeholderInserts, productionScript, type FkPlan, type SamplePlan } from './plan';
import { appServices, composeMigrate, databaseNames, DevServer, recoverLeftovers, SwapBackFailed, swapIn, type AppServices } from './swap';
import { ident, literal, qualified } from '../infra/sql';
import { copyDatabaseSettingsSql, pgDump, psql, STDIN_SCRIPT } from '../infra/postgres';
import {
  busiestKeys,
  fanoutByKey,
  fanoutTagged,
  readProductionFanout,
  representativeness,
  representativenessWarnings,
  type Fanout,
  type Representativeness,
} from './representativeness';

export interface ResampleParams {
  fraction?: number;
  seed?: string;
  dryRun: boolean;
  /** Write a starter sample section from production's catalog instead of resampling. */
  init?: boolean;
  devPassword?: string;
  /** The secret mixed into the masking hash's key (input mask-key). */
  maskKey?: string;
}

export interface ResampleContext {
  host: Host;
  config: Config;
  log: Logger;
  run: RunInfo;
  lockTimeoutSeconds: number;
}

/** Replaceable steps: tests inject a failing migration or stand-in services. */
export interface ResampleHooks {
  services?: AppServices;
  migrate?: (database: string) => Promise<void>;
  /** Runs on the staging database once its rows are in and checked, before post-data (tests inject a fault). */
  afterRows?: (staging: string) => Promise<void>;
}

export interface TableReport {
  table: string;
  mode: string;
  prodRows: number;
  prodRowsExact: boolean;
  copied: number;
  rules: string[];
  note: string;
  /** Copied rows whose owner (an owning key's target) is outside the sample, so the key was cleared: they came along through another key. */
  ownersCleared: Array<{ key: string; rows: number }>;
  /** CHECK constraints that drop rows whose nulled reference would break them; rows counted by a real run. */
  checkDrops: Array<{ check: string; rows?: number }>;
  /**
   * Rows that came along for structure (policy structure), and per key how many of them point at
   * the placeholder of an owner outside the sample; counted by a real run.
   */
  structure?: { rows: number; placeholder: Array<{ key: string; rows: number }> };
}

export interface ForeignKeyReport {
  name: string;
  table: string;
  columns: string[];
  refTable: string;
  policy: string;
  source: string;
  orphans: number;
  /** The partitions that declare it, when it is declared on partitions rather than the parent. */
  partitions?: string[];
  /** A reference without a foreign key (sample.references): `columns` holds its keys expression. */
  virtual?: boolean;
}

export interface LeakHit {
  /** The sensitive production column the value came from. */
  source: string;
  /** Where staging holds it. */
  table: string;
  column: string;
  rows: number;
  /** The rule to add or the marker to set, in one line (leak-advice.ts). */
  fix?: string;
}

export interface ResampleReport {
  dryRun: boolean;
  root: string;
  fraction: number;
  seed: string;
  tables: TableReport[];
  foreignKeys: ForeignKeyReport[];
  leaks: LeakHit[];
  probes: number;
  warnings: string[];
  swapped: boolean;
  /** Bytes that crossed the SSH connection during the run (plan and report only). */
  sshBytes: { sent: number; received: number };
  rowsCopied: number;
  seconds: number;
  /** Seconds per step, in order. */
  phases: Array<[string, number]>;
  /** sample.after-load statements as run in staging: rows each affected, and its time. */
  afterLoad: Array<{ sql: string; rows: number; ms: number }>;
  /** Each sampled table's copied fraction against the target, and the busiest keys' children per parent (a real run's). */
  representativeness?: Representativeness;
  plan: SamplePlan;
}

export class ResampleFailed extends OperationFailed {
  constructor(
    message: string,
    readonly report: ResampleReport,
  ) {
    super(message);
  }
}

/** Fraction and seed of this run: the inputs override the config. */
export function effectiveParams(config: Config, params: ResampleParams): { fraction: number; seed: string } {
  return { fraction: params.fraction ?? config.sample.fraction, seed: params.seed ?? config.sample.seed };
}

export function makeSecrets(config: Config, devPassword: string | undefined, seed: string, maskSecret?: string): RunSecrets {
  const scheme = config.sample['password-hash'];
  return {
    maskKey: maskKeyFor(seed, maskSecret),
    devPasswordHash: devPassword ? hashDevPassword(devPassword, scheme) : undefined,
  };
}

export async function planResample(ctx: ResampleContext, params: ResampleParams, catalog?: Catalog): Promise<SamplePlan> {
  const cat = catalog ?? (await readCatalog(ctx.host, await productionReader(ctx.host, ctx.config, ctx.log)));
  const { fraction, seed } = effectiveParams(ctx.config, params);
  const plan = buildPlan(cat, { settings: ctx.config.sample, fraction, seed, secrets: makeSecrets(ctx.config, params.devPassword, seed, params.maskKey) });
  if (!params.maskKey && Object.values(ctx.config.sample.columns).some((r) => r === 'rehash' || r === 'fake-email' || r === 'fake-name')) {
    plan.warnings.push(
      'masking key from the seed alone: anyone who knows the seed can recover short masked values (IP addresses, phone numbers) by trying them all; pass the mask-key input from a secret',
    );
  }
  return plan;
}

function emptyReport(plan: SamplePlan, dryRun: boolean): ResampleReport {
  return {
    afterLoad: [],
    dryRun,
    root: plan.root,
    fraction: plan.fraction,
    seed: plan.seed,
    tables: plan.tables.map((tp) => ({
      table: tp.table.id,
      mode: tp.mode,
      prodRows: tp.table.rows,
      prodRowsExact: tp.table.rowsExact,
      copied: dryRun ? tp.estimate : 0,
      rules: tp.columns.filter((c) => c.rule).map((c) => `${c.name}: ${c.rule}`),
      note: tp.note,
      ownersCleared: [],
      checkDrops: tp.checkDrops.map((check) => ({ check })),
      ...(tp.structural ? { structure: { rows: 0, placeholder: [] } } : {}),
    })),
    foreignKeys: [
      ...plan.fks.map((p) => ({
        name: p.fk.name,
        table: p.fk.table,
        columns: p.fk.columns,
        refTable: p.fk.refTable,
        policy: p.ownsNothing ? `${p.policy}, owns nothing` : p.policy,
        source: p.source,
        orphans: 0,
        ...(p.fk.partitions ? { partitions: p.fk.partitions } : {}),
      })),
      ...plan.references.map((r, i) => ({
        name: referenceName(i),
        table: r.table,
        columns: [r.keys],
        refTable: `${r.refTable}(${r.refColumn})`,
        policy: r.column ? `${r.policy}, clears ${r.column}` : r.policy,
        source: 'config',
        orphans: 0,
        virtual: true,
      })),
    ],
    leaks: [],
    probes: plan.probes.length,
    warnings: [...plan.warnings],
    swapped: false,
    sshBytes: { sent: 0, received: 0 },
    rowsCopied: 0,
    seconds: 0,
    phases: [],
    plan,
  };
}

/**
 * Tables that have rows in production and none in dev although no one asked for that (they are
 * not in empty-tables), each with the reason: a table silently copied empty is how a sample stops
 * being complete without anyone noticing.
 */
export function emptyTableWarnings(plan: SamplePlan, tables: TableReport[]): string[] {
  const out: string[] = [];
  for (const t of tables) {
    if (t.mode === 'empty' || t.prodRows === 0 || t.copied > 0) continue;
    const tp = plan.tables.find((x) => x.table.id === t.table);
    const rows = `${t.prodRowsExact ? '' : '≈'}${t.prodRows}`;
    const owners = tp?.outgoing.filter((p) => p.owning).map((p) => `${p.fk.columns.join(', ')} → ${p.fk.refTable}`) ?? [];
    const reason =
      t.mode === 'unreached'
        ? 'no foreign key leads from it to the sampled rows, so nothing brings its rows along; list it in sample.reference-tables to copy it whole, or in sample.empty-tables if dev should not have them'
        : t.mode === 'owned'
          ? `none of its rows belongs to a sampled row (through ${owners.join(' or ')}) or they were dropped by a drop policy; a larger fraction, include keys or a foreign-keys policy may bring some`
          : t.mode === 'included'
            ? 'no copied row includes any of its rows'
            : t.mode === 'root'
              ? 'no row passed the sample (fraction, filter, include)'
              : 'it was copied whole and production had no rows at the snapshot';
    // Rows a CHECK removed (their nulled reference would have broken it) are a reason of their own.
    const byCheck = t.checkDrops.filter((d) => (d.rows ?? 0) > 0);
    const checks = byCheck.length
      ? `; ${byCheck.map((d) => `${d.rows} row(s) were dropped because nulling their reference would break CHECK ${d.check}`).join('; ')}`
      : '';
    out.push(`${t.table} has ${rows} rows in production and none in dev: ${reason}${checks}`);
  }
  return out;
}

/** json_build_object takes at most 100 arguments: one object per 50 pairs, merged. */
function jsonObject(pairs: Array<[string, string]>): string {
  if (!pairs.length) return `'{}'::jsonb`;
  const chunks: string[] = [];
  for (let i = 0; i < pairs.length; i += 50)
    chunks.push(
      `jsonb_build_object(${pairs
        .slice(i, i + 50)
        .map(([k, v]) => `${literal(k)}, ${v}`)
        .join(', ')})`,
    );
  return chunks.join(' || ');
}

/** The report's name for the i-th sample.references entry. */
export function referenceName(i: number): string {
  return `sample.references[${i}]`;
}

/**
 * One shell script: `schema` runs in the background while `send` (the production session, reading
 * the script on stdin) computes its membership; `receive` starts once the schema is in, and the
 * rows wait in the pipe meanwhile. A failed schema ends the script with its own error, exit 3.
 */
export function schemaThenRows(schema: string, send: string, receive: string): string {
  return (
    `st=$(mktemp -d) || exit 1\n` +
    `{ ( ${schema} ) </dev/null >/dev/null 2>"$st/err"; echo $? > "$st/rc"; } &\n` +
    `schema_pid=$!\n` +
    // The receiver waits for the schema's status; a schema job that died without one is a failure too.
    `${send} | { while [ ! -s "$st/rc" ] && kill -0 "$schema_pid" 2>/dev/null; do sleep 0.02; done; ` +
    `if [ "$(cat "$st/rc" 2>/dev/null)" != 0 ]; then cat "$st/err" >&2; echo 'the schema (pre-data) could not be restored into staging' >&2; exit 3; fi; ${receive}; }\n` +
    `rc=$?; wait; rm -rf "$st"; exit $rc`
  );
}

/** Row counts of the copied tables in staging. */
export function countsQuery(plan: SamplePlan): string {
  return `SELECT 'ts:counts:' || (${jsonObject(copiedTables(plan).map((tp) => [tp.table.id, `(SELECT count(*) FROM ${fromClause(tp.table)})`]))})::text;`;
}

/**
 * A foreign key that post-data's constraint checks: production's is validated and declared on the
 * table itself (a key declared partition by partition may miss one). Restoring it in staging reads
 * every copied row against its parent, so counting its orphans before would read them twice.
 */
export function checkedByConstraint(p: FkPlan): boolean {
  return p.fk.validated === true && !p.fk.partitions;
}

/**
 * Per foreign key, rows in staging whose reference finds no row (checked before constraints exist);
 * `unchecked`: only references and the keys post-data's constraints do not check (checkedByConstraint).
 */
export function orphansQuery(plan: SamplePlan, which: 'all' | 'unchecked' = 'all'): string {
  const byId = new Map(plan.tables.map((t) => [t.table.id, t.table]));
  const fks = which === 'all' ? plan.fks : plan.fks.filter((p) => !checkedByConstraint(p));
  const pairs: Array<[string, string]> = fks.map((p) => {
    const c = byId.get(p.fk.table)!;
    const r = byId.get(p.fk.refTable)!;
    const notNull = p.fk.columns.map((col) => `c.${ident(col)} IS NOT NULL`).join(' AND ');
    const match = p.fk.columns.map((col, i) => `r.${ident(p.fk.refColumns[i])} = c.${ident(col)}`).join(' AND ');
    return [
      `${p.fk.table}|${p.fk.name}`,
      `(SELECT count(*) FROM ${fromClause(c)} c WHERE ${notNull} AND NOT EXISTS (SELECT 1 FROM ${qualified(r.schema, r.name)} r WHERE ${match}))`,
    ];
  });
  // References without a foreign key: rows naming a parent key that staging does not have.
  plan.references.forEach((r, i) => {
    const c = byId.get(r.table)!;
    pairs.push([
      `${r.table}|${referenceName(i)}`,
      `(SELECT count(*) FROM ${fromClause(c)} c WHERE EXISTS (SELECT 1 FROM unnest(ARRAY[(${r.keys})]::${r.keyType}[]) ts_k(v) ` +
        `WHERE ts_k.v IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${r.refFrom} r WHERE r.${ident(r.refColumn)} = ts_k.v)))`,
    ]);
  });
  return `SELECT 'ts:orphans:' || (${jsonObject(pairs)})::text;`;
}

/**
 * The leak scan over the whole staging database: every probe (a real value of a sensitive
 * production column) compared with every textual value in staging; JSON, XML, arrays and columns
 * rewritten by a sql rule are also searched for the probe inside them.
 */
export function leakQuery(plan: SamplePlan): string {
  const parts: string[] = [];
  for (const tp of copiedTables(plan)) {
    // Values declared public are not searched: a probe found there is the catalog's own value.
    const textual = tp.columns.filter((c) => {
      if (c.public) return false;
      const col = tp.table.columns.find((x) => x.name === c.name)!;
      return isTextual(col) || col.category === 'A';
    });
    if (!textual.length) continue;
    const values = (cols: typeof textual) => cols.map((c) => `(${literal(c.name)}, t.${ident(c.name)}::text)`).join(', ');
    const src = `FROM ${fromClause(tp.table)} t CROSS JOIN LATERAL (VALUES ${values(textual)}) x(col, v)`;
    parts.push(`SELECT p.src, ${literal(tp.table.id)} AS tbl, x.col, count(*) AS n ${src} JOIN pg_temp.${PROBE_TABLE} p ON p.v = x.v GROUP BY 1, 2, 3`);
    // Values that can hold another value inside them: JSON, XML and arrays may carry any table's
    // values; a sql rule's expression sees only its own row, so only this table's probes can be in it.
    const container = (c: (typeof textual)[number]) => {
      const col = tp.table.columns.find((x) => x.name === c.name)!;
      return ['json', 'jsonb', 'xml'].includes(col.baseType) || col.category === 'A';
    };
    const anyTable = textual.filter(container);
    const ownRow = textual.filter((c) => !container(c) && (c.rule ?? '').startsWith('sql:'));
    // Each distinct value is searched once (a rule's constant such as '{}' is one value, not one per
    // row), first against every probe at once (LIKE ANY, no row per pair of value and probe); only
    // the values holding one are joined to name it.
    const inside = (cols: typeof textual, probes: string) =>
      `SELECT p.src, ${literal(tp.table.id)}, d.col, sum(d.n)::bigint FROM (SELECT x.col, x.v, count(*) AS n FROM ${fromClause(tp.table)} t CROSS JOIN LATERAL (VALUES ${values(cols)}) x(col, v) GROUP BY 1, 2 ` +
      `HAVING x.v LIKE ANY (ARRAY(SELECT '%' || replace(replace(replace(q.v, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%' FROM ${probes} q))) d ` +
      `JOIN ${probes} p ON d.v <> p.v AND strpos(d.v, p.v) > 0 GROUP BY 1, 2, 3`;
    if (anyTable.length) parts.push(inside(anyTable, `pg_temp.${PROBE_TABLE}`));
    if (ownRow.length)
      parts.push(inside(ownRow, `(SELECT * FROM pg_temp.${PROBE_TABLE} WHERE left(src, ${tp.table.id.length + 1}) = ${literal(`${tp.table.id}.`)})`));
  }
  const body = parts.length ? parts.join(' UNION ALL ') : `SELECT NULL::text, NULL::text, NULL::text, 0::bigint WHERE false`;
  return `SELECT 'ts:leaks:' || coalesce(json_agg(json_build_object('source', h.src, 'table', h.tbl, 'column', h.col, 'rows', h.n)), '[]')::text FROM (${body}) h(src, tbl, col, n);`;
}

/** setval for every sequence: past the largest copied key, or production's value when it feeds no column. */
export function sequencesSql(plan: SamplePlan, catalog: Pick<Catalog, 'sequences'>): string {
  const byId = new Map(plan.tables.map((t) => [t.table.id, t]));
  const out: string[] = [];
  for (const s of catalog.sequences) {
    const seq = literal(qualified(s.schema, s.name));
    const cols = s.columns.filter((c) => byId.has(c.table));
    if (cols.length) {
      const maxes = cols.map(
        (c) => `(SELECT max(${ident(c.column)})::bigint FROM ${qualified(byId.get(c.table)!.table.schema, byId.get(c.table)!.table.name)})`,
      );
      const m = maxes.length === 1 ? maxes[0] : `greatest(${maxes.join(', ')})`;
      out.push(
        `SELECT CASE WHEN m IS NULL THEN setval(${seq}, (SELECT seqmin FROM pg_sequence WHERE seqrelid = ${seq}::regclass), false) ELSE setval(${seq}, m, true) END FROM (SELECT ${m} AS m) s;`,
      );
    } else if (s.lastValue !== null) {
      out.push(`SELECT setval(${seq}, ${literal(s.lastValue)}::bigint, true);`);
    }
  }
  return out.join('\n');
}

/** Recreates dev's database-level grants on staging (database ACLs belong to the database, not its name). */
function databaseGrantsSql(dev: string, staging: string): string {
  return `DO $ts$
DECLARE r record; acl aclitem[];
BEGIN
  SELECT datacl INTO acl FROM pg_database WHERE datname = ${literal(dev)};
  IF acl IS NULL THEN RETURN; END IF;
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', ${literal(staging)});
  FOR r IN SELECT a.privilege_type, a.is_grantable, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(g.rolname) END AS who
           FROM aclexplode(acl) a LEFT JOIN pg_roles g ON g.oid = a.grantee LOOP
    EXECUTE format('GRANT %s ON DATABASE %I TO %s%s', r.privilege_type, ${literal(staging)}, r.who, CASE WHEN r.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $ts$;`;
}

const OBJECT_ACL_LINES = '^(GRANT|REVOKE|ALTER DEFAULT PRIVILEGES) |^ALTER .* OWNER TO .*;$';

/** What the staging session prints after each `ts:<tag>:` (countsSql, orphansSql, leaksSql, the cleared keys, fanoutTagged). */
export const tagged = {
  counts: { tag: 'counts', schema: z.record(z.number()) },
  orphans: { tag: 'orphans', schema: z.record(z.number()) },
  leaks: { tag: 'leaks', schema: z.array(z.object({ source: z.string(), table: z.string(), column: z.string(), rows: z.number() })) },
  cleared: { tag: 'cleared', schema: z.array(z.object({ table: z.string(), fk: z.string(), rows: z.number(), kind: z.string() })) },
  fanout: { tag: 'fanout', schema: fanoutByKey },
};

/** The staging session's `ts:<tag>:` line, parsed with its schema. */
export function parseTagged<S extends z.ZodTypeAny>(stdout: string, result: { tag: string; schema: S }): z.output<S> {
  const line = stdout.split('\n').find((l) => l.startsWith(`ts:${result.tag}:`));
  if (!line) throw new OperationFailed(`the staging session printed no ${result.tag} result`);
  return parseHostJson(result.schema, line.slice(result.tag.length + 4), `the staging session's ${result.tag} result`);
}

/** The representativeness report from the copied counts and both sides' children per parent; its warnings name the policy responsible. */
function addRepresentativeness(
  report: ResampleReport,
  plan: SamplePlan,
  fanout: { prod: Awaited<ReturnType<typeof readProductionFanout>>; sample: Record<string, Fanout>; busy: ReturnType<typeof busiestKeys> },
  log: Logger,
): void {
  const prod = 'error' in fanout.prod ? { values: {}, ms: 0 } : fanout.prod;
  report.representativeness = representativeness(
    plan,
    report.tables,
    { prod: prod.values, sample: fanout.sample, keys: fanout.busy, prodMs: prod.ms },
    plan.settings.representativeness,
  );
  const warnings = representativenessWarnings(report.representativeness);
  if ('error' in fanout.prod) warnings.push(`representativeness: production's children per parent could not be read: ${fanout.prod.error}`);
  for (const w of warnings) {
    report.warnings.push(w);
    log.warning(w);
  }
}

/** The run's totals are measured from here: its clock and the SSH connection's traffic. */
interface RunStart {
  started: number;
  traffic: { sent: number; received: number };
}

/** What one run carries from step to step: the plan, the report it fills, and the clock of its phases. */
class ResampleRun {
  readonly dev: Environment;
  private last: number;

  readonly ctx: ResampleContext;
  private readonly start: RunStart;
  readonly prod: Environment;
  readonly catalog: Catalog;
  readonly plan: SamplePlan;
  readonly report: ResampleReport;

  constructor({
    ctx,
    start,
    prod,
    catalog,
    plan,
    report,
  }: {
    ctx: ResampleContext;
    start: RunStart;
    prod: Environment;
    catalog: Catalog;
    plan: SamplePlan;
    report: ResampleReport;
  }) {
    this.ctx = ctx;
    this.start = start;
    this.prod = prod;
    this.catalog = catalog;
    this.plan = plan;
    this.report = report;
    this.dev = new Environment('dev', ctx.config);
    this.last = start.started;
  }

  /** Phases already recorded up to this time. */
  lastAt(time: number): void {
    this.last = time;
  }

  /** Records the seconds since the previous phase ended. */
  mark(phase: string): void {
    const now = Date.now();
    this.report.phases.push([phase, (now - this.last) / 1000]);
    this.last = now;
  }

  warn(warnings: readonly string[]): void {
    for (const w of warnings) {
      this.report.warnings.push(w);
      this.ctx.log.warning(w);
    }
  }

  /** The report with the run's totals so far: a failure carries it too. */
  finish(): ResampleReport {
    const t = this.ctx.host.traffic();
    this.report.sshBytes = { sent: t.sent - this.start.traffic.sent, received: t.received - this.start.traffic.received };
    this.report.seconds = (Date.now() - this.start.started) / 1000;
    return this.report;
  }
}

export async function resample(ctx: ResampleContext, params: ResampleParams, hooks: ResampleHooks = {}): Promise<ResampleReport> {
  const start: RunStart = { started: Date.now(), traffic: ctx.host.traffic() };
  // Every read of production goes through its read-only role (the server's own wall behind the SQL guard).
  // The catalog is read beside the check of what the read-only role may do (one round trip fewer).
  const { reader: prod, value: catalog } = await productionReaderWith(ctx.host, ctx.config, ctx.log, (reader) => readCatalog(ctx.host, reader));
  const read = Date.now();
  const plan = await planResample(ctx, params, catalog);
  const run = new ResampleRun({ ctx, start, prod, catalog, plan, report: emptyReport(plan, params.dryRun) });
  run.report.phases.push(['read-only role checks and catalog', (read - start.started) / 1000]);
  run.lastAt(read);
  run.mark('plan');
  for (const w of plan.warnings) ctx.log.warning(w);
  if (params.dryRun) {
    // Before a run only the tables nothing reaches are known to end up empty.
    run.warn(
      emptyTableWarnings(
        plan,
        run.report.tables.filter((t) => t.mode === 'unreached'),
      ),
    );
    return run.finish();
  }
  await underLock(
    {
      host: ctx.host,
      stateDir: ctx.config['state-dir'],
      env: 'dev',
      ...run.dev.workScope,
      action: 'resample',
      run: ctx.run,
      log: ctx.log,
      lockTimeoutSeconds: ctx.lockTimeoutSeconds,
    },
    async (op) => {
      // prod's read lock is taken while staging is made: its own round trips wait for nothing of dev's.
      const prodLock = takeProdLock(run);
      prodLock.catch(ignored(ctx.log, 'taking the prod lock (awaited before the rows)'));
      let staging: Staging;
      try {
        staging = await createStaging(run, op);
      } catch (e) {
        await prodLock.then((l) => l.release(), ignored(ctx.log, 'taking the prod lock'));
        throw e;
      }
      try {
        await fillStaging(run, staging, prodLock, hooks);
      } catch (e) {
        await staging.server.drop(staging.names.staging).catch((de) => ctx.log.warning(`could not drop ${staging.names.staging}: ${String(de)}`));
        throw e instanceof ResampleFailed ? e : new ResampleFailed(errorMessage(e), run.finish());
      }
      await swapStaging(run, staging, op, hooks);
    },
  );
  return run.finish();
}

/** Dev's database as the staging database copies it: owner and locale. */
const devDatabase = z.object({ owner: z.string(), encoding: z.string(), collate: z.string(), ctype: z.string() });
type DevDatabase = z.infer<typeof devDatabase>;

/** The staging database beside dev's, and what of dev's it takes over. */
interface Staging {
  server: DevServer;
  names: ReturnType<typeof databaseNames>;
  /** Dev's database, or null when dev has none yet. */
  devInfo: DevDatabase | null;
  /** Dev's schema dump: its default privileges, owners and grants are re-applied to staging. */
  devAcl: string;
}

/**
 * One session on dev's server: when no leftover of a dead run is there (a staging or a previous
 * database), it reads dev's database (owner and locale, or null when dev has none yet) and creates
 * the empty staging database with them; else it says so and creates nothing.
 */
export function stagingSql(names: ReturnType<typeof databaseNames>, defaultOwner: string): string {
  const dev = literal(names.dev);
  return [
    `SELECT count(*) > 0 AS ts_leftovers FROM pg_database WHERE datname IN (${literal(names.staging)}, ${literal(names.previous)}) \\gset`,
    `\\if :ts_leftovers`,
    `SELECT 'ts:leftovers';`,
    `\\else`,
    `SELECT 'ts:dev:' || coalesce((SELECT json_build_object('owner', pg_get_userbyid(datdba), 'encoding', pg_encoding_to_char(encoding), 'collate', datcollate, 'ctype', datctype)::text FROM pg_database WHERE datname = ${dev}), 'null');`,
    // Dev's owner and locale, or the configured user and the server's defaults when dev has no database yet.
    `SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0', ${literal(names.staging)}, coalesce(pg_get_userbyid(d.datdba), ${literal(defaultOwner)})) || ` +
      `coalesce(format(' ENCODING %L LC_COLLATE %L LC_CTYPE %L', pg_encoding_to_char(d.encoding), d.datcollate, d.datctype), '') ` +
      `FROM (SELECT 1) one LEFT JOIN pg_database d ON d.datname = ${dev} \\gexec`,
    `\\endif`,
  ].join('\n');
}

/**
 * Creates the empty staging database with dev's owner and locale, in one round trip; a dead run's
 * leftovers found there are recovered first (see recoverLeftovers), and the creation tried again.
 */
async function createStaging(run: ResampleRun, op: Operation): Promise<Staging> {
  const { plan, dev } = run;
  const server = new DevServer(run.ctx.host, dev, run.ctx.config.sample['maintenance-database']);
  const names = databaseNames(dev.cfg.database.name);
  let out = await server.exec(stagingSql(names, dev.cfg.database.user), 'creating the staging database');
  if (/^ts:leftovers$/m.test(out)) {
    run.report.warnings.push(...(await recoverLeftovers(server, names, run.ctx.log)));
    out = await server.exec(stagingSql(names, dev.cfg.database.user), 'creating the staging database');
    if (/^ts:leftovers$/m.test(out)) throw new OperationFailed(`dev's server still holds ${names.staging} or ${names.previous} after recovering them`);
  }
  const devInfo = parseTagged(out, { tag: 'dev', schema: devDatabase.nullable() });
  run.mark('lock, recovery, staging database');
  await op.record('staging-created', { database: names.staging, fraction: plan.fraction, seed: plan.seed });
  return { server, names, devInfo, devAcl: pgDump(dev, names.dev, { schemaOnly: true }) };
}

/**
 * Production's constraints and indexes into staging. Its foreign keys check the copied rows (the
 * orphans of checkedByConstraint's keys were not counted before); when post-data fails, every key's
 * orphans are counted, and a sample with any is refused as before the constraints.
 */
async function restorePostData(run: ResampleRun, staging: Staging): Promise<void> {
  run.ctx.log.info('Constraints and indexes: production post-data into staging.');
  const { dev } = run;
  try {
    await run.ctx.host.run(`${prodDump(run.prod, 'post-data')} | ${psql(dev, staging.names.staging, { tuples: true, output: '/dev/null' })}`, {
      label: 'restoring constraints and indexes (post-data) into staging',
      timeoutSeconds: run.ctx.config['command-timeout-seconds'],
      quiet: true,
    });
  } catch (e) {
    const out = await staging.server.exec(orphansQuery(run.plan), 'counting orphans after post-data failed', staging.names.staging);
    const orphans = parseTagged(out, tagged.orphans);
    for (const f of run.report.foreignKeys) f.orphans = Number(orphans[`${f.table}|${f.name}`] ?? 0);
    refuseFlawedSample(run);
    throw e;
  }
}

/** Schema, rows, checks of the sample, constraints, sequences, grants and after-load: staging ready to swap in. */
async function fillStaging(run: ResampleRun, staging: Staging, prodLock: Promise<EnvironmentLock>, hooks: ResampleHooks): Promise<void> {
  const streamed = await streamSample(run, staging, prodLock);
  run.mark('schema (pre-data), rows, counts, orphans, leak scan');
  reportSample(run, streamed);
  refuseFlawedSample(run);
  await hooks.afterRows?.(staging.names.staging);
  await restorePostData(run, staging);
  run.mark('constraints and indexes (post-data)');
  const { plan } = run;
  const seq = sequencesSql(plan, run.catalog);
  // Sequences, grants and statistics touch different things: they run side by side. Statistics
  // wait for after-load, whose rows they must see.
  const afterLoad = run.ctx.config.sample['after-load'].length > 0;
  const analyze = () => staging.server.exec(analyzeSql(run, afterLoad), 'analyzing staging', staging.names.staging);
  await Promise.all([
    seq ? staging.server.exec(seq, 'setting sequences past the copied keys', staging.names.staging) : undefined,
    applyDevGrants(run, staging),
    afterLoad ? undefined : analyze(),
  ]);
  run.mark(afterLoad ? 'sequences, grants' : 'sequences, grants, analyze (side by side)');
  await runAfterLoad(run, staging);
  if (afterLoad) {
    await analyze();
    run.mark('analyze');
  }
}

/**
 * Statistics for the tables that received rows (an empty table has none to gather); every table
 * after after-load, which may fill any.
 */
function analyzeSql(run: ResampleRun, afterLoad: boolean): string {
  const filled = run.catalog.tables.filter((t) => run.report.tables.some((r) => r.table === t.id && r.copied > 0));
  if (afterLoad || filled.length === 0) return afterLoad ? 'ANALYZE;' : 'SELECT 1;';
  return `ANALYZE ${filled.map((t) => qualified(t.schema, t.name)).join(', ')};`;
}

/** A pg_dump of one section of production's schema, through its read-only role. */
function prodDump(prod: Environment, section: 'pre-data' | 'post-data'): string {
  return pgDump(prod, prod.cfg.database.name, { section, lockWaitTimeout: '30s', noOwnership: true, noServerObjects: true });
}

/** What the staging session printed after the rows were in, and production's children per parent read beside it. */
interface Streamed {
  stdout: string;
  prodFanout: Awaited<ReturnType<typeof readProductionFanout>>;
  busy: ReturnType<typeof busiestKeys>;
}

/**
 * The schema first: dev's default privileges (they are per database: the owner's tables readable
 * by the app role must be so in staging before production's tables are created there, as they were
 * in dev when its migrations created them; errors, such as a schema production lacks, are reported
 * with the grants below, not fatal here), then production's pre-data. Both run beside the
 * production session, whose membership program takes as long before its first row; the rows wait
 * for the schema (see schemaThenRows).
 */
function schemaScript(run: ResampleRun, staging: Staging): string {
  const { dev } = run;
  const { names, devInfo, devAcl } = staging;
  return [
    ...(devInfo
      ? [`${devAcl} | { grep -E '^ALTER DEFAULT PRIVILEGES ' || true; } | ${psql(dev, names.staging, { output: '/dev/null', stopOnError: false })} 2>/dev/null`]
      : []),
    `${prodDump(run.prod, 'pre-data')} | ${psql(dev, names.staging, { tuples: true, output: '/dev/null' })}`,
  ].join(' && ');
}

/** The staging session: it loads the rows from stdin, then counts rows, orphans, fan-out, cleared keys and leaks. */
function receiveScript(run: ResampleRun, staging: Staging, busy: ReturnType<typeof busiestKeys>): string {
  const { plan } = run;
  return psql(run.dev, staging.names.staging, {
    tuples: true,
    run: [
      `SET synchronous_commit = off; SET jit = off; CREATE TEMP TABLE ${PROBE_TABLE} (src text, v text, shaped boolean); CREATE TEMP TABLE ${CLEARED_TABLE} (tbl text, fk text, n bigint, kind text)`,
      STDIN_SCRIPT,
      ...(placeholderInserts(plan) ? [placeholderInserts(plan) as string] : []),
      countsQuery(plan),
      orphansQuery(plan, 'unchecked'),
      fanoutTagged(plan, busy),
      `SELECT 'ts:cleared:' || coalesce(json_agg(json_build_object('table', tbl, 'fk', fk, 'rows', n, 'kind', kind)), '[]')::text FROM pg_temp.${CLEARED_TABLE};`,
      leakQuery(plan),
    ],
  });
}

/**
 * Production's snapshot, and the schema read with it, are read under prod's lock: a promotion (and
 * its migration, which needs locks this read would hold) waits for it, saying so, and this read
 * waits for a promotion.
 */
function takeProdLock(run: ResampleRun): Promise<EnvironmentLock> {
  const { host, config, log } = run.ctx;
  return EnvironmentLock.acquireToRead({
    host,
    stateDir: config['state-dir'],
    env: 'prod',
    run: run.ctx.run,
    action: 'resample (reading production)',
    waitSeconds: run.ctx.lockTimeoutSeconds,
    log,
  });
}

/** Production's pre-data and sampled rows into staging, on the host, under prod's read lock (taken by the caller). */
async function streamSample(run: ResampleRun, staging: Staging, lock: Promise<EnvironmentLock>): Promise<Streamed> {
  const { host, config, log } = run.ctx;
  const { plan, prod } = run;
  log.info(`Schema and rows: production's pre-data into ${staging.names.staging}, and the sample streamed from production into it, on the host.`);
  const busy = busiestKeys(plan, config.sample.representativeness['busiest-keys']);
  const receive = receiveScript(run, staging, busy);
  const send = psql(prod, prod.cfg.database.name, { tuples: true });
  const prodLock = await lock;
  // Production's children per parent, beside the stream and inside the same lock.
  const prodFanout = readProductionFanout(host, prod, plan, busy);
  let streamed;
  try {
    streamed = await host.run(schemaThenRows(schemaScript(run, staging), send, receive), {
      stdin: productionScript(plan),
      label: 'restoring the schema (pre-data) into staging and streaming the sampled rows from production into it',
      timeoutSeconds: config['command-timeout-seconds'],
      quiet: true,
    });
  } finally {
    await prodFanout;
    await prodLock.release().catch((e) => log.warning(`could not release the prod lock: ${errorMessage(e)}`));
  }
  return { stdout: streamed.stdout, prodFanout: await prodFanout, busy };
}

/** The staging session's counts into the report: rows copied, orphans, leaks, cleared keys, representativeness. */
function reportSample(run: ResampleRun, streamed: Streamed): void {
  const { plan, report } = run;
  const counts = parseTagged(streamed.stdout, tagged.counts);
  const orphans = parseTagged(streamed.stdout, tagged.orphans);
  report.leaks = parseTagged(streamed.stdout, tagged.leaks).map((l) => ({ ...l, fix: leakFix(plan, l) }));
  for (const t of report.tables) t.copied = Number(counts[t.table] ?? 0);
  for (const f of report.foreignKeys) f.orphans = Number(orphans[`${f.table}|${f.name}`] ?? 0);
  for (const t of report.tables) for (const d of t.checkDrops) d.rows = 0;
  reportCleared(report, plan, parseTagged(streamed.stdout, tagged.cleared));
  for (const t of report.tables) t.ownersCleared.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  report.rowsCopied = report.tables.reduce((a, t) => a + t.copied, 0);
  const fanout = { prod: streamed.prodFanout, sample: parseTagged(streamed.stdout, tagged.fanout), busy: streamed.busy };
  addRepresentativeness(report, plan, fanout, run.ctx.log);
  run.warn(emptyTableWarnings(plan, report.tables));
}

/** A count of rows the load changed: owners cleared, rows brought for structure or repointed, rows a CHECK dropped. */
interface ClearedCount {
  table: string;
  fk: string;
  rows: number;
  kind: string;
}

function reportCleared(report: ResampleReport, plan: SamplePlan, cleared: readonly ClearedCount[]): void {
  for (const c of cleared) {
    const table = report.tables.find((t) => t.table === c.table);
    if (c.kind === 'structure' || c.kind === 'placeholder') {
      const s = table?.structure;
      const fk = plan.fks.find((p) => p.fk.table === c.table && p.fk.name === c.fk);
      if (s && c.kind === 'structure') s.rows = Number(c.rows);
      else if (s) s.placeholder.push({ key: `${fk?.fk.columns.join(', ')} → ${fk?.placeholder?.table} ${fk?.placeholder?.keyText}`, rows: Number(c.rows) });
      continue;
    }
    if (c.kind === 'check') {
      const drop = table?.checkDrops.find((d) => d.check === c.fk);
      if (drop) drop.rows = Number(c.rows);
      continue;
    }
    const fk = plan.fks.find((p) => p.fk.table === c.table && p.fk.name === c.fk);
    table?.ownersCleared.push({ key: `${fk?.fk.columns.join(', ')} → ${fk?.fk.refTable}`, rows: Number(c.rows) });
  }
}

/** A sample with an orphaned reference or a real production value in it never reaches dev. */
function refuseFlawedSample(run: ResampleRun): void {
  const { report, plan } = run;
  const orphaned = report.foreignKeys.filter((f) => f.orphans > 0);
  if (orphaned.length)
    throw new ResampleFailed(`orphaned references in the sample: ${orphaned.map((f) => `${f.table}.${f.name} (${f.orphans})`).join(', ')}`, run.finish());
  if (report.leaks.length) {
    throw new ResampleFailed(`leak scan: real production values found in staging: ${report.leaks.map((l) => leakLine(plan, l)).join('; ')}`, run.finish());
  }
}

/** Dev's owners and grants: the app role is not the owner, and roles are per server. */
async function applyDevGrants(run: ResampleRun, staging: Staging): Promise<void> {
  const { server, names, devInfo, devAcl } = staging;
  if (!devInfo) return;
  // Object grants (in staging) and the database's own grants and settings are independent.
  const [grants] = await Promise.all([
    run.ctx.host.run(
      `${devAcl} | { grep -E ${quote(OBJECT_ACL_LINES)} || true; } | ${psql(run.dev, names.staging, { output: '/dev/null', stopOnError: false })}`,
      {
        label: "re-applying dev's owners and grants to staging",
        timeoutSeconds: run.ctx.config['command-timeout-seconds'],
        quiet: true,
      },
    ),
    server.exec(
      `${databaseGrantsSql(names.dev, names.staging)}\n${copyDatabaseSettingsSql(names.dev, names.staging)}`,
      "re-applying dev's database grants and settings",
    ),
  ]);
  const errors = grants.stderr.split('\n').filter((l) => /ERROR/.test(l));
  if (errors.length)
    run.report.warnings.push(
      `${errors.length} of dev's grants did not apply to the new schema (objects dev has and production lacks; migrations recreate them): ${errors.slice(0, 3).join(' | ')}`,
    );
}

/** Derived data the load bypassed (triggers fire on no copied row), made true in staging before the swap. */
async function runAfterLoad(run: ResampleRun, staging: Staging): Promise<void> {
  const statements = run.ctx.config.sample['after-load'];
  for (const [i, sql] of statements.entries()) {
    const t = Date.now();
    const out = await staging.server.exec(
      `${sql.replace(/;\s*$/, '')};\n\\echo twinstack-after-load-rows :ROW_COUNT`,
      `sample.after-load[${i}] in staging`,
      staging.names.staging,
    );
    const rows = Number(/twinstack-after-load-rows (\d+)/.exec(out)?.[1] ?? 0);
    run.report.afterLoad.push({ sql, rows, ms: Date.now() - t });
    run.ctx.log.info(`after-load[${i}]: ${rows} row(s) in ${Date.now() - t} ms`);
  }
  if (statements.length) run.mark('after-load');
}

/** Staging into dev's place (stop the app, rename, migrate, start, health), or dev swapped back as it was. */
async function swapStaging(run: ResampleRun, staging: Staging, op: Operation, hooks: ResampleHooks): Promise<void> {
  const { host, config, log } = run.ctx;
  const { dev, plan, report } = run;
  const sample = config.sample;
  // The record that the run passed: its failure fails the run, but dev has the sample by then.
  let resampled: Promise<unknown> | undefined;
  try {
    await swapIn({
      server: staging.server,
      names: staging.names,
      services: hooks.services ?? appServices(host, dev, log, sample['health-check']),
      migrate: hooks.migrate
        ? () => hooks.migrate!(staging.names.dev)
        : sample.migrate
          ? composeMigrate(host, dev, sample['migrate-command'], log)
          : () => Promise.resolve(),
      log,
      record: op.record,
      pendingDir: pendingDirOf(config['state-dir'], 'dev'),
      // Read when staging was created, under this same lock.
      hadDev: staging.devInfo !== null,
      // Recorded beside the drop of the database dev had before: the swap has passed.
      passed: async () => {
        resampled = op.record('resampled', { rows: report.rowsCopied, fraction: plan.fraction, seed: plan.seed });
        await resampled.catch(ignored(log, "recording 'resampled' (awaited after the swap)"));
      },
    });
  } catch (e) {
    // Swapped back: dev is as it was, and the report says what the sample would have been.
    throw e instanceof SwapBackFailed ? e : new ResampleFailed(errorMessage(e), run.finish());
  }
  run.mark('swap');
  report.swapped = true;
  await resampled;
}
