/**
 * The append-only host log: one JSON object per line in <state-dir>/<env>/log.jsonl on the host.
 * Every action that changes the host records what it did, for which sha, by which run, and how it
 * ended. Appends are single `>>` writes of one line, so concurrent readers never see half a record.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { ConfigurationError, RemoteCommandError, mib } from '../infra/errors';
import { MAX_CAPTURE_BYTES, type Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { hostScript } from '../infra/shell';
import { utcStamp } from '../infra/stamp';

const READ_LOG = fs.readFileSync(__dirname + '/read-log.sh', 'utf8');
const APPEND_LOG = fs.readFileSync(__dirname + '/append-log.sh', 'utf8');
const COMPACT_LOG = fs.readFileSync(__dirname + '/compact-log.sh', 'utf8');

const outcome = z.enum(['success', 'failure', 'cancelled', 'interrupted']);
export type Outcome = z.infer<typeof outcome>;

/** What every record has: which environment, which action and operation, which run, when. */
const base = {
  v: z.literal(1),
  time: z.string(),
  env: z.string(),
  action: z.string(),
  op: z.string(),
  run: z.string().optional(),
  actor: z.string().optional(),
  sha: z.string().optional(),
};
const record = <E extends string, F extends z.ZodRawShape>(event: E, fields: F) => z.object({ ...base, event: z.literal(event), ...fields }).passthrough();
const serviceImage = z.object({ name: z.string(), id: z.string(), tag: z.string() });
/**
 * A field that only informs (a size, a count, what was shipped): typed when written, and when read
 * a value of another shape is dropped rather than costing the record, which may decide a rollback.
 */
const info = <T extends z.ZodTypeAny>(type: T) => type.optional().catch(undefined);
const count = info(z.number());
const text = info(z.string());
const names = info(z.array(z.string()));

/**
 * The host log's records: a tagged union on `event`. Fields twinstack decides on (a release's
 * commit and images, a gate's verdict and what it tested) are checked when the log is read; a line
 * that does not match is reported and skipped, never trusted. Other fields pass through.
 */
export const logRecord = z.discriminatedUnion('event', [
  record('started', { staleLock: z.string().optional() }),
  record('finished', { outcome, error: z.string().optional(), stopped: text }),
  record('interrupted', { outcome: z.literal('interrupted').optional(), reportedBy: z.string().optional() }),
  record('recovered', { what: z.string() }),
  record('release', {
    release: z.string(),
    sha: z.string(),
    kind: z.enum(['deploy', 'promote', 'rollback']),
    images: z.record(serviceImage),
    previous: z.string().optional(),
    rolledBackFrom: z.string().optional(),
    durationSeconds: count,
    /** Services found changed by hand beforehand, put back as the release says. */
    settled: names,
    reason: text,
    restoredBackup: text,
    devRelease: text,
    gate: text,
    backup: text,
    shipped: names,
    rebuilt: names,
    /** A swarm release: each service pinned by digest (repo@sha256:...), what a rollback deploys again. */
    digests: z.record(z.string()).optional(),
    /** A swarm release's services deployed by image name, having no digest on the manager. */
    unpinned: names,
  }),
  record('release-failed', {
    stage: z.string(),
    error: z.string().optional(),
    images: z.record(z.string()).optional(),
    head: z.string().optional(),
    previous: z.string().optional(),
    ref: text,
  }),
  record('rollback', {
    release: z.string(),
    rolledBackFrom: z.string().optional(),
    failedSha: text,
    stage: text,
    restoredBackup: text,
    restoredAt: text,
    schemaMoved: info(z.boolean()),
    rowsLost: count,
  }),
  record('gate', {
    sha: z.string(),
    release: z.string().optional(),
    passed: z.boolean(),
    images: z.record(z.string()).optional(),
    apiImage: z.string().optional(),
    problems: z.array(z.string()).optional(),
    tests: info(z.object({ passed: count, failed: count, skipped: count })),
    alembicHead: text,
  }),
  record('backup', { status: z.string(), backup: z.string().optional(), bytes: count, sha256: text, error: text }),
  record('offsite', { backup: z.string(), status: z.enum(['copied', 'failed']), location: z.string(), error: z.string().optional() }),
  record('wal', {
    mode: z.enum(['ensure', 'off']),
    status: z.enum(['done', 'failed']),
    receiver: z.string().optional(),
    slot: z.string().optional(),
    error: z.string().optional(),
  }),
  record('restore', {
    target: z.string(),
    status: z.enum(['done', 'failed']),
    stage: text,
    recoveryPoint: text,
    unrecoveredSeconds: count,
    base: text,
    backup: text,
    alembicRevision: text,
    error: text,
  }),
  record('drill', {
    status: z.enum(['passed', 'failed']),
    /** Seconds from the drill's start to the recovered copy answering its checks, and recovery point age then. */
    rtoSeconds: count,
    rpoSeconds: count,
    recoveryPoint: text,
    base: text,
    /** The verified dump whose row counts were compared. */
    backup: text,
    problems: names,
    error: text,
  }),
  record('base-backup', {
    status: z.enum(['done', 'failed']),
    /** The base backup's directory name under <backup.dir>/prod/base (its UTC stamp). */
    stamp: text,
    bytes: count,
    seconds: count,
    /** Older base backups removed by the retention, and how many WAL segments went with them. */
    pruned: names,
    walPruned: count,
    error: text,
  }),
  record('refused', { stage: z.string(), reason: z.string(), backup: text }),
  record('staging-created', { database: z.string(), fraction: count, seed: text }),
  record('resampled', { rows: count, fraction: count, seed: text }),
  record('swapped', { database: z.string(), previous: text }),
  record('swapped-back', { database: z.string() }),
  record('vault-synced', { copied: count, bytes: count, deleted: count, missing: count, links: count, outside: count }),
]);
export type LogRecord = z.infer<typeof logRecord>;
export type LogEvent = LogRecord['event'];
/** A record of one event, narrowed. */
export type RecordOf<E extends LogEvent> = Extract<LogRecord, { event: E }>;
/** A record's own fields, without the index signature passthrough adds (so a misspelt field is an error when written). */
type KnownFields<R> = { [K in keyof R as string extends K ? never : K]: R[K] };
/** What a caller appends: the fields of one event, typed by its schema; version, time and environment are added. */
export type NewRecord = LogRecord extends infer R ? (R extends LogRecord ? Omit<KnownFields<R>, 'v' | 'time' | 'env'> & { time?: string } : never) : never;
/** The fields of one event that an operation records (its action, operation and run are added). */
export type RecordFields<E extends LogEvent> = Omit<Extract<NewRecord, { event: E }>, 'event' | 'action' | 'op'>;

export function stateDirOf(stateDir: string, env: string): string {
  return `${stateDir}/${env}`;
}

/** Where multi-step host changes leave the script that undoes (or finishes) them until they are done. */
export function pendingDirOf(stateDir: string, env: string): string {
  return `${stateDirOf(stateDir, env)}/pending`;
}

export class HostLog {
  readonly file: string;

  constructor(
    private readonly host: Host,
    readonly stateDir: string,
    readonly env: string,
  ) {
    this.file = `${stateDirOf(stateDir, env)}/log.jsonl`;
  }

  async append(record: NewRecord): Promise<LogRecord> {
    const full = { v: 1, time: new Date().toISOString(), env: this.env, ...record } as LogRecord;
    const line = JSON.stringify(full);
    await this.host.run(hostScript(APPEND_LOG, { DIR: stateDirOf(this.stateDir, this.env), LINE: line, FILE: this.file }), {
      label: `appending to the ${this.env} host log`,
      quiet: true,
      timeoutSeconds: 60,
    });
    return full;
  }

  /**
   * Keeps the log small enough to read whole at every operation: past `overLines` records the
   * whole file is archived next to it (log-<time>.jsonl.gz, every line as it was) and the live log
   * keeps what decisions need (compactRecords). Runs under the environment's lock (no appends
   * meanwhile); the swap is two renames. Returns the archive's path, or undefined when small.
   */
  async compact(records: LogRecord[], opts: { overLines?: number; keepRecent?: number } = {}): Promise<string | undefined> {
    if (records.length <= (opts.overLines ?? COMPACT_OVER_LINES)) return undefined;
    const kept = compactRecords(records, opts.keepRecent ?? KEEP_RECENT);
    const stamp = utcStamp();
    const archive = `${stateDirOf(this.stateDir, this.env)}/log-${stamp}.jsonl.gz`;
    const text = kept.map((r) => JSON.stringify(r)).join('\n') + '\n';
    await this.host.run(hostScript(COMPACT_LOG, { FILE: this.file, ARCHIVE: archive }), {
      stdin: text,
      label: `compacting the ${this.env} host log`,
      quiet: true,
      timeoutSeconds: 300,
    });
    return archive;
  }

  /**
   * All records, oldest first. Lines that do not parse are counted and skipped, never fatal. A log
   * bigger than a command's output may be (MAX_CAPTURE_BYTES) is refused, never read in part: its
   * newest records are the ones that decide, and they are at the end.
   */
  async read(log?: Logger): Promise<LogRecord[]> {
    const label = `reading the ${this.env} host log`;
    const r = await this.host.run(hostScript(READ_LOG, { FILE: this.file, MAX_BYTES: MAX_CAPTURE_BYTES, TOO_BIG }), {
      label,
      quiet: true,
      timeoutSeconds: 120,
      check: false,
    });
    const size = Number(r.stderr.trim());
    if (r.exitCode === TOO_BIG && Number.isInteger(size)) {
      throw new ConfigurationError(
        `the ${this.env} host log ${this.file} is ${mib(size)} (${size} bytes), more than the ${mib(MAX_CAPTURE_BYTES)} twinstack reads whole: archive it on the host, keeping the records decisions need (cd ${stateDirOf(this.stateDir, this.env)} && mv log.jsonl log-old.jsonl && grep -E '"event":"(release|rollback|gate)"' log-old.jsonl > log.jsonl && gzip log-old.jsonl)`,
      );
    }
    if (r.exitCode !== 0 || r.timedOut) throw new RemoteCommandError({ ...r, label });
    return parseLog(r.stdout, this.file, log);
  }
}

export function parseLog(text: string, file: string, log?: Logger): LogRecord[] {
  const records: LogRecord[] = [];
  const bad: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      bad.push(`line ${i + 1} is not JSON`);
      return;
    }
    const r = logRecord.safeParse(value);
    if (r.success) records.push(r.data);
    else bad.push(`line ${i + 1}: ${describeIssue(r.error, value)}`);
  });
  if (bad.length && log) log.warning(`${file}: ${bad.length} line(s) are not twinstack records and were skipped (${bad.slice(0, 3).join('; ')})`);
  return records;
}

function describeIssue(error: z.ZodError, value: unknown): string {
  const event = value && typeof value === 'object' && 'event' in value ? String(value.event).slice(0, 40) : undefined;
  const issue = error.issues[0];
  if (issue?.code === 'invalid_union_discriminator') return `unknown event ${JSON.stringify(event ?? null)}`;
  const where = issue?.path.length ? issue.path.join('.') : 'record';
  return `${event ?? 'record'}: ${where}: ${issue?.message ?? 'invalid'}`;
}

export const COMPACT_OVER_LINES = 20_000;
/** read()'s exit status for a log too big to read whole. */
const TOO_BIG = 3;
export const KEEP_RECENT = 2_000;

/**
 * What the live log keeps when compacted: every release and rollback (the release stack), the
 * newest gate of each commit, the start of every operation that never finished, and the newest
 * `keepRecent` records of any kind. Order is kept.
 */
export function compactRecords(records: LogRecord[], keepRecent = KEEP_RECENT): LogRecord[] {
  const unfinished = new Set(unfinishedOperations(records).map((r) => r.op));
  const lastGate = new Map<string, number>();
  records.forEach((r, i) => {
    if (r.event === 'gate') lastGate.set(r.sha, i);
  });
  const recent = records.length - keepRecent;
  return records.filter(
    (r, i) =>
      i >= recent ||
      r.event === 'release' ||
      r.event === 'rollback' ||
      (r.event === 'gate' && lastGate.get(r.sha) === i) ||
      (r.event === 'started' && unfinished.has(r.op)),
  );
}

/** Operations that were started and never finished (their run died or lost the connection). */
export function unfinishedOperations(records: LogRecord[]): LogRecord[] {
  const closed = new Set(records.filter((r) => r.event === 'finished' || r.event === 'interrupted').map((r) => r.op));
  return records.filter((r) => r.event === 'started' && !closed.has(r.op));
}

/** The newest record of an event, optionally filtered. */
export function latest<E extends LogEvent>(records: LogRecord[], event: E, where: (r: RecordOf<E>) => boolean = () => true): RecordOf<E> | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i];
    if (r.event === event && where(r as RecordOf<E>)) return r as RecordOf<E>;
  }
  return undefined;
}
