/**
 * The rehearsal: the new code's migrations run against a full copy of prod before anything on prod
 * changes. The fresh verified backup is restored into a scratch database on prod's own server, the
 * migration runs in a one-off container of the new image pointed at that copy (the app's database
 * variable rewritten), `pg_locks` is sampled every 100 ms while it runs, and the copy is dropped.
 * What it reports: the duration, each table held ACCESS EXCLUSIVE and for how long, the tables
 * rewritten (a new relfilenode) with their rows, the rows updated, and the migration's own error line.
 */
import * as fs from 'node:fs';
import type { BackupManifest } from './backup';
import { backupDir } from './backup';
import type { Config } from './config';
import type { Environment } from './environment';
import { migrationErrorLine, oneOffAlembic } from './alembic';
import * as alembic from '../infra/alembic';
import { OperationFailed, RemoteCommandError, errorMessage } from '../infra/errors';
import type { CommandResult, Host, RemoteProcess } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { mergedConfig } from './ship';
import { dropDatabaseSql, pgRestore, psql } from '../infra/postgres';
import { hostScript, sh } from '../infra/shell';
import { ident, sqlFile } from '../infra/sql';
import { parseEnvFile, serviceEnvironment } from './env-file';

export interface LockHold {
  table: string;
  /** The longest unbroken time the table was seen held ACCESS EXCLUSIVE, in milliseconds. */
  ms: number;
}

export interface RehearsalResult {
  ok: boolean;
  /** The migration's own run, in milliseconds (the restore of the copy not counted). */
  durationMs: number;
  restoreMs: number;
  error?: string;
  locks: LockHold[];
  rewritten: Array<{ table: string; rows: number }>;
  updatedRows: number;
  /** The first lock over the budget, when there is a budget. */
  overBudget?: LockHold;
  revisionBefore: string;
  revisionAfter: string;
}

const SAMPLE_MS = 100;

/** Samples of `<epoch ms>|<table>` lines into the longest unbroken hold per table. */
export function lockHolds(lines: string[], intervalMs = SAMPLE_MS): LockHold[] {
  const samples = new Map<number, Set<string>>();
  for (const l of lines) {
    const m = /^(\d+)\|(.+)$/.exec(l.trim());
    if (!m) continue;
    const t = Number(m[1]);
    if (!samples.has(t)) samples.set(t, new Set());
    samples.get(t)?.add(m[2]);
  }
  // Every sampling instant, also those with no lock (they end a hold): the sampler prints a bare timestamp each round.
  for (const l of lines) {
    const m = /^(\d+)$/.exec(l.trim());
    if (m && !samples.has(Number(m[1]))) samples.set(Number(m[1]), new Set());
  }
  const times = [...samples.keys()].sort((a, b) => a - b);
  const open = new Map<string, number>();
  const best = new Map<string, number>();
  const close = (table: string, end: number) => {
    const start = open.get(table);
    if (start === undefined) return;
    best.set(table, Math.max(best.get(table) ?? 0, end - start + intervalMs));
    open.delete(table);
  };
  let last = 0;
  for (const t of times) {
    const held = samples.get(t) ?? new Set<string>();
    for (const table of [...open.keys()]) if (!held.has(table)) close(table, last);
    for (const table of held) if (!open.has(table)) open.set(table, t);
    last = t;
  }
  for (const table of [...open.keys()]) close(table, last);
  return [...best.entries()].map(([table, ms]) => ({ table, ms })).sort((a, b) => b.ms - a.ms || a.table.localeCompare(b.table));
}

/**
 * The value of the app's database variable for the copy: a URL gets the copy's name as its path, a
 * bare name is replaced.
 */
export function pointAt(value: string | undefined, database: string): string {
  if (!value || !value.includes('://')) return database;
  const m = /^([^?#]*?:\/\/[^/?#]*)(\/[^?#]*)?(.*)$/.exec(value);
  return m ? `${m[1]}/${encodeURIComponent(database)}${m[3]}` : database;
}

/** One sample of the ACCESS EXCLUSIVE locks other sessions hold (see lock-sample.sql). */
export const LOCK_SAMPLE_SQL = sqlFile(fs.readFileSync(__dirname + '/lock-sample.sql', 'utf8'));

const TABLES_SQL = sqlFile(fs.readFileSync(__dirname + '/rehearsal-tables.sql', 'utf8'));
const LOCK_SAMPLER = fs.readFileSync(__dirname + '/lock-sampler.sh', 'utf8');

interface TableFacts {
  name: string;
  filenode: string;
  rows: number;
  updated: number;
}

function parseTables(text: string): Map<string, TableFacts> {
  const out = new Map<string, TableFacts>();
  for (const line of text.split('\n')) {
    const p = line.trim().split('|');
    if (p.length === 5) out.set(p[0], { name: p[1], filenode: p[2], rows: Number(p[3]) || 0, updated: Number(p[4]) || 0 });
  }
  return out;
}

/**
 * The value of the app's database variable (promote.database-env) as the api service's containers
 * get it: from the merged compose configuration of `at` (a URL built there from other variables
 * included), else from the env file. Masked once read. Refuses in one line, naming the setting,
 * when neither sets it.
 */
export async function databaseEnvValue({
  host,
  at,
  variable,
  log,
  mergedYaml,
}: {
  host: Host;
  at: Environment;
  variable: string;
  log: Logger;
  /** `at`'s merged compose configuration, when the caller has read it already. */
  mergedYaml?: string;
}): Promise<string> {
  const merged = mergedYaml ?? (await mergedConfig(host, at));
  const envText = (await host.readFile(`${at.cfg.checkout}/${at.cfg.envFile}`)).toString('utf8');
  const value = serviceEnvironment(merged, at.cfg.apiService).get(variable) ?? parseEnvFile(envText).get(variable);
  if (value === undefined) {
    throw new OperationFailed(
      `neither service ${at.cfg.apiService}'s environment in the compose files nor ${at.cfg.envFile} sets ${variable} (promote.database-env), so the rehearsal cannot point the app at its copy: set promote.database-env to the variable your app reads its database from, or promote.rehearse: never`,
    );
  }
  if (value.length >= 6) log.secret(value);
  return value;
}

export interface RehearseOptions {
  host: Host;
  config: Config;
  /** The environment whose database server and new image the rehearsal uses. */
  at: Environment;
  backup: BackupManifest;
  log: Logger;
  /** The operation's id, which names the sampler's stop file. */
  opId: string;
  /** The app's database variable as read already; read from `at` when not given. */
  databaseValue?: string;
  /** On a swarm: the new api image (its digest) the one-off migration runs. */
  image?: string;
}

export async function rehearse({ host, config, at, backup, log, opId, databaseValue }: RehearseOptions): Promise<RehearsalResult> {
  const variable = config.promote['database-env'];
  // Read before the copy is made: a rehearsal that cannot point the app at it refuses at once.
  const value = databaseValue ?? (await databaseEnvValue({ host, at, variable, log }));
  const copy = scratchCopy(host, at, backup);
  log.startGroup(`${at.name}: rehearsing the migration on a copy of ${backup.database} (backup ${backup.id})`);
  try {
    await createScratch(copy, at);
    const restored = await restoreBackup({ host, config, at, backup, copy });
    // The app's database variable, pointed at the copy: masked, and passed to the container by name only.
    const pointed = pointAt(value, copy.name);
    if (pointed.length >= 6) log.secret(pointed);
    const migrated = await migrateSampled({ host, config, at, copy, env: { [variable]: pointed }, stopFile: `/tmp/twinstack-rehearse-${opId}.stop`, log });
    const locks = lockHolds(migrated.samples.split('\n'));
    const budget = config.promote['max-exclusive-lock-ms'];
    const measured = {
      durationMs: migrated.durationMs,
      restoreMs: restored.restoreMs,
      locks,
      ...(budget !== undefined ? { overBudget: locks.find((l) => l.ms > budget) } : {}),
      revisionBefore: backup.alembicRevision ?? '',
    };
    const { run } = migrated;
    if (run.exitCode !== 0) {
      const error = migrationErrorLine(`${run.stdout}\n${run.stderr}`) || `alembic exited with code ${run.exitCode}`;
      log.error(`rehearsal: the migration failed on the copy of prod: ${error}`);
      return { ok: false, error, rewritten: [], updatedRows: 0, revisionAfter: '', ...measured };
    }
    const changes = compareTables(restored.before, parseTables((await copy.query(TABLES_SQL, `reading ${copy.name}'s tables again`)).stdout));
    const rev = await copy
      .query(`SELECT string_agg(version_num, ',' ORDER BY version_num) FROM alembic_version`, 'alembic revision of the copy')
      .catch(ignored(log, "reading the copy's alembic revision"));
    const result: RehearsalResult = { ok: measured.overBudget === undefined, ...measured, ...changes, revisionAfter: rev?.stdout.trim() ?? '' };
    log.info(
      `rehearsal: ${result.revisionBefore || 'none'} → ${result.revisionAfter || 'none'} in ${result.durationMs} ms on a copy restored in ${result.restoreMs} ms; ` +
        `${result.locks.length ? result.locks.map((l) => `${l.table} ACCESS EXCLUSIVE ${l.ms} ms`).join(', ') : 'no table held ACCESS EXCLUSIVE'}`,
    );
    return result;
  } finally {
    await copy
      .maintenance(dropDatabaseSql(copy.name), `dropping ${copy.name}`)
      .catch((e) => log.warning(`could not drop the rehearsal copy ${copy.name}: ${errorMessage(e)}; drop it by hand`));
    log.endGroup();
  }
}

/** The scratch database the rehearsal migrates, beside prod's on its server, and the sessions that reach it. */
interface ScratchCopy {
  name: string;
  /** A script on the server's maintenance database. */
  maintenance: (sql: string, label: string) => Promise<CommandResult>;
  /** A query in the copy, its rows as tuples. */
  query: (sql: string, label: string) => Promise<CommandResult>;
}

function scratchCopy(host: Host, at: Environment, backup: BackupManifest): ScratchCopy {
  const name = `${backup.database}_twinstack_rehearse`.slice(0, 63);
  return {
    name,
    maintenance: (sql, label) => host.run(psql(at, 'postgres'), { stdin: sql, quiet: true, label, timeoutSeconds: 300 }),
    query: (sql, label) => host.run(psql(at, name, { tuples: true, run: [sql] }), { quiet: true, label, timeoutSeconds: 300 }),
  };
}

/** An empty copy, an old one dropped first; a user who may not create databases is told what to change. */
async function createScratch(copy: ScratchCopy, at: Environment): Promise<void> {
  await copy.maintenance(dropDatabaseSql(copy.name), `dropping an old ${copy.name}`);
  const created = await copy.maintenance(`CREATE DATABASE ${ident(copy.name)} TEMPLATE template0;\n`, `creating ${copy.name}`).catch((e: unknown) => e);
  if (created instanceof RemoteCommandError && /permission denied to create database/.test(created.stderr)) {
    throw new OperationFailed(
      `the database user ${at.cfg.database.user} may not create the copy the rehearsal needs: ALTER ROLE ${at.cfg.database.user} CREATEDB, or set promote.rehearse: never`,
    );
  }
  if (created instanceof Error) throw created;
}

/** What the steps on the copy work with. */
interface CopyContext {
  host: Host;
  config: Config;
  at: Environment;
  copy: ScratchCopy;
  log: Logger;
}

/** The backup restored into the copy and analyzed: how long it took, and its tables before the migration. */
async function restoreBackup({
  host,
  config,
  at,
  backup,
  copy,
}: Omit<CopyContext, 'log'> & { backup: BackupManifest }): Promise<{ restoreMs: number; before: Map<string, TableFacts> }> {
  const t = Date.now();
  const file = `${backupDir(config, at, backup.id)}/db.dump`;
  // On the host the dump restores with parallel jobs; inside the db container it is streamed in (one job).
  const restore =
    at.cfg.database.via === 'host'
      ? pgRestore(at, copy.name, { file }, { noOwner: true, jobs: 4 })
      : pgRestore(at, copy.name, { stdin: file }, { noOwner: true });
  await host.run(restore, { quiet: true, label: `restoring backup ${backup.id} into ${copy.name}`, timeoutSeconds: config.backup['timeout-seconds'] });
  await copy.query('ANALYZE', `analyzing ${copy.name}`);
  const restoreMs = Date.now() - t;
  return { restoreMs, before: parseTables((await copy.query(TABLES_SQL, `reading ${copy.name}'s tables`)).stdout) };
}

/** The migration in a one-off container of the new image, with pg_locks sampled all the while. */
async function migrateSampled({
  host,
  config,
  at,
  copy,
  env,
  stopFile,
  log,
}: CopyContext & { env: Record<string, string>; stopFile: string }): Promise<{ run: CommandResult; durationMs: number; samples: string }> {
  const sampler = await startLockSampler({ host, at, copy, stopFile, log });
  const t = Date.now();
  let durationMs: number;
  let run;
  try {
    run = await oneOffAlembic(host, at, alembic.upgradeHead(), {
      env,
      timeoutSeconds: config.gate['timeout-seconds'],
      label: `${at.name}: rehearsal of alembic upgrade head on ${copy.name}`,
      name: `${at.project}-twinstack-rehearse`,
    });
  } finally {
    // The migration's own time, before the wait for the sampler to end.
    durationMs = Date.now() - t;
    await stopLockSampler(host, sampler.process, stopFile, log);
  }
  return { run, durationMs, samples: sampler.output() };
}

/**
 * The sampler: one psql session on the copy fed LOCK_SAMPLE_SQL every 100 ms until the stop file
 * appears. Resolves once it answers: a lock taken before its first sample would be measured short.
 */
async function startLockSampler({
  host,
  at,
  copy,
  stopFile,
  log,
}: Omit<CopyContext, 'config'> & { stopFile: string }): Promise<{ process: RemoteProcess; output: () => string }> {
  await host.run(sh`rm -f ${stopFile}`, { quiet: true, timeoutSeconds: 30 });
  let samples = '';
  const process = host.spawn(hostScript(LOCK_SAMPLER, { STOP_FILE: stopFile, SAMPLE: LOCK_SAMPLE_SQL, PSQL: psql(at, copy.name, { tuples: true }) }), {
    quiet: true,
    label: 'sampling pg_locks',
    onStdout: (c) => (samples += c.toString()),
  });
  const ready = Date.now() + 30_000;
  while (!/\d/.test(samples) && Date.now() < ready) await new Promise((r) => setTimeout(r, 50));
  if (!/\d/.test(samples)) log.warning('rehearsal: the pg_locks sampler did not answer within 30 s; lock times may be measured short');
  return { process, output: () => samples };
}

/** Asks the sampler to stop, and waits at most 15 s for it to end. */
async function stopLockSampler(host: Host, sampler: RemoteProcess, stopFile: string, log: Logger): Promise<void> {
  await host.run(sh`touch ${stopFile}`, { quiet: true, timeoutSeconds: 30 }).catch(ignored(log, 'asking the lock sampler to stop'));
  // The backstop timer is cleared, so it never holds the process open.
  let backstop: NodeJS.Timeout | undefined;
  await Promise.race([sampler.exited, new Promise((r) => (backstop = setTimeout(r, 15_000)))]).catch(ignored(log, 'waiting for the lock sampler'));
  clearTimeout(backstop);
  await host.run(sh`rm -f ${stopFile}`, { check: false, quiet: true, timeoutSeconds: 30 }).catch(ignored(log, `removing ${stopFile}`));
}

/** Tables the migration rewrote (a new relfilenode), with their rows before, and the rows it updated. */
function compareTables(
  before: ReadonlyMap<string, TableFacts>,
  after: ReadonlyMap<string, TableFacts>,
): { rewritten: Array<{ table: string; rows: number }>; updatedRows: number } {
  const rewritten: Array<{ table: string; rows: number }> = [];
  let updatedRows = 0;
  for (const [oid, b] of before) {
    const a = after.get(oid);
    if (!a) continue;
    if (a.filenode !== b.filenode) rewritten.push({ table: b.name, rows: b.rows });
    updatedRows += Math.max(0, a.updated - b.updated);
  }
  return { rewritten, updatedRows };
}

/** One line for a failure message: the rehearsal's own words about what stopped it. */
export function rehearsalRefusal(r: RehearsalResult, budget?: number): string {
  if (r.error) return `the migration failed when rehearsed on a copy of prod: ${r.error}`;
  if (r.overBudget)
    return `the migration held table ${r.overBudget.table} ACCESS EXCLUSIVE for ${r.overBudget.ms} ms when rehearsed, more than promote.max-exclusive-lock-ms (${budget ?? '?'})`;
  return 'the rehearsal did not finish';
}
