/**
 * Point-in-time restore of prod's database from a base backup and the WAL archive (`backup.wal`).
 * The runbook:
 *
 *   1. Choose the newest base backup that finished before the target (backup_label inside base.tar
 *      says where it starts); refuse in one line when none did, before anything is created.
 *   2. A fresh private scratch directory on the host: base.tar unpacked as data/, the archived
 *      segments from the backup's start on copied to archive/ (the archive itself is mounted
 *      read-only and never changed), the segment still being received copied without its .partial
 *      suffix so its writes replay too; all of it the image's postgres user's.
 *   3. A scratch server of prod's own db image on it, with no network and no published port:
 *      restore_command from the copy, recovery_target_time (none for `latest`), then promote.
 *      Wait until it is out of recovery, or fail with its last log lines.
 *   4. Checks read from the scratch server: the alembic revision, exact row counts per table, and
 *      the recovery point: pg_last_xact_replay_timestamp(), the commit time of the last transaction
 *      replayed. It stays fixed once recovery has ended (documented), needs no log parsing (the log
 *      line says the same and is kept as a cross-check), and is NULL only when no transaction
 *      committed after the base backup, where the recovery point is the backup's start.
 *   5. The scratch server and directory are removed, on failure too, unless the caller keeps them
 *      for the swap (restoreToPoint): a pg_dump of the scratch server becomes a verified backup of
 *      prod, restored through restoreBackup's set-aside (prod's previous database is kept aside, and
 *      put back when anything fails), and prod's row counts are compared with the scratch server's.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from './config';
import type { EnvContext } from './environment';
import { backupDir, compareCounts, newBackupId, restoreAsideName, restoreBackup, rowCounts, streamToFile, verifyBackup, type BackupManifest } from './backup';
import { REVISION_SQL } from './schema';
import { baseBackupRoot, listArchive, toolContainer, walDir } from './wal';
import { OperationFailed, errorMessage, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { logsTail } from '../infra/docker';
import { ignored, type Logger } from '../infra/logger';
import { pgDump, pgDumpVersion, psql, type DbClient, type DbTool } from '../infra/postgres';
import { argv, hostScript, type Arg } from '../infra/shell';
import { utcStamp } from '../infra/stamp';
import {
  PITR_BASES_SCRIPT,
  PITR_CLEANUP_SCRIPT,
  parseBackupLabel,
  parseRecoveryLog,
  recoverySettings,
  runScratchServer,
  scratchTool,
  unpackScratch,
  walFilesFor,
} from '../infra/pitr';

/** A recovery target: a time (UTC), or everything the archive holds. */
export type RecoveryTarget = Date | 'latest';

/** The label on scratch containers, so a person (or a test) can tell them apart. */
export const SCRATCH_LABEL = 'twinstack.pitr';

/**
 * Where a recovery reads its base backups and WAL: the host's own (backup.dir's base backups and
 * the WAL archive), or copies laid out the same way (the off-host copies fetched for a restore:
 * src/domain/offsite-restore.ts).
 */
export interface ArchiveSource {
  /** The directory holding one directory per base backup (base.tar, backup_manifest). */
  baseRoot: string;
  /** The directory holding the WAL segments. */
  walDir: string;
  /** Where they came from, as the summary says it. */
  from: string;
}

/** The host's own base backups and WAL archive. */
export function localArchive(config: Config): ArchiveSource {
  return { baseRoot: baseBackupRoot(config), walDir: walDir(config), from: 'the VPS' };
}

/** A base backup found on the host. */
export interface FoundBaseBackup {
  dir: string;
  startTime: Date;
  startSegment: string;
  /** When its backup_manifest was written, rounded up to the next second: the backup is whole from then on. */
  finishedAt: Date;
  /** Tar files besides base.tar (tablespaces). */
  extraTars: string[];
}

/** Reads pitr-bases.sh's output; base backups whose backup_label cannot be read are returned as problems. */
export function parseBaseBackups(text: string): { bases: FoundBaseBackup[]; unreadable: string[] } {
  const bases: FoundBaseBackup[] = [];
  const unreadable: string[] = [];
  for (const chunk of text.split(/^(?=@@base )/m)) {
    const head = /^@@base (\d+) (.+)$/m.exec(chunk);
    if (!head) continue;
    const dir = head[2];
    try {
      const label = parseBackupLabel(chunk);
      const extraTars = [...chunk.matchAll(/^@@tar (.+)$/gm)].map((m) => m[1]);
      bases.push({ dir, startTime: label.startTime, startSegment: label.startSegment, finishedAt: new Date((Number(head[1]) + 1) * 1000), extraTars });
    } catch (e) {
      unreadable.push(`${dir}: ${errorMessage(e)}`);
    }
  }
  return { bases, unreadable };
}

/** The newest base backup whole before the target; refuses in one line when there is none. */
export function chooseBaseBackup(bases: readonly FoundBaseBackup[], target: RecoveryTarget, root: string): FoundBaseBackup {
  const sorted = [...bases].sort((a, b) => b.startTime.getTime() - a.startTime.getTime());
  const base = target === 'latest' ? sorted[0] : sorted.find((b) => b.finishedAt.getTime() <= target.getTime());
  if (!base) {
    if (sorted.length === 0) throw new OperationFailed(`there is no base backup in ${root}: take one first (no point-in-time restore is possible without it)`);
    const oldest = sorted[sorted.length - 1];
    throw new OperationFailed(
      `no base backup was whole before ${isoOf(target)}: the oldest, ${oldest.dir}, finished at ${oldest.finishedAt.toISOString()}; choose a later target`,
    );
  }
  if (base.extraTars.length)
    throw new OperationFailed(`base backup ${base.dir} holds tablespaces (${base.extraTars.join(', ')}): point-in-time restore handles base.tar only`);
  return base;
}

/** A target as the summary and the host log write it. */
export function isoOf(t: RecoveryTarget): string {
  return t === 'latest' ? 'latest' : t.toISOString();
}

/** The scratch server: client tools run inside its container, on its socket. */
export class ScratchServer implements DbClient {
  constructor(
    readonly name: string,
    readonly user: string,
  ) {}
  dbTool(tool: DbTool, args: readonly Arg[]): string {
    return scratchTool(this.name, this.user, tool, args);
  }
}

/** Where scratch directories are made: <backup.dir>/prod/pitr (0700, the SSH user's). */
export function scratchRoot(config: Config): string {
  return `${config.backup.dir}/prod/pitr`;
}

/** What a recovery found, without the scratch server it ran on. */
export interface RecoveryFacts {
  base: FoundBaseBackup;
  target: RecoveryTarget;
  /** The commit time of the last transaction replayed (the backup's start when none was). */
  recoveryPoint: Date;
  /** No transaction committed after the base backup: the recovery point is its start. */
  pointIsBackupStart: boolean;
  /** The commit time of the first transaction left out (a time target), from the log. */
  firstLeftOut?: Date;
  /** The archive ended before any commit at or after the target: everything it holds was replayed. */
  archiveEndsBeforeTarget: boolean;
  alembicRevision: string;
  counts: Map<string, number>;
  /** Seconds from the start to the end of the recovery (unpacking, replay, checks). */
  seconds: number;
  /** The WAL files copied (the .partial one counted). */
  walFiles: number;
  /** Where the base backup and the WAL came from (ArchiveSource.from). */
  from?: string;
}

export interface ScratchRecovery extends RecoveryFacts {
  server: ScratchServer;
  /** The base backups and WAL it was recovered from. */
  source: ArchiveSource;
  /** The scratch directory on the host. */
  dir: string;
  /** Removes the scratch server and directory (already done unless `keep`). */
  remove(): Promise<void>;
}

async function listBaseBackups(host: Host, root: string, log: Logger): Promise<FoundBaseBackup[]> {
  const r = await host.run(hostScript(PITR_BASES_SCRIPT, { ROOT: root }), { label: 'listing the base backups', quiet: true, timeoutSeconds: 600 });
  const { bases, unreadable } = parseBaseBackups(r.stdout);
  if (unreadable.length && bases.length === 0) throw new OperationFailed(`no base backup under ${root} can be read: ${unreadable.join('; ')}`);
  for (const u of unreadable) log.warning(`skipped the base backup ${u}`);
  return bases;
}

export interface RecoverOptions {
  target: RecoveryTarget;
  /** Keep the scratch server for the caller, who calls `remove()`. */
  keep?: boolean;
  timeoutSeconds?: number;
  /** The base backups and WAL to recover from (default: the host's own). */
  source?: ArchiveSource;
}

/**
 * Recovers prod's database as of `target` into a scratch server and reads it. The scratch server
 * and directory are removed before returning (and on any failure), unless `keep`: then the caller
 * calls `remove()` when done with the server.
 */
export async function recoverToScratch(c: EnvContext, o: RecoverOptions): Promise<ScratchRecovery> {
  const { host, config, env: prod, log } = c;
  const started = Date.now();
  const source = o.source ?? localArchive(config);
  const base = chooseBaseBackup(await listBaseBackups(host, source.baseRoot, log), o.target, source.baseRoot);
  const { files, partial } = walFilesFor(await listArchive(host, config, source.walDir), base.startSegment);
  if (!files.includes(base.startSegment) && partial?.slice(0, 24) !== base.startSegment)
    throw new OperationFailed(`the WAL archive ${source.walDir} lacks ${base.startSegment}, where base backup ${base.dir} starts: it cannot be recovered`);
  const tool = await toolContainer(host, config, prod);
  const name = `${prod.project}-twinstack-pitr`;
  const dir = `${scratchRoot(config)}/${utcStamp()}-${randomBytes(3).toString('hex')}`;
  const spec = { image: tool.image, dir, labels: { [SCRATCH_LABEL]: 'scratch' } };
  const remove = async () => {
    await host.run(hostScript(PITR_CLEANUP_SCRIPT, { NAME: name, SCRATCH: dir, IMAGE: tool.image }), {
      label: 'removing the scratch recovery',
      quiet: true,
      timeoutSeconds: 600,
    });
  };
  const server = new ScratchServer(name, prod.cfg.database.user);
  const timeoutSeconds = o.timeoutSeconds ?? config.backup['timeout-seconds'];
  log.info(
    `prod: recovering to ${isoOf(o.target)} from base backup ${base.dir} (started ${base.startTime.toISOString()}) and ${files.length + (partial ? 1 : 0)} WAL file(s)`,
  );
  try {
    await host.run(argv('install', '-d', '-m', '700', scratchRoot(config)), { quiet: true, timeoutSeconds: 60 });
    await host.run(argv('mkdir', '-m', '700', dir), { label: 'creating the scratch directory', quiet: true, timeoutSeconds: 60 });
    // A scratch server a cancelled restore left behind holds the name: it is only ever a scratch copy.
    await host.run(argv('docker', 'rm', '-f', name), { check: false, quiet: true, timeoutSeconds: 120 });
    await host.run(unpackScratch({ ...spec, name, base: base.dir, wal: source.walDir, files, partial }), {
      label: 'unpacking the base backup and the WAL into the scratch directory',
      quiet: true,
      timeoutSeconds: config.backup['timeout-seconds'],
    });
    const database = prod.cfg.database.name;
    const ended = await replay(host, { spec, name, server, database, target: o.target, timeoutSeconds });
    const archiveEndsBeforeTarget = ended === 'target-not-reached';
    if (archiveEndsBeforeTarget) {
      // No commit at or after the target is in the archive: everything it holds comes before the
      // target. PostgreSQL stops rather than guess; the same data directory replays on to the end.
      log.info(`prod: the WAL archive ends before ${isoOf(o.target)}: recovering everything it holds`);
      await replay(host, { spec, name, server, database, target: 'latest', timeoutSeconds });
    }
    const facts = await readScratch(c, server, base);
    if (o.target !== 'latest' && facts.recoveryPoint.getTime() >= o.target.getTime())
      throw new OperationFailed(`the scratch server replayed a transaction of ${facts.recoveryPoint.toISOString()}, not before the target ${isoOf(o.target)}`);
    const seconds = Math.round((Date.now() - started) / 100) / 10;
    log.info(
      `prod: recovered to ${facts.recoveryPoint.toISOString()} in ${seconds} s (alembic ${facts.alembicRevision || 'none'}, ${facts.counts.size} tables)`,
    );
    if (!o.keep) await remove();
    return {
      base,
      target: o.target,
      ...facts,
      archiveEndsBeforeTarget,
      seconds,
      walFiles: files.length + (partial ? 1 : 0),
      from: source.from,
      server,
      dir,
      source,
      remove,
    };
  } catch (e) {
    await remove().catch(ignored(log, 'removing the scratch recovery after a failure'));
    throw e;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the scratch server and waits until its recovery has ended and it is promoted. */
async function replay(
  host: Host,
  o: {
    spec: { image: string; dir: string; labels: Record<string, string> };
    name: string;
    server: ScratchServer;
    database: string;
    target: RecoveryTarget;
    timeoutSeconds: number;
  },
): Promise<'promoted' | 'target-not-reached'> {
  await host.run(argv('docker', 'rm', '-f', o.name), { check: false, quiet: true, timeoutSeconds: 120 });
  await host.run(runScratchServer({ ...o.spec, name: o.name, settings: recoverySettings(o.target) }), {
    label: 'starting the scratch server',
    quiet: true,
    timeoutSeconds: 120,
  });
  const deadline = Date.now() + o.timeoutSeconds * 1000;
  for (;;) {
    const q = await host.run(psql(o.server, o.database, { tuples: true, run: ['SELECT pg_is_in_recovery()'] }), {
      check: false,
      quiet: true,
      timeoutSeconds: 60,
    });
    if (q.exitCode === 0 && q.stdout.trim() === 'f') return 'promoted';
    const state = await host.run(argv('docker', 'inspect', '--format', '{{.State.Running}}', o.name), { check: false, quiet: true, timeoutSeconds: 60 });
    const running = state.stdout.trim() === 'true';
    if (!running || Date.now() > deadline) {
      const logs = await host.run(logsTail(o.name, 2000), { check: false, quiet: true, timeoutSeconds: 60 });
      if (!running && parseRecoveryLog(logs.stdout).targetNotReached) return 'target-not-reached';
      const why = running ? `has not finished its recovery within ${o.timeoutSeconds} s` : 'stopped before its recovery ended';
      throw new OperationFailed(`the scratch server ${o.name} ${why}: ${tailLines(logs.stdout, 5)}`);
    }
    await sleep(1000);
  }
}

/** The checks read from the promoted scratch server: recovery point, alembic revision, row counts. */
async function readScratch(c: EnvContext, server: ScratchServer, base: FoundBaseBackup) {
  const { host, config, env: prod } = c;
  const db = prod.cfg.database.name;
  const point = `SELECT coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '')`;
  const r = await host.run(psql(server, db, { tuples: true, run: [point, REVISION_SQL] }), {
    label: 'reading the recovery point and the alembic revision',
    quiet: true,
    timeoutSeconds: 120,
  });
  const [pointText = '', alembicRevision = ''] = r.stdout.split('\n').map((l) => l.trim());
  const counts = await rowCounts(host, server, db, config.backup['timeout-seconds']);
  const logs = await host.run(logsTail(server.name, 2000), { check: false, quiet: true, timeoutSeconds: 60 });
  const parsed = parseRecoveryLog(logs.stdout);
  const replayed = pointText ? new Date(pointText) : undefined;
  if (replayed && Number.isNaN(replayed.getTime()))
    throw new OperationFailed(`the scratch server's last replayed transaction time "${pointText}" is not a time`);
  return {
    recoveryPoint: replayed ?? base.startTime,
    pointIsBackupStart: !replayed,
    firstLeftOut: parsed.stoppedBefore?.time,
    alembicRevision,
    counts,
  };
}

export interface PointRestore {
  recovery: RecoveryFacts;
  /** The verified backup of prod made from the scratch server, and restored. */
  backup: BackupManifest;
  /** Where prod's database as it was before is kept (until the next restore). */
  aside: string;
  /**
   * Seconds between the recovery point and the target (for `latest`, the time the restore began):
   * how long before it the writes that were not recovered may reach back.
   */
  unrecoveredSeconds: number;
  /** Prod's row counts after the swap (equal to the scratch server's, or the restore fails). */
  counts: Map<string, number>;
}

/**
 * The swap, by the proven path instead of touching prod's data volume: a pg_dump of the scratch
 * server becomes a verified backup of prod (`b<stamp>-prod-pitr`, its manifest naming the base
 * backup, the target and the recovery point), then restoreBackup puts it in as prod's database,
 * prod's previous one set aside (and put back when the restore fails). `services` (prod's app
 * services) are stopped for the restore and started again after it, whatever happened.
 */
export async function restoreToPoint(
  c: EnvContext,
  o: { target: RecoveryTarget; services?: string[]; timeoutSeconds?: number; source?: ArchiveSource },
): Promise<PointRestore> {
  const { host, config, env: prod, log } = c;
  const began = new Date();
  let stage: PointRestoreStage = 'recover';
  try {
    const rec = await recoverToScratch(c, { target: o.target, keep: true, timeoutSeconds: o.timeoutSeconds, source: o.source });
    let backup: BackupManifest;
    try {
      stage = 'dump';
      backup = await dumpScratch(c, rec);
    } finally {
      await rec.remove().catch(ignored(log, 'removing the scratch recovery'));
    }
    stage = 'swap';
    await swapIn(c, backup, o.services ?? []);
    stage = 'check';
    const aside = restoreAsideName(prod.cfg.database.name);
    const counts = await rowCounts(host, prod, prod.cfg.database.name, config.backup['timeout-seconds']);
    const problems = compareCounts(rec.counts, counts);
    if (problems.length)
      throw new OperationFailed(
        `prod was restored from ${backup.id}, but its row counts differ from the recovered copy (${problems.slice(0, 3).join('; ')}); the database it replaced is kept as ${aside}`,
      );
    const reference = o.target === 'latest' ? began : o.target;
    const unrecoveredSeconds = Math.max(0, Math.round((reference.getTime() - rec.recoveryPoint.getTime()) / 100) / 10);
    log.info(
      `prod: restored to ${rec.recoveryPoint.toISOString()} (target ${isoOf(o.target)}, ${unrecoveredSeconds} s before it not recovered) from ${backup.id}`,
    );
    return { recovery: factsOf(rec), backup, aside, unrecoveredSeconds, counts };
  } catch (e) {
    throw new PointRestoreFailed(stage, e);
  }
}

/** Where a point-in-time restore stopped: before the swap prod's database was never touched. */
export type PointRestoreStage = 'recover' | 'dump' | 'swap' | 'check';

export class PointRestoreFailed extends Error {
  override name = 'PointRestoreFailed';
  constructor(
    readonly stage: PointRestoreStage,
    readonly error: unknown,
  ) {
    super(errorMessage(error));
  }
}

/** restoreBackup with prod's app services stopped, and started again whatever happened. */
async function swapIn(c: EnvContext, backup: BackupManifest, services: string[]): Promise<void> {
  const { host, config, env: prod, log } = c;
  if (services.length) await host.run(prod.compose('stop', ...services), prod.composeOptions({ label: 'prod compose stop (for the restore)' }));
  try {
    await restoreBackup({ host, config, env: prod, m: backup, log, opts: { stoppedServices: services } });
  } finally {
    if (services.length) await host.run(prod.compose('start', ...services), prod.composeOptions({ label: 'prod compose start (after the restore)' }));
  }
}

/** What a recovery found, without its scratch server. */
export function factsOf(rec: ScratchRecovery): RecoveryFacts {
  return {
    base: rec.base,
    target: rec.target,
    recoveryPoint: rec.recoveryPoint,
    pointIsBackupStart: rec.pointIsBackupStart,
    firstLeftOut: rec.firstLeftOut,
    archiveEndsBeforeTarget: rec.archiveEndsBeforeTarget,
    alembicRevision: rec.alembicRevision,
    counts: rec.counts,
    seconds: rec.seconds,
    walFiles: rec.walFiles,
    from: rec.from,
  };
}

/** pg_dump -Fc of the scratch server into a new backup directory of prod, with its manifest, verified as a normal backup is. */
async function dumpScratch(c: EnvContext, rec: ScratchRecovery): Promise<BackupManifest> {
  const { host, config, env: prod, log } = c;
  const started = new Date();
  const id = `${newBackupId(prod.name, started)}-pitr`;
  const dir = backupDir(config, prod, id);
  const database = prod.cfg.database.name;
  const version = await host.run(pgDumpVersion(rec.server), { check: false, quiet: true, timeoutSeconds: 60 });
  const m: BackupManifest = {
    id,
    env: prod.name,
    status: 'failed',
    time: rec.recoveryPoint.toISOString(),
    finishedAt: '',
    database,
    alembicRevision: rec.alembicRevision || undefined,
    pointInTime: { base: rec.base.dir, target: isoOf(rec.target), recoveryPoint: rec.recoveryPoint.toISOString() },
    files: {},
    durationSeconds: 0,
    timings: { dump: 0, globals: 0, verify: 0 },
    tools: { pg_dump: version.stdout.trim() || 'unknown' },
    verification: { method: 'list', ok: false, detail: '' },
  };
  try {
    await host.run(argv('mkdir', '-p', '-m', '700', dir), { label: `creating ${dir}`, quiet: true, timeoutSeconds: 60 });
    let t = Date.now();
    m.files['db.dump'] = await streamToFile(host, {
      command: pgDump(rec.server, database, { custom: true }),
      file: `${dir}/db.dump`,
      label: 'pg_dump of the recovered copy',
      timeoutSeconds: config.backup['timeout-seconds'],
    });
    m.timings.dump = Math.round((Date.now() - t) / 100) / 10;
    t = Date.now();
    const problem = await verifyBackup({ host, env: prod, manifest: m, dir, log });
    m.timings.verify = Math.round((Date.now() - t) / 100) / 10;
    m.verification = { method: 'list', ok: !problem, detail: problem ?? 'pg_restore --list read the dump; checksum matches' };
    m.status = problem ? 'failed' : 'verified';
    if (problem) m.error = problem;
  } catch (e) {
    m.error = errorMessage(e);
  } finally {
    m.finishedAt = new Date().toISOString();
    m.durationSeconds = Math.round((Date.now() - started.getTime()) / 100) / 10;
    await host.writeFile(`${dir}/manifest.json`, `${JSON.stringify(m, null, 2)}\n`, 0o600).catch(ignored(log, `writing ${dir}/manifest.json`));
  }
  if (m.status !== 'verified') throw new OperationFailed(`the dump of the recovered copy (${id}) failed: ${m.error}`);
  log.info(`prod: ${id}: ${m.files['db.dump'].bytes} bytes, verified`);
  return m;
}
