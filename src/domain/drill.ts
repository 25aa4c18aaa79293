/**
 * The restore drill: proves, without touching prod, that prod's database can be recovered from
 * what the host keeps (the newest base backup and the WAL archive). The runbook:
 *
 *   1. Read the newest verified dump's manifest (its exact row counts per table); refuse in one
 *      line when there is none with counts, before anything is created.
 *   2. recoverToScratch to `latest` (src/domain/pitr.ts), keeping the scratch server: it works on
 *      copies of the base backup and the WAL in its own directory, with no network; prod's
 *      server, containers and files are only read.
 *   3. Did replay reach the end of the archive? The scratch server's log says where it stopped;
 *      stopping in an earlier segment means that segment is corrupt, or the next one is missing.
 *   4. Row counts: every table of the manifest is there with at least as many rows (rows may only
 *      grow after the dump). Smoke queries from backup.drill.smoke, in a read-only transaction.
 *   5. RTO: seconds from the start to the checks answered; RPO: seconds from the recovery point to
 *      the start. Either over its threshold fails the drill.
 *   6. The scratch server and directory are removed, whatever happened.
 *
 * No lock is taken: the drill changes nothing of prod's, and taking prod's lock would run its
 * opening checks, which may finish or undo a cut operation on prod. A retention that deletes the
 * base backup being copied makes the drill fail loudly; the workflow's concurrency group keeps
 * it apart from promotions and backups anyway.
 */
import type { EnvContext } from './environment';
import { listBackups, type BackupManifest } from './backup';
import { factsOf, recoverToScratch, type ArchiveSource, type RecoveryFacts, type ScratchServer } from './pitr';
import { OffsiteFetchFailed, withOffsiteArchive, type OffsiteSource } from './offsite-restore';
import { listArchive } from './wal';
import { nextSegment, walFileName } from './wal-retention';
import type { DrillSettings } from '../config/backup';
import { OperationFailed, errorMessage, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { logsTail } from '../infra/docker';
import { ignored } from '../infra/logger';
import { walFilesFor } from '../infra/pitr';
import { psql } from '../infra/postgres';

export interface SmokeResult {
  sql: string;
  ok: boolean;
  /** The first row's first column, or why it failed. */
  detail: string;
}

export interface CountCheck {
  table: string;
  dumped: number;
  /** undefined: the table is missing from the recovered copy. */
  recovered?: number;
}

export interface DrillReport {
  started: Date;
  rtoSeconds: number;
  rpoSeconds: number;
  recovery: RecoveryFacts;
  /** The dump whose row counts were compared. */
  backup: BackupManifest;
  counts: CountCheck[];
  smoke: SmokeResult[];
  /** The archive's WAL files the recovery was given (first and last), and where replay ended. */
  segments: { first: string; last: string; replayedTo: string };
  /** One line each; empty when the drill passed. */
  problems: string[];
}

/** A drill that could not finish its recovery: what it knew when it stopped. */
export class DrillFailed extends Error {
  override name = 'DrillFailed';
  constructor(
    message: string,
    readonly backup?: BackupManifest,
  ) {
    super(message);
  }
}

/** The newest verified dump of prod that recorded its row counts. */
export async function drillReference(c: EnvContext): Promise<BackupManifest> {
  const { host, config, env: prod, log } = c;
  const verified = (await listBackups(host, config, prod, log)).filter((m) => m.status === 'verified' && !m.pointInTime);
  if (!verified.length) throw new OperationFailed(`prod has no verified backup under ${config.backup.dir}/prod: run the backup action first`);
  const newest = verified[0];
  if (!newest.rowCounts)
    throw new OperationFailed(`the newest verified backup ${newest.id} has no row counts: take a backup with backup.verify: restore, then run the drill again`);
  return newest;
}

/** Rows may only grow after the dump: a table with fewer rows than the manifest, or missing, is a problem. */
export function compareWithManifest(dumped: Record<string, number>, recovered: Map<string, number>): { checks: CountCheck[]; problems: string[] } {
  const checks = Object.entries(dumped)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([table, n]) => ({ table, dumped: n, recovered: recovered.get(table) }));
  const problems = checks
    .filter((k) => k.recovered === undefined || k.recovered < k.dumped)
    .map((k) => (k.recovered === undefined ? `table ${k.table} is missing` : `table ${k.table} has ${k.recovered} rows, ${k.dumped} in the dump`));
  return { checks, problems };
}

/**
 * Where replay ended, from the scratch server's log: the segment of the record it could not read
 * (`invalid record length at 0/3000148`, `incorrect resource manager data checksum in record at
 * ...`), else the last segment restored from the archive.
 */
export function replayEnd(logText: string, timeline: number): { segment?: string; line?: string } {
  const lines = logText.split('\n');
  const bad = lines.filter((l) => /(invalid|incorrect|unexpected|contrecord|magic)[^\n]* at ([0-9A-F]+\/[0-9A-F]+)/i.test(l)).at(-1);
  const lsn = bad ? /([0-9A-F]+\/[0-9A-F]+)/i.exec(bad.replace(/^.*?(invalid|incorrect|unexpected|contrecord|magic)/i, ''))?.[1] : undefined;
  if (bad && lsn) return { segment: walFileName(lsn, timeline), line: bad.replace(/^.*?(LOG|WARNING|FATAL):\s*/, '').trim() };
  const restored = [...logText.matchAll(/restored log file "([0-9A-F]{24})" from archive/g)].at(-1)?.[1];
  return { segment: restored };
}

/** The problem, when replay ended before the last segment the archive held. */
export function walProblem(end: { segment?: string; line?: string }, archived: readonly string[]): string | undefined {
  const segments = archived.filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
  const last = segments.at(-1);
  if (!end.segment || !last || end.segment >= last) return undefined;
  if (!segments.includes(end.segment)) return `WAL segment ${end.segment} is missing from the archive: replay stopped there, ${last} is the last archived`;
  const next = nextSegment(end.segment);
  if (!segments.includes(next))
    return `WAL segment ${next} is missing from the archive: replay stopped at the end of ${end.segment}, ${last} is the last archived`;
  return `WAL segment ${end.segment} is corrupt: the scratch server's replay stopped in it (${end.line ?? 'no readable record'}), ${last} is the last archived`;
}

/** One smoke query in a read-only transaction: it passes with a row (and, with `expect`, that first value). */
async function smoke(host: Host, server: ScratchServer, database: string, q: { sql: string; expect?: string }): Promise<SmokeResult> {
  const r = await host.run(psql(server, database, { tuples: true, run: ['SET default_transaction_read_only = on', q.sql] }), {
    check: false,
    quiet: true,
    timeoutSeconds: 300,
  });
  if (r.exitCode !== 0) return { sql: q.sql, ok: false, detail: tailLines(r.stderr || r.stdout, 1) };
  const first = r.stdout.split('\n').find((l) => l.trim() !== '');
  if (first === undefined) return { sql: q.sql, ok: false, detail: 'returned no row' };
  const value = first.split('|')[0].trim();
  if (q.expect !== undefined && value !== q.expect) return { sql: q.sql, ok: false, detail: `returned ${value}, expected ${q.expect}` };
  return { sql: q.sql, ok: true, detail: value };
}

/**
 * Runs the drill; returns its report (problems listed) or throws DrillFailed when no recovery was
 * possible. With `offsite`, from the off-host copies alone (src/domain/offsite-restore.ts): their
 * fetch counts in the RTO.
 */
export async function runDrill(c: EnvContext, settings: DrillSettings, now = () => new Date(), offsite?: OffsiteSource): Promise<DrillReport> {
  const started = now();
  const backup = await drillReference(c);
  const run: DrillRun = { settings, now, started, backup };
  if (!offsite) return drillOn(c, run);
  try {
    return await withOffsiteArchive(c, { offsite, target: 'latest' }, (source) => drillOn(c, run, source));
  } catch (e) {
    throw e instanceof OffsiteFetchFailed ? new DrillFailed(`the off-host copies could not be used: ${e.message}`, backup) : e;
  }
}

interface DrillRun {
  settings: DrillSettings;
  now: () => Date;
  started: Date;
  /** The dump whose row counts are compared. */
  backup: BackupManifest;
}

/** Steps 2 to 6, on the host's own archive or on `source`. */
async function drillOn(c: EnvContext, { settings, now, started, backup }: DrillRun, source?: ArchiveSource): Promise<DrillReport> {
  const { host, config, env: prod, log } = c;
  let rec;
  try {
    rec = await recoverToScratch(c, { target: 'latest', keep: true, source });
  } catch (e) {
    throw new DrillFailed(`the recovery failed: ${errorMessage(e)}`, backup);
  }
  try {
    const database = prod.cfg.database.name;
    const archived = walFilesFor(await listArchive(host, config, rec.source.walDir), rec.base.startSegment);
    const logs = await host.run(logsTail(rec.server.name, 5000), { check: false, quiet: true, timeoutSeconds: 60 });
    const end = replayEnd(logs.stdout, parseInt(rec.base.startSegment.slice(0, 8), 16));
    const names = [...archived.files.filter((f) => !f.endsWith('.history')), ...(archived.partial ? [archived.partial.slice(0, 24)] : [])];
    const problems: string[] = [];
    const wal = walProblem(end, names);
    if (wal) problems.push(wal);
    const compared = compareWithManifest(backup.rowCounts ?? {}, rec.counts);
    problems.push(...compared.problems);
    const smokes: SmokeResult[] = [];
    for (const q of settings.smoke) smokes.push(await smoke(host, rec.server, database, q));
    for (const s of smokes.filter((x) => !x.ok)) problems.push(`smoke query "${s.sql.slice(0, 80)}" ${s.detail}`);
    const answered = now();
    const rtoSeconds = Math.round((answered.getTime() - started.getTime()) / 100) / 10;
    const rpoSeconds = Math.max(0, Math.round((started.getTime() - rec.recoveryPoint.getTime()) / 100) / 10);
    if (rtoSeconds > settings['max-rto-seconds']) problems.push(`RTO ${rtoSeconds} s is over backup.drill.max-rto-seconds (${settings['max-rto-seconds']})`);
    if (rpoSeconds > settings['max-rpo-seconds']) problems.push(`RPO ${rpoSeconds} s is over backup.drill.max-rpo-seconds (${settings['max-rpo-seconds']})`);
    log.info(`prod drill: RTO ${rtoSeconds} s, RPO ${rpoSeconds} s, ${problems.length} problem(s)`);
    return {
      started,
      rtoSeconds,
      rpoSeconds,
      recovery: factsOf(rec),
      backup,
      counts: compared.checks,
      smoke: smokes,
      segments: { first: names[0] ?? rec.base.startSegment, last: names.at(-1) ?? rec.base.startSegment, replayedTo: end.segment ?? 'unknown' },
      problems,
    };
  } finally {
    await rec.remove().catch(ignored(log, 'removing the drill scratch recovery'));
  }
}
