/**
 * The WAL archive and the base backups off the host (backup.wal with backup.offsite), the same way
 * as the dumps (src/domain/offsite.ts: sealed with age on the VPS, pushed with the write-only key,
 * checked on arrival with the admin key):
 *
 *   - each new base backup's files into <path>/prod/base/<stamp>/, with its upload.json (which says
 *     in the clear where its WAL starts: the off-host retention, src/domain/wal-offsite-retention.ts);
 *   - the completed WAL segments not yet pushed into <path>/prod/wal/ (rsync --ignore-existing),
 *     each as <segment>.age, with an upload-<last segment>.json per push. The WAL directory keeps a
 *     marker of the last segment pushed (.offsite-pushed), written once a push has gone through;
 *     the retention on the host deletes no segment after it (src/domain/wal-retention.ts).
 *
 * A push runs after every base backup, and on its own from a schedule (the backup action's
 * `wal: push`, src/actions/backup/wal-push.ts), so the WAL leaves the host between base backups.
 * Pushes never meet: they take a lock of their own on the host (WAL_PUSH_LOCK). A `.partial` never
 * leaves. A push cut short after its files arrived, before the marker moved, leaves segments the
 * next push finds there with the admin key: counted as pushed, not sealed again (a new seal could
 * never match the file rrsync -no-overwrite keeps).
 */
import * as fs from 'node:fs';
import type { Environment } from './environment';
import { backupDir } from './backup';
import { connectWithAdminKey, offsiteDir, sendOffsite, type OffsiteCopy, type SendOptions } from './offsite';
import { baseBackupRoot, listArchive, walDir, type BaseBackup } from './wal';
import type { Config } from './config';
import type { Host } from '../infra/host';
import { argv, hostScript } from '../infra/shell';
import type { RunInfo } from '../infra/actions-io';
import { errorMessage } from '../infra/errors';
import { ignored } from '../infra/logger';
import { EnvironmentLock } from './lock';

const SEGMENT_TIME = fs.readFileSync(__dirname + '/wal-segment-time.sh', 'utf8');

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

/** One base backup's files, sealed and pushed to <path>/prod/base/<stamp>/; `extra` adds facts to its record and a step after arrival. */
export async function copyBaseOffsite(
  c: WalOffsiteOptions,
  base: BaseBackup,
  extra: Pick<SendOptions, 'afterArrival'> & { meta?: Record<string, string> } = {},
): Promise<OffsiteCopy> {
  const files = Object.keys(base.files)
    .sort()
    .map((name) => ({ name, path: `${base.dir}/${name}` }));
  return sendOffsite(
    { ...c, afterArrival: extra.afterArrival },
    { env: c.env.name, id: `base/${base.stamp}`, files, record: 'upload.json', stage: `${baseBackupRoot(c.config)}/.offsite-${base.stamp}`, meta: extra.meta },
  );
}

export interface WalPush {
  /** The segments this push sealed and sent (none: nothing new since the marker, or all already there). */
  segments: string[];
  /** Segments after the marker found on the backup host already (an earlier push cut short): not sent again. */
  present: string[];
  copy?: OffsiteCopy;
  /** The newest segment off the host (the marker once this push went through), and when it was completed. */
  newest?: OffsitePoint;
}

/** The off-host recovery point: the newest segment pushed, and the time the receiver completed it. */
export interface OffsitePoint {
  segment: string;
  /** The segment file's mtime on the VPS (ISO 8601); undefined when it is no longer there. */
  time?: string;
  /** Seconds from that time to now, by the VPS's clock. */
  ageSeconds?: number;
}

/** The one lock of WAL pushes (a directory beside prod's state): a scheduled push and a base backup's never meet. */
export const WAL_PUSH_LOCK = 'prod/wal-push';

export interface WalPushLock {
  run: RunInfo;
  waitSeconds: number;
}

/**
 * The completed segments not yet pushed, sealed and pushed to <path>/prod/wal/, under the WAL push
 * lock; the marker moves once they are there. Segments already on the backup host (read with the
 * admin key) are not sealed again: rrsync -no-overwrite would keep the old file, whose hash no new
 * seal can match.
 */
export async function pushWalOffsite(c: WalOffsiteOptions & { lock?: WalPushLock }): Promise<WalPush> {
  const { host, config, log } = c;
  const run = c.lock?.run ?? { url: 'unknown', actor: 'unknown', sha: '', workflow: '' };
  const lock = await EnvironmentLock.acquire({
    host,
    stateDir: config['state-dir'],
    env: WAL_PUSH_LOCK,
    holder: { run: run.url, actor: run.actor, sha: run.sha, action: 'wal-push', op: 'wal-push', since: new Date().toISOString() },
    waitSeconds: c.lock?.waitSeconds ?? 600,
    log,
  });
  try {
    return await pushUnlocked(c);
  } finally {
    await lock.release().catch(ignored(log, 'releasing the WAL push lock'));
  }
}

async function pushUnlocked(c: WalOffsiteOptions): Promise<WalPush> {
  const { host, config, log } = c;
  const dir = walDir(config);
  const marker = await pushedMarker(host, config);
  const segments = segmentsToPush(await listArchive(host, config), marker);
  if (!segments.length) {
    log.info('no completed WAL segment since the last push off the host: nothing sent');
    return { segments, present: [], newest: await offsitePoint(host, config, marker) };
  }
  const present = c.keys.admin ? await alreadyOffsite(c, segments) : [];
  if (present.length) log.info(`${present.length} segment(s) already on the backup host (a push cut short): not sent again`);
  const toSend = segments.filter((s) => !present.includes(s));
  let copy: OffsiteCopy | undefined;
  if (toSend.length) {
    const files = toSend.map((name) => ({ name, path: `${dir}/${name}` }));
    const record = `upload-${toSend[toSend.length - 1]}.json`;
    copy = await sendOffsite(c, { env: c.env.name, id: 'wal', files, record, stage: `${backupDir(config, c.env)}/.offsite-wal` });
  }
  // The marker moves once the segments are on the backup host (a failed check on arrival says so, but they were sent).
  const sent = !copy || copy.status === 'copied' || copy.stage === 'arrival';
  const last = segments[segments.length - 1];
  if (sent) await host.writeFile(`${dir}/${PUSHED_MARKER}`, `${last}\n`, 0o600);
  return { segments: toSend, present, copy, newest: await offsitePoint(host, config, sent ? last : marker) };
}

/** Which of `segments` are on the backup host already, as the admin key lists <path>/prod/wal/; none when it cannot tell. */
async function alreadyOffsite(c: WalOffsiteOptions, segments: string[]): Promise<string[]> {
  const o = c.config.backup.offsite;
  if (!o || !c.keys.admin) return [];
  let admin: Host;
  try {
    admin = await (c.connectBackupHost ?? connectWithAdminKey)(o, c.keys.admin, c.log);
  } catch (e) {
    // The push goes on; its check on arrival reports the login.
    c.log.warning(`could not list the WAL on the backup host with offsite-admin-key: ${errorMessage(e)}`);
    return [];
  }
  try {
    const where = offsiteDir(o, c.env.name, 'wal');
    const r = await admin.run(argv('find', where, '-maxdepth', '1', '-type', 'f', '-name', '*.age', '-printf', '%f\\n'), {
      check: false,
      quiet: true,
      label: `listing ${where} on the backup host`,
      timeoutSeconds: 120,
    });
    const there = new Set(r.exitCode === 0 ? r.stdout.split('\n') : []);
    return segments.filter((s) => there.has(`${s}.age`));
  } finally {
    await admin.close().catch(ignored(c.log, 'closing the connection to the backup host'));
  }
}

/** The recovery point off the host: `segment`'s completion time, read on the VPS. */
export async function offsitePoint(host: Host, config: Config, segment: string | undefined): Promise<OffsitePoint | undefined> {
  if (!segment) return undefined;
  const r = await host.run(hostScript(SEGMENT_TIME, { FILE: `${walDir(config)}/${segment}` }), { check: false, quiet: true, timeoutSeconds: 60 });
  const [now, mtime] = r.stdout.trim().split(/\s+/).map(Number);
  if (r.exitCode !== 0 || !Number.isFinite(now) || !Number.isFinite(mtime) || !mtime) return { segment };
  return { segment, time: new Date(mtime * 1000).toISOString(), ageSeconds: Math.max(0, Math.round(now - mtime)) };
}

/** The base backup's and the new WAL's off-host copies. */
export interface WalCopies {
  base: OffsiteCopy;
  wal: WalPush;
  /** The off-host retention after the base backup arrived (undefined when it did not run). */
  retention?: { removed: string[]; walRemoved: string[] };
}

/** The first failed copy, in one line; undefined when none failed. */
export function walCopiesFailure(w: WalCopies, stamp: string): string | undefined {
  if (w.base.status === 'failed') return `the off-host copy of base backup ${stamp} failed: ${w.base.error}`;
  if (w.wal.copy?.status === 'failed') return `the off-host copy of ${w.wal.segments.length} WAL segment(s) failed: ${w.wal.copy.error}`;
  return undefined;
}
