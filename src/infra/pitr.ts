/**
 * The command lines of a point-in-time recovery (src/domain/pitr.ts): unpacking a base backup and
 * the WAL it needs into a scratch directory, the scratch server of prod's own db image that replays
 * them, and the pure readers of what PostgreSQL writes (backup_label, the recovery's log lines).
 * Everything runs in containers of prod's db image, so the tools are the server's version.
 */
import * as fs from 'node:fs';
import { argv, quote, type Arg } from './shell';

/** Where the scratch directory is mounted in the scratch containers (data/, archive/, hba.conf, the socket). */
export const SCRATCH_MOUNT = '/pitr';

// Literal paths: scripts/bundle.sh finds them in the bundle and copies the files beside it.
/** Lists the base backups under ROOT with their backup_label (parameter ROOT). */
export const PITR_BASES_SCRIPT = fs.readFileSync(__dirname + '/pitr-bases.sh', 'utf8');
/** Removes the scratch server and directory (parameters NAME, SCRATCH, IMAGE). */
export const PITR_CLEANUP_SCRIPT = fs.readFileSync(__dirname + '/pitr-cleanup.sh', 'utf8');
/** Runs inside the unpacking container (not on the host): see the file. */
const UNPACK_SCRIPT = fs.readFileSync(__dirname + '/pitr-unpack.sh', 'utf8');

/** What backup_label says about where a base backup starts. */
export interface BackupLabel {
  /** The WAL file holding the backup's start (its checkpoint's redo point). */
  startSegment: string;
  /** When pg_basebackup started it (the checkpoint's time, seconds precision). */
  startTime: Date;
  label?: string;
}

/** A time as PostgreSQL prints it (`2026-12-04 18:56:01.123456+00`, `... UTC`, `... GMT`, `... +05:30`), or undefined. */
export function parsePgTime(text: string): Date | undefined {
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?\s*(UTC|GMT|Z|[+-]\d\d(?::?\d\d)?)$/.exec(text.trim());
  if (!m) return undefined;
  const frac = m[3] ? m[3].slice(0, 4).padEnd(4, '0') : '';
  const zone = /^[+-]/.test(m[4]) ? (m[4].length === 3 ? `${m[4]}:00` : m[4].replace(/^([+-]\d\d)(\d\d)$/, '$1:$2')) : 'Z';
  const t = new Date(`${m[1]}T${m[2]}${frac}${zone}`);
  return Number.isNaN(t.getTime()) ? undefined : t;
}

/**
 * A time as recovery_target_time takes it: a numeric offset, since zone abbreviations (`Z`, `UTC`)
 * are not loaded yet when the server checks its command line.
 */
export function pgTimeOf(t: Date): string {
  return t.toISOString().replace('T', ' ').replace('Z', '+00');
}

/** Reads a backup_label; throws a one-line Error naming what is missing. */
export function parseBackupLabel(text: string): BackupLabel {
  const segment = /^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$/m.exec(text)?.[1];
  const timeText = /^START TIME: (.+)$/m.exec(text)?.[1];
  if (!segment || !timeText) throw new Error('backup_label has no START WAL LOCATION or START TIME line');
  const startTime = parsePgTime(timeText);
  if (!startTime) throw new Error(`backup_label's START TIME "${timeText}" is not in UTC or a numeric offset (set the server's log_timezone to UTC)`);
  return { startSegment: segment, startTime, label: /^LABEL: (.*)$/m.exec(text)?.[1] };
}

/** The archive files a recovery from `startSegment` needs: later segments of its timeline or later ones, every history file, and the newest .partial. */
export function walFilesFor(names: readonly string[], startSegment: string): { files: string[]; partial?: string } {
  const timeline = startSegment.slice(0, 8);
  const position = startSegment.slice(8);
  const needed = (n: string) => n.slice(0, 8) >= timeline && n.slice(8) >= position;
  const files = names.filter((n) => /^[0-9A-F]{8}\.history$/.test(n) || (/^[0-9A-F]{24}$/.test(n) && needed(n))).sort();
  const partials = names.filter((n) => /^[0-9A-F]{24}\.partial$/.test(n) && needed(n.slice(0, 24))).sort();
  return { files, partial: partials.at(-1) };
}

/** What the recovery's log says: where it stopped and the last transaction it replayed. */
export interface RecoveryLog {
  /** `recovery stopping before commit of transaction N, time T`: the first transaction left out. */
  stoppedBefore?: { xid: string; time: Date };
  /** `last completed transaction was at log time T`. */
  lastCompleted?: Date;
  /** The archive ended before a commit at or after the target was seen (PostgreSQL stops with FATAL). */
  targetNotReached: boolean;
}

/** Reads the scratch server's log (lc_messages=C, timezone UTC: the scratch server is started so). */
export function parseRecoveryLog(text: string): RecoveryLog {
  const stop = /recovery stopping before commit of transaction (\d+), time (.+)$/m.exec(text);
  const last = /last completed transaction was at log time (.+)$/m.exec(text);
  const stopTime = stop ? parsePgTime(stop[2]) : undefined;
  return {
    stoppedBefore: stop && stopTime ? { xid: stop[1], time: stopTime } : undefined,
    lastCompleted: last ? parsePgTime(last[1]) : undefined,
    targetNotReached: /recovery ended before configured recovery target was reached/.test(text),
  };
}

/** What the unpacking and the scratch server are started from. */
export interface ScratchSpec {
  /** Prod's db image (its id). */
  image: string;
  /** The scratch directory on the host (new, private). */
  dir: string;
  /** Labels marking the scratch container as twinstack's. */
  labels: Record<string, string>;
}

/**
 * `docker run --rm` as root, without network, of prod's db image: the base backup (read-only), the
 * archive (read-only) and the scratch directory mounted; pitr-unpack.sh is its program.
 */
export function unpackScratch(s: ScratchSpec & { name: string; base: string; wal: string; files: readonly string[]; partial?: string }): string {
  return argv(
    'docker',
    'run',
    '--rm',
    '--name',
    s.name,
    '--network',
    'none',
    '--user',
    '0:0',
    labelWords(s.labels),
    '-v',
    `${s.base}:/base:ro`,
    '-v',
    `${s.wal}:/wal:ro`,
    '-v',
    `${s.dir}:${SCRATCH_MOUNT}`,
    '--entrypoint',
    'sh',
    s.image,
    '-c',
    UNPACK_SCRIPT,
    'pitr-unpack',
    s.partial ?? '',
    s.files,
  );
}

function labelWords(labels: Record<string, string>): string[] {
  return Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
}

/**
 * The server settings of a scratch recovery, as `postgres -c` words. Those from prod's own
 * configuration (in the base backup) stay, except what must differ for a copy with no network
 * that replays from its own archive copy and must never reach prod or its archive.
 */
export function recoverySettings(target: Date | 'latest'): string[] {
  return [
    `restore_command=cp ${SCRATCH_MOUNT}/archive/%f %p`,
    ...(target === 'latest' ? [] : [`recovery_target_time=${pgTimeOf(target)}`, 'recovery_target_inclusive=off']),
    'recovery_target_timeline=latest',
    'recovery_target_action=promote',
    // Nothing to serve while it replays: connections wait for the promotion.
    'hot_standby=off',
    'archive_mode=off',
    'synchronous_standby_names=',
    'primary_conninfo=',
    'listen_addresses=',
    'port=5432',
    `unix_socket_directories=${SCRATCH_MOUNT}`,
    `hba_file=${SCRATCH_MOUNT}/hba.conf`,
    'ssl=off',
    // Its log is read: in English, times in UTC, on standard error (docker logs).
    'logging_collector=off',
    'log_destination=stderr',
    'lc_messages=C',
    'timezone=UTC',
    'log_timezone=UTC',
    // A second server beside prod on the same host: not prod's memory.
    'shared_buffers=128MB',
  ];
}

/**
 * `docker run -d` of the scratch server: prod's db image as its postgres user, no network, no
 * published port. Under Docker's init: PostgreSQL as the first process would reap what a killed
 * `docker exec` leaves behind, and crash-restart when one of those exits with code 2.
 */
export function runScratchServer(s: ScratchSpec & { name: string; settings: readonly string[] }): string {
  return argv(
    'docker',
    'run',
    '-d',
    '--init',
    '--name',
    s.name,
    '--network',
    'none',
    '--user',
    'postgres',
    labelWords(s.labels),
    '-v',
    `${s.dir}:${SCRATCH_MOUNT}`,
    '--entrypoint',
    'postgres',
    s.image,
    '-D',
    `${SCRATCH_MOUNT}/data`,
    s.settings.flatMap((x) => ['-c', x]),
  );
}

/** A client tool run inside the scratch server's container, on its socket, as `user` (trusted there). */
export function scratchTool(name: string, user: string, tool: string, args: readonly Arg[]): string {
  // Standard input passes through (psql scripts); no TWINSTACK_OP bookkeeping: the container is thrown away.
  return `docker exec -i ${quote(name)} ${argv(tool, '-h', SCRATCH_MOUNT, '-p', '5432', '-U', user, args)}`;
}
