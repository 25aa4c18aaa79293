/**
 * Retention of the base backups and the WAL on the backup host, run by the runner with the admin key
 * once a new base backup's copy has arrived (the dumps' off-host retention is the model): the newest
 * `backup.offsite.keep` complete base backups stay there; older ones, and broken pushes older than
 * the newest complete one, are removed; then every sealed WAL segment older than the segment the
 * oldest kept base backup starts from (`walStart` in its upload.json, read on the VPS from its
 * backup_label before sealing) is removed, with the records of the pushes that sent them. Never
 * from the VPS: its key cannot delete there.
 *
 * What the VPS wrote in a record is not trusted to reach newer WAL: a segment is removed only if it
 * arrived no later than that base backup's record, by the backup host's own clock (wal-offsite-prune.sh).
 */
import * as fs from 'node:fs';
import type { OffsiteSettings } from '../config/backup';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { argv, hostScript } from '../infra/shell';
import { listOffsiteArchive, offsiteDir, type OffsiteArchive } from './offsite';
import { copyBaseOffsite, pushWalOffsite, type WalCopies, type WalOffsiteOptions, type WalPushLock } from './wal-offsite';
import { startFile } from './wal-retention';
import type { BaseBackup } from './wal';

const PRUNE_WAL = fs.readFileSync(__dirname + '/wal-offsite-prune.sh', 'utf8');

/** An off-host base backup, as the admin key reads it. */
export interface OffsiteBase {
  stamp: string;
  complete: boolean;
  /** The segment it starts from, when its record says. */
  walStart?: string;
}

/** The base backups of an off-host listing, newest first; complete when its upload record arrived. */
export function offsiteBaseList(archive: OffsiteArchive): OffsiteBase[] {
  return archive.bases
    .filter((b) => /^\d{8}T\d{6}Z$/.test(b.stamp))
    .map((b) => {
      const walStart = b.upload?.meta?.walStart;
      return { stamp: b.stamp, complete: b.upload !== undefined, walStart: walStart && /^[0-9A-F]{24}$/.test(walStart) ? walStart : undefined };
    })
    .sort((a, b) => (a.stamp < b.stamp ? 1 : a.stamp > b.stamp ? -1 : 0));
}

export interface OffsiteRetention {
  /** Base backups removed (their stamps). */
  removed: string[];
  /** Sealed segments and push records removed. */
  walRemoved: string[];
}

/** Keeps the newest `keep` complete base backups off the host and the WAL they need; removes the rest. */
export async function pruneWalOffsite(admin: Host, o: OffsiteSettings, env: string, log: Logger): Promise<OffsiteRetention> {
  const root = offsiteDir(o, env, 'base');
  const all = offsiteBaseList(await listOffsiteArchive(admin, o, env));
  const complete = all.filter((b) => b.complete);
  const kept = complete.slice(0, o.keep);
  const newest = complete[0]?.stamp;
  const removed = all.filter((b) => !kept.includes(b) && (b.complete || (newest !== undefined && b.stamp < newest))).map((b) => b.stamp);
  if (removed.length) {
    const dirs = removed.map((s) => `${root}/${s}`);
    await admin.run(argv('rm', '-rf', '--', dirs), { quiet: true, label: 'pruning old off-host base backups', timeoutSeconds: 600 });
  }
  const oldest = kept.at(-1);
  let walRemoved: string[] = [];
  if (oldest?.walStart) {
    const p = await admin.run(hostScript(PRUNE_WAL, { DIR: offsiteDir(o, env, 'wal'), START: oldest.walStart, REF: `${root}/${oldest.stamp}/upload.json` }), {
      quiet: true,
      label: 'pruning WAL older than the oldest kept off-host base backup',
      timeoutSeconds: 600,
    });
    walRemoved = p.stdout.split('\n').filter(Boolean);
  } else if (oldest) {
    log.info(`the off-host base backup ${oldest.stamp} does not say which WAL segment it starts from: no WAL is pruned off the host`);
  }
  log.info(
    `${env}: off the host, kept ${kept.length} base backup(s)${oldest?.walStart ? ` (WAL from ${oldest.walStart} on)` : ''}; removed ${removed.length} base backup(s) and ${walRemoved.length} WAL file(s)`,
  );
  return { removed, walRemoved };
}

/** A new base backup off the host (with the segment it starts from in its record), the off-host retention, then the WAL not yet there. */
export async function copyWalOffsite(c: WalOffsiteOptions & { lock?: WalPushLock }, base: BaseBackup): Promise<WalCopies> {
  const o = c.config.backup.offsite;
  if (!o) throw new Error('copyWalOffsite without backup.offsite');
  const walStart = await startFile(c.host, c.config, base.stamp).catch(ignored(c.log, `reading where base backup ${base.stamp} starts`));
  let retention: OffsiteRetention | undefined;
  const copy = await copyBaseOffsite(c, base, {
    meta: walStart ? { walStart } : undefined,
    afterArrival: async (admin) => {
      retention = await pruneWalOffsite(admin, o, c.env.name, c.log);
      return [...retention.removed.map((s) => `base/${s}`), ...retention.walRemoved.map((f) => `wal/${f}`)];
    },
  });
  return { base: copy, wal: await pushWalOffsite(c), retention };
}
