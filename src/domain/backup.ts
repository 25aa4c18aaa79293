/**
 * Backups of an environment's database: `pg_dump -Fc` run by the db container's own tools, streamed
 * to a file in the backup directory on the host (hashed on the way), plus `pg_dumpall
 * --globals-only`, a manifest beside them, and a verification. Only a backup whose manifest says
 * `verified` is ever restored or relied on by promote.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import type { Config } from './config';
import type { EnvContext, Environment } from './environment';
import { ConfigurationError, OperationFailed, RemoteCommandError, errorMessage, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { parseHostJson } from '../infra/json';
import { argv, hostScript, sh } from '../infra/shell';
import { NOTHING_LATER, type LaterCompose } from '../infra/compose';
import { pendingDirOf } from './host-log';
import {
  copyDatabaseSettingsSql,
  dropDatabaseSql,
  pgDump,
  pgDumpGlobals,
  pgDumpVersion,
  pgRestore,
  pgRestoreReads,
  psql,
  type DbClient,
  renameDatabaseSql,
} from '../infra/postgres';
import { ident, literal } from '../infra/sql';
import { writeCounters } from './schema';
import { utcStamp } from '../infra/stamp';

const STREAM_TO_FILE = fs.readFileSync(__dirname + '/stream-to-file.sh', 'utf8');
const LIST_MANIFESTS = fs.readFileSync(__dirname + '/list-manifests.sh', 'utf8');
const RESTORE_BACKUP = fs.readFileSync(__dirname + '/restore-backup.sh', 'utf8');
const RESTORE_UNDO = fs.readFileSync(__dirname + '/restore-undo.sh', 'utf8');

const backupFile = z.object({ bytes: z.number(), sha256: z.string() }).passthrough();

/** A backup's manifest.json, as written by takeBackup and parsed (never cast) when read back from the host. */
export const backupManifest = z
  .object({
    id: z.string(),
    env: z.string(),
    status: z.enum(['verified', 'failed']),
    time: z.string(),
    finishedAt: z.string(),
    database: z.string(),
    release: z.string().optional(),
    sha: z.string().optional(),
    alembicRevision: z.string().optional(),
    /** Rows inserted, updated and deleted per table (statistics views) just before the dump's snapshot. */
    writeCounters: z.record(z.number()).optional(),
    /** Exact rows per table in the dump's snapshot (verify: restore counts them): the restore drill compares with them. */
    rowCounts: z.record(z.number()).optional(),
    /** A dump of a point-in-time recovery (src/domain/pitr.ts): its base backup, the target asked for, the last transaction replayed. */
    pointInTime: z.object({ base: z.string(), target: z.string(), recoveryPoint: z.string() }).optional(),
    files: z.record(backupFile),
    durationSeconds: z.number(),
    /** Seconds spent in each stage: the dump (with hashing), the globals, the verification. */
    timings: z.object({ dump: z.number(), globals: z.number(), verify: z.number() }),
    tools: z.record(z.string()),
    verification: z.object({ method: z.enum(['list', 'restore']), ok: z.boolean(), detail: z.string(), tables: z.number().optional() }),
    error: z.string().optional(),
  })
  .passthrough();

export type BackupFile = z.infer<typeof backupFile>;
export type BackupManifest = z.infer<typeof backupManifest>;

/** A manifest.json read from the host; throws HostDataError naming `what` when it is not one. */
export function parseBackupManifest(text: string, what: string): BackupManifest {
  return parseHostJson(backupManifest, text, what);
}

export function newBackupId(env: string, now = new Date()): string {
  return `b${utcStamp(now)}-${env}`;
}

export function backupDir(config: Config, env: Environment, id?: string): string {
  const base = `${config.backup.dir}/${env.name}`;
  return id ? `${base}/${id}` : base;
}

/** The backup directory must never be inside a checkout (where git or compose could touch it). */
export function checkBackupDir(config: Config): void {
  const dir = config.backup.dir;
  if (dir === '/') throw new ConfigurationError('backup.dir must not be /');
  for (const [name, e] of Object.entries(config.environments)) {
    if (dir === e.checkout || dir.startsWith(`${e.checkout}/`)) {
      throw new ConfigurationError(
        `backup.dir ${dir} is inside the ${name} checkout ${e.checkout}: put backups outside every repository checkout, e.g. /var/backups/twinstack`,
      );
    }
  }
}

/** SQL that, run through psql's \gexec, prints `count:<schema.table>:<rows>` for every table. */
const COUNT_ALL = `SELECT format('SELECT %L || count(*) FROM %I.%I', 'count:' || n.nspname || '.' || c.relname || ':', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
ORDER BY n.nspname, c.relname
\\gexec
`;

export function parseCounts(text: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^count:(.+):(\d+)$/.exec(line.trim());
    if (m) counts.set(m[1], Number(m[2]));
  }
  return counts;
}

export function compareCounts(source: Map<string, number>, restored: Map<string, number>): string[] {
  const problems: string[] = [];
  for (const [t, n] of source) {
    if (!restored.has(t)) problems.push(`${t} is missing from the restore`);
    else if (restored.get(t) !== n) problems.push(`${t} has ${restored.get(t)} rows restored, ${n} in the source`);
  }
  return problems;
}

async function psqlValue(host: Host, env: Environment, database: string, sql: string): Promise<string | undefined> {
  const r = await host.run(psql(env, database, { tuples: true, run: [sql] }), { check: false, quiet: true, timeoutSeconds: 120 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

/** Streams a client tool's output into a file on the host, hashing it on the way; returns size and hash. */
export async function streamToFile(
  host: Host,
  { command, file, label, timeoutSeconds }: { command: string; file: string; label: string; timeoutSeconds: number },
): Promise<BackupFile> {
  const partial = `${file}.partial`;
  try {
    const r = await host.run(hostScript(STREAM_TO_FILE, { COMMAND: command, PARTIAL: partial, FILE: file }), {
      label,
      quiet: true,
      timeoutSeconds,
    });
    const [hashLine, sizeLine] = r.stdout.trim().split('\n');
    return { sha256: hashLine.split(/\s+/)[0], bytes: Number(sizeLine) };
  } catch (e) {
    await host.run(sh`rm -f ${partial}`, { check: false, quiet: true, timeoutSeconds: 60 });
    throw e;
  }
}

export interface BackupContext {
  release?: string;
  sha?: string;
}

export interface TakeBackupOptions extends EnvContext {
  /** The release the backup is of, recorded in its manifest. */
  ctx: BackupContext;
  /** How the backup is checked; the config's `backup.verify` when not given. */
  verify?: BackupManifest['verification']['method'];
}

/**
 * Takes and verifies a backup. Returns its manifest; throws OperationFailed (after writing a
 * `failed` manifest where the disk allows) when the dump or its verification fails.
 */
export async function takeBackup({ host, config, env, ctx, log, verify = config.backup.verify }: TakeBackupOptions): Promise<BackupManifest> {
  checkBackupDir(config);
  const started = new Date();
  const id = newBackupId(env.name, started);
  const dir = backupDir(config, env, id);
  const database = env.cfg.database.name;
  const timeoutSeconds = config.backup['timeout-seconds'];
  const manifest = openManifest({ id, env, ctx, started, verify });
  log.startGroup(`${env.name}: backup ${id}`);
  let snapshotSession: Awaited<ReturnType<typeof openSnapshot>> | undefined;
  try {
    await host.run(sh`mkdir -p -m 700 ${dir}`, { label: `creating ${dir}`, quiet: true, timeoutSeconds: 60 });
    manifest.tools.pg_dump = (await psqlVersion(host, env)) ?? 'unknown';
    manifest.alembicRevision = await psqlValue(host, env, database, 'SELECT version_num FROM alembic_version LIMIT 1');
    // Read just before the snapshot: a restore of this backup loses what the counters add after it.
    manifest.writeCounters = await writeCounters(host, env, database).catch(ignored(log, 'reading the write counters'));
    if (verify === 'restore') snapshotSession = await openSnapshot(host, env, database, log);
    const seconds = (since: number) => Math.round((Date.now() - since) / 100) / 10;
    let t = Date.now();
    manifest.files['db.dump'] = await streamToFile(host, {
      command: pgDump(env, database, { custom: true, snapshot: snapshotSession?.snapshot }),
      file: `${dir}/db.dump`,
      label: `pg_dump of ${env.name}`,
      timeoutSeconds,
    });
    manifest.timings.dump = seconds(t);
    log.info(`db.dump: ${manifest.files['db.dump'].bytes} bytes, sha256 ${manifest.files['db.dump'].sha256}`);
    const counts = snapshotSession ? await snapshotSession.counts() : undefined;
    await snapshotSession?.close();
    snapshotSession = undefined;
    t = Date.now();
    manifest.files['globals.sql'] = await dumpGlobals({ host, env, file: `${dir}/globals.sql`, log, timeoutSeconds });
    manifest.timings.globals = seconds(t);

    t = Date.now();
    const problem = await verifyBackup({ host, env, manifest, dir, log, counts, timeoutSeconds });
    manifest.timings.verify = seconds(t);
    manifest.verification.ok = !problem;
    manifest.verification.detail =
      problem ??
      (verify === 'restore' ? `restored into a scratch database; ${counts?.size ?? 0} tables match` : 'pg_restore --list read the dump; checksum matches');
    if (counts) manifest.verification.tables = counts.size;
    if (counts) manifest.rowCounts = Object.fromEntries(counts);
    manifest.status = problem ? 'failed' : 'verified';
    if (problem) manifest.error = problem;
  } catch (e) {
    manifest.error = e instanceof RemoteCommandError ? e.message : errorMessage(e);
    manifest.status = 'failed';
  } finally {
    await snapshotSession?.close().catch(ignored(log, 'closing the snapshot session'));
    manifest.finishedAt = new Date().toISOString();
    manifest.durationSeconds = Math.round((Date.now() - started.getTime()) / 100) / 10;
    await host
      .writeFile(`${dir}/manifest.json`, `${JSON.stringify(manifest, null, 2)}\n`, 0o600)
      .catch((e) => log.warning(`could not write ${dir}/manifest.json: ${errorMessage(e)}`));
    log.endGroup();
  }
  if (manifest.status !== 'verified') {
    throw new OperationFailed(`backup ${id} of ${env.name} failed: ${manifest.error}`);
  }
  return manifest;
}

/** The manifest of a backup just started: failed until its verification says otherwise. */
function openManifest({
  id,
  env,
  ctx,
  started,
  verify,
}: {
  id: string;
  env: Environment;
  ctx: BackupContext;
  started: Date;
  verify: BackupManifest['verification']['method'];
}): BackupManifest {
  return {
    id,
    env: env.name,
    status: 'failed',
    time: started.toISOString(),
    finishedAt: '',
    database: env.cfg.database.name,
    release: ctx.release,
    sha: ctx.sha,
    files: {},
    durationSeconds: 0,
    timings: { dump: 0, globals: 0, verify: 0 },
    tools: {},
    verification: { method: verify, ok: false, detail: '' },
  };
}

async function psqlVersion(host: Host, env: Environment): Promise<string | undefined> {
  const r = await host.run(pgDumpVersion(env), { check: false, quiet: true, timeoutSeconds: 60 });
  return r.exitCode === 0 ? r.stdout.trim() : undefined;
}

async function dumpGlobals({
  host,
  env,
  file,
  log,
  timeoutSeconds,
}: Omit<EnvContext, 'config'> & { file: string; timeoutSeconds: number }): Promise<BackupFile> {
  const label = `pg_dumpall --globals-only of ${env.name}`;
  try {
    return await streamToFile(host, { command: pgDumpGlobals(env, { rolePasswords: true }), file, label, timeoutSeconds });
  } catch (e) {
    // Reading role passwords needs a superuser; without them the roles and grants are still saved.
    if (e instanceof RemoteCommandError && /permission denied/i.test(e.stderr)) {
      log.warning(`${env.name}: the database user cannot read role passwords; globals.sql is saved without them`);
      return streamToFile(host, { command: pgDumpGlobals(env, { rolePasswords: false }), file, label, timeoutSeconds });
    }
    throw e;
  }
}

/** A REPEATABLE READ session whose snapshot pg_dump shares, so the row counts are of the same data. */
async function openSnapshot(host: Host, env: Environment, database: string, log: Logger) {
  let out = '';
  // No -f: psql reads the session's statements from standard input as they are written.
  const proc = host.spawn(psql(env, database, { tuples: true, run: [] }), {
    quiet: true,
    label: 'snapshot session',
    onStdout: (c) => (out += c.toString()),
  });
  const snap = proc.waitForLine(/^snap:/);
  await proc.write(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;\nSELECT 'snap:' || pg_export_snapshot();\n`);
  const snapshot = (await snap).slice('snap:'.length);
  return {
    snapshot,
    async counts(): Promise<Map<string, number>> {
      const done = proc.waitForLine('counts:done');
      await proc.write(`${COUNT_ALL}SELECT 'counts:done';\n`);
      await done;
      return parseCounts(out);
    },
    async close(): Promise<void> {
      await proc.write('COMMIT;\n').catch(ignored(log, 'ending the snapshot transaction'));
      await proc.end();
    },
  };
}

/** Exact row counts of every table of `database` on the client's server (an environment, or a scratch server). */
export async function rowCounts(host: Host, env: DbClient, database: string, timeoutSeconds: number): Promise<Map<string, number>> {
  const r = await host.run(psql(env, database, { tuples: true }), {
    stdin: COUNT_ALL,
    quiet: true,
    label: `counting rows in ${database}`,
    timeoutSeconds,
  });
  return parseCounts(r.stdout);
}

/** Checks a backup on disk: checksum, pg_restore --list, and (with counts) a scratch restore. Returns the problem, if any. */
export async function verifyBackup({
  host,
  env,
  manifest,
  dir,
  log,
  counts,
  timeoutSeconds = 3600,
}: Omit<EnvContext, 'config'> & {
  manifest: BackupManifest;
  dir: string;
  /** The source's row counts: given, the backup is also restored into a scratch database and counted. */
  counts?: Map<string, number>;
  timeoutSeconds?: number;
}): Promise<string | undefined> {
  for (const [name, f] of Object.entries(manifest.files)) {
    const r = await host.run(sh`sha256sum ${`${dir}/${name}`}`, { check: false, quiet: true, timeoutSeconds });
    const actual = r.stdout.split(/\s+/)[0];
    if (r.exitCode !== 0) return `${name} cannot be read: ${tailLines(r.stderr, 1)}`;
    if (actual !== f.sha256) return `${name} is corrupted: its sha256 is ${actual}, the manifest says ${f.sha256}`;
  }
  const list = await host.run(pgRestoreReads(env, { stdin: `${dir}/db.dump` }), {
    check: false,
    quiet: true,
    timeoutSeconds,
  });
  if (list.exitCode !== 0) return `pg_restore --list cannot read db.dump: ${tailLines(list.stderr, 2)}`;
  if (!counts) return undefined;

  const scratch = `${manifest.database}_twinstack_verify`.slice(0, 63);
  const maintenance = (sql: string, label: string) => host.run(psql(env, 'postgres'), { stdin: sql, quiet: true, label, timeoutSeconds: 300 });
  const dropScratch = () => maintenance(dropDatabaseSql(scratch), `dropping the scratch database ${scratch}`);
  try {
    await dropScratch();
    const created = await maintenance(`CREATE DATABASE ${ident(scratch)};\n`, `creating the scratch database ${scratch}`).catch((e: unknown) => e);
    if (created instanceof RemoteCommandError && /permission denied to create database/.test(created.stderr)) {
      return `the database user ${env.cfg.database.user} may not create the scratch database that verify: restore needs: ALTER ROLE ${env.cfg.database.user} CREATEDB, or use verify: list`;
    }
    if (created instanceof Error) throw created;
    const restore = await host.run(pgRestore(env, scratch, { stdin: `${dir}/db.dump` }, { noOwner: true }), {
      check: false,
      quiet: true,
      timeoutSeconds,
    });
    if (restore.exitCode !== 0) return `the dump does not restore: ${tailLines(restore.stderr, 2)}`;
    const restored = await rowCounts(host, env, scratch, timeoutSeconds);
    const problems = compareCounts(counts, restored);
    if (problems.length) return `the restored row counts differ: ${problems.slice(0, 5).join('; ')}`;
    log.info(`verified by restore: ${counts.size} tables, row counts equal`);
    return undefined;
  } finally {
    await dropScratch().catch((e) => log.warning(`could not drop the scratch database ${scratch}: ${errorMessage(e)}`));
  }
}

/** Every backup of an environment, newest first, read from the manifests. */
export async function listBackups(host: Host, config: Config, env: Environment, log?: Pick<Logger, 'warning'>): Promise<BackupManifest[]> {
  const base = backupDir(config, env);
  const r = await host.run(hostScript(LIST_MANIFESTS, { BASE: base }), {
    quiet: true,
    timeoutSeconds: 120,
  });
  const out: BackupManifest[] = [];
  for (const chunk of r.stdout.split('@@twinstack-manifest@@')) {
    if (!chunk.trim()) continue;
    try {
      out.push(parseBackupManifest(chunk, `a manifest under ${base}`));
    } catch (e) {
      // Cut short by a full disk, edited by hand, another version's: not a backup twinstack can vouch for.
      log?.warning(`Skipped ${errorMessage(e)}; that backup is neither used nor pruned.`);
    }
  }
  return out.sort((a, b) => (a.id < b.id ? 1 : -1));
}

/** Finds one backup by id and re-checks it on disk (checksums and pg_restore --list). */
export async function usableBackup({ host, config, env, id, log }: EnvContext & { id: string }): Promise<BackupManifest> {
  const m = (await listBackups(host, config, env, log)).find((b) => b.id === id);
  if (!m) throw new OperationFailed(`backup ${id} of ${env.name} does not exist in ${backupDir(config, env)}`);
  if (m.status !== 'verified') throw new OperationFailed(`backup ${id} failed when it was taken (${m.error ?? 'not verified'}); it is never used`);
  const problem = await verifyBackup({ host, env, manifest: m, dir: backupDir(config, env, id), log });
  if (problem) throw new OperationFailed(`backup ${id} cannot be used: ${problem}`);
  return m;
}

export interface RestoreBackupOptions extends Omit<EnvContext, 'log'> {
  /** The backup to restore. */
  m: BackupManifest;
  log?: Logger;
  /**
   * Services stopped for the restore, started again by the undo if the restore is cut (compose
   * start), or what starts them instead (restartLater: a stack's services scaled back).
   */
  opts?: { stoppedServices?: string[]; restartLater?: LaterCompose };
}

/**
 * Restores a verified backup as the environment's database. `pg_restore --clean` would leave behind
 * whatever the dump does not know of (a table a half-applied migration created), so the restore
 * goes into a new, empty database instead: the current one is renamed aside to
 * `<name>_twinstack_pre_restore` (kept until the next restore), a new one is created with the same
 * owner, encoding and database privileges, and the dump is restored into it in one transaction. If
 * that fails, the new database is dropped and the old one renamed back. Needs a database user that
 * may create databases (the official postgres image's POSTGRES_USER can).
 */
export async function restoreBackup({ host, config, env, m, log, opts = {} }: RestoreBackupOptions): Promise<void> {
  const file = `${backupDir(config, env, m.id)}/db.dump`;
  const db = m.database;
  const aside = restoreAsideName(db);
  const sql = psql(env, 'postgres');
  const sqlTuples = psql(env, 'postgres', { tuples: true });
  const setAside = `${dropDatabaseSql(aside)}${renameDatabaseSql(db, aside)}`;
  // Same owner, encoding and collation as the database it replaces; database-level privileges
  // (e.g. the app role's CONNECT) are not part of the dump, so they are copied.
  const create =
    `SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0 ENCODING %L LC_COLLATE %L LC_CTYPE %L', ${literal(db)}, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype) FROM pg_database WHERE datname = ${literal(aside)} \\gexec\n` +
    `SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', ${literal(db)}) FROM pg_database WHERE datname = ${literal(aside)} AND datacl IS NOT NULL \\gexec\n` +
    `SELECT format('GRANT %s ON DATABASE %I TO %s', a.privilege_type, ${literal(db)}, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END) FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = ${literal(aside)} \\gexec\n`;
  // Settings belong to the database, not to the dump: they move from the set-aside one once the
  // restore is in (a setting such as default_transaction_read_only must not apply to pg_restore).
  const settings = copyDatabaseSettingsSql(aside, db);
  const putBack = `${dropDatabaseSql(db)}${renameDatabaseSql(aside, db)}`;
  const tag = `twinstack restore ${m.id} in progress`;
  const undoCheck =
    `SELECT 1 FROM pg_database a WHERE a.datname = ${literal(aside)} AND NOT EXISTS ` +
    `(SELECT 1 FROM pg_database d WHERE d.datname = ${literal(db)} AND coalesce(shobj_description(d.oid, 'pg_database'), '') <> ${literal(tag)});`;
  const restart = opts.restartLater ?? (opts.stoppedServices?.length ? env.composeLater('start', ...opts.stoppedServices) : NOTHING_LATER);

  // What undoes a cut restore: written before anything moves, run by the next operation if this
  // script never gets to remove it (see pendingUndo in operation.ts).
  const undo =
    `# restore of ${env.name} from ${m.id}, started ${new Date().toISOString()}: put ${db} back as it was\n` +
    hostScript(RESTORE_UNDO, { PSQL: sql, PSQL_TUPLES: sqlTuples, UNDO_CHECK: undoCheck, PUT_BACK: putBack, ...restart }) +
    '\n';
  const script = hostScript(RESTORE_BACKUP, {
    PENDING_DIR: pendingDir(config, env),
    MARKER: `${pendingDir(config, env)}/restore.sh`,
    UNDO: undo,
    DB: db,
    PSQL: sql,
    SET_ASIDE: setAside,
    PUT_BACK: putBack,
    CREATE: create + `COMMENT ON DATABASE ${ident(db)} IS ${literal(tag)};\n`,
    RESTORE: pgRestore(env, db, { stdin: file }, { singleTransaction: true }),
    SETTINGS: settings,
    UNTAG: `COMMENT ON DATABASE ${ident(db)} IS NULL;\n`,
  });
  const r = await host.run(script, {
    label: `restoring ${env.name} from backup ${m.id}`,
    timeoutSeconds: config.backup['timeout-seconds'],
    check: false,
  });
  if (r.exitCode !== 0 || r.timedOut) {
    throw new RemoteCommandError({ ...r, command: `restore of ${env.name} from ${m.id}`, label: `restoring ${env.name} from backup ${m.id}` });
  }
  log?.info(`${env.name}: ${db} restored from ${m.id}; the database as it was before is kept as ${aside} until the next restore`);
}

/** Where a restore keeps the database it replaced (until the next restore). */
export function restoreAsideName(database: string): string {
  return `${database}_twinstack_pre_restore`.slice(0, 63);
}

/** Where multi-step host changes leave the script that undoes them until they finish. */
export function pendingDir(config: Config, env: Environment): string {
  return pendingDirOf(config['state-dir'], env.name);
}

/** Keeps the newest `keep` verified backups and deletes older ones (and failed ones older than the newest verified). */
export async function pruneBackups(host: Host, config: Config, env: Environment, log: Logger): Promise<string[]> {
  const all = await listBackups(host, config, env, log);
  const verified = all.filter((b) => b.status === 'verified');
  const keepIds = new Set(verified.slice(0, config.backup.keep).map((b) => b.id));
  const newestVerified = verified[0];
  const doomed = all.filter((b) => !keepIds.has(b.id) && (b.status === 'verified' || (newestVerified && b.id < newestVerified.id)));
  if (doomed.length === 0) return [];
  await host.run(
    argv(
      'rm',
      '-rf',
      doomed.map((b) => backupDir(config, env, b.id)),
    ),
    { label: 'pruning old backups', quiet: true, timeoutSeconds: 600 },
  );
  log.info(`${env.name}: deleted backups ${doomed.map((b) => b.id).join(', ')} (keeping the newest ${config.backup.keep} verified)`);
  return doomed.map((b) => b.id);
}
