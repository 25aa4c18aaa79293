/**
 * Retention of base backups and the WAL archive on the host (backup.wal.keep-base): the newest
 * `keep-base` complete base backups stay; older ones, and broken ones older than the newest complete
 * one, are removed; then every WAL segment older than the segment the oldest kept base backup starts
 * from is deleted (wal-prune.sh), so the archive holds exactly what the kept base backups need and
 * never grows without end. With no complete base backup, no segment is deleted; with backup.offsite,
 * no segment that has not gone off the host yet.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import type { EnvContext } from './environment';
import { OperationFailed, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { parseHostJson } from '../infra/json';
import { argv, hostScript } from '../infra/shell';
import type { Config } from './config';
import { baseBackupRoot, walDir } from './wal';
import { bySegment, pushedMarker } from './wal-offsite';

const WAL_PRUNE = fs.readFileSync(__dirname + '/wal-prune.sh', 'utf8');

/** The default wal_segment_size (16 MiB). */
export const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;

/**
 * The WAL file holding an LSN (`X/Y`, as PostgreSQL prints it) on a timeline: what
 * pg_walfile_name gives, except that an LSN on a segment's first byte names that segment
 * (a backup starts there).
 */
export function walFileName(lsn: string, timeline: number, segmentBytes = DEFAULT_SEGMENT_BYTES): string {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new OperationFailed(`"${lsn}" is not an LSN`);
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffffffff) throw new OperationFailed(`${timeline} is not a timeline`);
  if (!Number.isInteger(segmentBytes) || segmentBytes < 1 << 20 || (segmentBytes & (segmentBytes - 1)) !== 0)
    throw new OperationFailed(`${segmentBytes} is not a WAL segment size (a power of two, 1 MiB or more)`);
  const position = (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
  const segment = position / BigInt(segmentBytes);
  const perLog = 0x100000000n / BigInt(segmentBytes);
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segment / perLog)}${hex(segment % perLog)}`;
}

/** The WAL file after `name` on the same timeline (with `segmentBytes` segments: 256 a log file at 16 MiB). */
export function nextSegment(name: string, segmentBytes = DEFAULT_SEGMENT_BYTES): string {
  const tli = name.slice(0, 8);
  const log = parseInt(name.slice(8, 16), 16);
  const seg = parseInt(name.slice(16), 16);
  const perLog = 0x100000000 / segmentBytes;
  const [l, s] = seg >= perLog - 1 ? [log + 1, 0] : [log, seg + 1];
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${tli}${hex(l)}${hex(s)}`;
}

/** The start WAL file named in a backup_label ("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)"). */
export function labelStartFile(label: string): string | undefined {
  return /^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$/m.exec(label)?.[1];
}

const manifestSchema = z.object({
  'WAL-Ranges': z.array(z.object({ Timeline: z.number().int(), 'Start-LSN': z.string() })).min(1),
});

/** The start WAL file of a backup_manifest: its first WAL range's Start-LSN on that range's timeline. */
export function manifestStartFile(text: string, segmentBytes = DEFAULT_SEGMENT_BYTES): string {
  const ranges = parseHostJson(manifestSchema, text, 'backup_manifest')['WAL-Ranges'];
  // The ranges run from the backup's start; the first one is on the timeline it started on.
  return walFileName(ranges[0]['Start-LSN'], ranges[0].Timeline, segmentBytes);
}

export interface BaseEntry {
  stamp: string;
  /** backup_manifest is there: pg_basebackup writes it last, so the backup finished. */
  complete: boolean;
}

/** The base backups under the root, newest first (find -printf '%d %y %P' lines). */
export function parseBaseListing(text: string): BaseEntry[] {
  const stamps = new Set<string>();
  const complete = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^([12]) ([dfl]) (\d{8}T\d{6}Z)(?:\/(.+))?$/.exec(line);
    if (!m) continue;
    if (m[1] === '1' && m[2] === 'd') stamps.add(m[3]);
    if (m[1] === '2' && m[2] === 'f' && m[4] === 'backup_manifest') complete.add(m[3]);
  }
  return [...stamps].sort((a, b) => (a < b ? 1 : a > b ? -1 : 0)).map((stamp) => ({ stamp, complete: complete.has(stamp) }));
}

/** What the retention keeps and removes, given the base backups newest first. */
export function planBaseRetention(all: BaseEntry[], keep: number): { kept: string[]; removed: string[] } {
  const complete = all.filter((e) => e.complete);
  const kept = complete.slice(0, keep).map((e) => e.stamp);
  const newest = complete[0]?.stamp;
  const removed = all.filter((e) => !kept.includes(e.stamp) && (e.complete || (newest !== undefined && e.stamp < newest))).map((e) => e.stamp);
  return { kept, removed };
}

export interface BaseRetention {
  /** Base backups kept, newest first. */
  kept: string[];
  removed: string[];
  /** The segment the oldest kept base backup starts from; nothing older stays. */
  start?: string;
  walRemoved: string[];
}

async function listBaseBackups(host: Host, config: Config): Promise<BaseEntry[]> {
  const root = baseBackupRoot(config);
  const r = await host.run(argv('find', root, '-mindepth', '1', '-maxdepth', '2', '-printf', '%d %y %P\\n'), {
    check: false,
    quiet: true,
    label: 'listing the base backups',
    timeoutSeconds: 60,
  });
  if (r.exitCode !== 0) {
    if (/No such file or directory/.test(r.stderr)) return [];
    throw new OperationFailed(`listing ${root} failed: ${tailLines(r.stderr, 2)}`);
  }
  return parseBaseListing(r.stdout);
}

/** The segment a base backup starts from: its backup_label (first in base.tar), else its backup_manifest. */
export async function startFile(host: Host, config: Config, stamp: string): Promise<string> {
  const dir = `${baseBackupRoot(config)}/${stamp}`;
  // --occurrence stops reading at the first backup_label, which pg_basebackup writes first.
  const label = await host.run(argv('tar', '--occurrence=1', '-xOf', `${dir}/base.tar`, 'backup_label'), { check: false, quiet: true, timeoutSeconds: 600 });
  const fromLabel = label.exitCode === 0 ? labelStartFile(label.stdout) : undefined;
  if (fromLabel) return fromLabel;
  const manifest = await host.run(argv('cat', '--', `${dir}/backup_manifest`), { quiet: true, timeoutSeconds: 60 });
  // Every segment of a cluster has its wal_segment_size: an archived one says which.
  const size = await host.run(
    argv('find', walDir(config), '-maxdepth', '1', '-type', 'f', '-regextype', 'posix-extended', '-regex', '.*/[0-9A-F]{24}', '-printf', '%s\\n', '-quit'),
    { check: false, quiet: true, timeoutSeconds: 60 },
  );
  const bytes = Number(size.stdout.trim());
  return manifestStartFile(manifest.stdout, bytes > 0 ? bytes : DEFAULT_SEGMENT_BYTES);
}

/** Keeps the newest backup.wal.keep-base base backups and the WAL they need; removes the rest. */
export async function pruneBaseBackups(c: EnvContext): Promise<BaseRetention> {
  const { host, config, log } = c;
  const { kept, removed } = planBaseRetention(await listBaseBackups(host, config), config.backup.wal['keep-base']);
  if (removed.length) {
    await host.run(
      argv(
        'rm',
        '-rf',
        '--',
        removed.map((s) => `${baseBackupRoot(config)}/${s}`),
      ),
      { quiet: true, label: 'removing old base backups', timeoutSeconds: 600 },
    );
  }
  const oldest = kept.at(-1);
  if (!oldest) return { kept, removed, walRemoved: [] };
  let start = await startFile(host, config, oldest);
  if (config.backup.offsite) {
    // With off-host copies, a segment that has not gone off the host yet stays.
    const pushed = await pushedMarker(host, config);
    if (!pushed) {
      log.info('no WAL segment has gone off the host yet: none is deleted');
      return { kept, removed, walRemoved: [] };
    }
    if (bySegment(pushed, start) < 0) start = pushed;
  }
  const r = await host.run(hostScript(WAL_PRUNE, { DIR: walDir(config), START: start }), {
    quiet: true,
    label: 'removing WAL segments older than the oldest kept base backup',
    timeoutSeconds: 600,
  });
  const walRemoved = r.stdout.split('\n').filter((l) => /^[0-9A-F]{24}$/.test(l));
  log.info(
    `prod: keeping ${kept.length} base backup(s) (oldest ${oldest}, from WAL ${start}); removed ${removed.length} base backup(s) and ${walRemoved.length} WAL segment(s)`,
  );
  return { kept, removed, start, walRemoved };
}
