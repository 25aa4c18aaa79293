/**
 * The WAL archive and the base backups off the host (backup.wal with backup.offsite), the same way
 * as the dumps (src/domain/offsite.ts: sealed with age on the VPS, pushed with the write-only key,
 * checked on arrival with the admin key):
 *
 *   - each new base backup's files into <path>/prod/base/<stamp>/, with its upload.json;
 *   - the completed WAL segments not yet pushed into <path>/prod/wal/ (rsync --ignore-existing),
 *     each as <segment>.age, with an upload-<last segment>.json per push. The WAL directory keeps a
 *     marker of the last segment pushed (.offsite-pushed), written once a push has gone through;
 *     the retention on the host deletes no segment after it (src/domain/wal-retention.ts).
 */
import type { Environment } from './environment';
import { backupDir } from './backup';
import { sendOffsite, type OffsiteCopy, type SendOptions } from './offsite';
import { baseBackupRoot, listArchive, walDir, type BaseBackup } from './wal';
import type { Config } from './config';
import type { Host } from '../infra/host';
import { argv } from '../infra/shell';

/** The file in the WAL directory naming the last segment pushed off the host. */
export const PUSHED_MARKER = '.offsite-pushed';

const SEGMENT = /^[0-9A-F]{24}$/;

/** Segments in archive order: log and segment number first (the last 16 digits), then the timeline. */
export function bySegment(a: string, b: string): number {
  const [x, y] = [a.slice(8), b.slice(8)];
  return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

/** The completed segments after the marker (all of them with none), in archive order. */
export function segmentsToPush(names: string[], marker: string | undefined): string[] {
  return names
    .filter((n) => SEGMENT.test(n))
    .filter((n) => marker === undefined || bySegment(n, marker) > 0)
    .sort(bySegment);
}

/** The last segment pushed off the host, as the marker says; undefined when none was. */
export async function pushedMarker(host: Host, config: Config): Promise<string | undefined> {
  const r = await host.run(argv('cat', '--', `${walDir(config)}/${PUSHED_MARKER}`), { check: false, quiet: true, timeoutSeconds: 60 });
  const name = r.exitCode === 0 ? r.stdout.trim() : '';
  return SEGMENT.test(name) ? name : undefined;
}

export type WalOffsiteOptions = Omit<SendOptions, 'afterArrival'> & { env: Environment };

/** One base backup's files, sealed and pushed to <path>/prod/base/<stamp>/. */
export async function copyBaseOffsite(c: WalOffsiteOptions, base: BaseBackup): Promise<OffsiteCopy> {
  const files = Object.keys(base.files)
    .sort()
    .map((name) => ({ name, path: `${base.dir}/${name}` }));
  return sendOffsite(c, {
    env: c.env.name,
    id: `base/${base.stamp}`,
    files,
    record: 'upload.json',
    stage: `${baseBackupRoot(c.config)}/.offsite-${base.stamp}`,
  });
}

export interface WalPush {
  /** The segments this push sent (none: nothing new since the marker). */
  segments: string[];
  copy?: OffsiteCopy;
}

/** The completed segments not yet pushed, sealed and pushed to <path>/prod/wal/; the marker moves once they are there. */
export async function pushWalOffsite(c: WalOffsiteOptions): Promise<WalPush> {
  const { host, config, log } = c;
  const dir = walDir(config);
  const segments = segmentsToPush(await listArchive(host, config), await pushedMarker(host, config));
  if (!segments.length) {
    log.info('no completed WAL segment since the last push off the host');
    return { segments };
  }
  const last = segments[segments.length - 1];
  const files = segments.map((name) => ({ name, path: `${dir}/${name}` }));
  const copy = await sendOffsite(c, { env: c.env.name, id: 'wal', files, record: `upload-${last}.json`, stage: `${backupDir(config, c.env)}/.offsite-wal` });
  // The marker moves once the segments are on the backup host (a failed check on arrival says so, but they were sent).
  const sent = copy.status === 'copied' || copy.stage === 'arrival';
  if (sent) await host.writeFile(`${dir}/${PUSHED_MARKER}`, `${last}\n`, 0o600);
  return { segments, copy };
}

/** The base backup's and the new WAL's off-host copies. */
export interface WalCopies {
  base: OffsiteCopy;
  wal: WalPush;
}

/** A new base backup off the host, then the WAL segments not yet there. */
export async function copyWalOffsite(c: WalOffsiteOptions, base: BaseBackup): Promise<WalCopies> {
  return { base: await copyBaseOffsite(c, base), wal: await pushWalOffsite(c) };
}

/** The first failed copy, in one line; undefined when none failed. */
export function walCopiesFailure(w: WalCopies, stamp: string): string | undefined {
  if (w.base.status === 'failed') return `the off-host copy of base backup ${stamp} failed: ${w.base.error}`;
  if (w.wal.copy?.status === 'failed') return `the off-host copy of ${w.wal.segments.length} WAL segment(s) failed: ${w.wal.copy.error}`;
  return undefined;
}
