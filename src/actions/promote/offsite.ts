/**
 * 10. The backup this promotion took goes off the host (backup.offsite), once prod has settled on
 * the new release or back on the old one. It runs last so it never lengthens the write freeze or
 * the promotion itself; the verified backup is on the VPS for a rollback the whole time. A named
 * backup-id is not copied again: the backup action copied it when it took it. With backup.wal, the
 * base backup taken before the change and the WAL not yet pushed follow it.
 */
import { copyOffsite, type OffsiteCopy } from '../../domain/offsite';
import type { WalCopies } from '../../domain/wal-offsite';
import { copyWalOffsite } from '../../domain/wal-offsite-retention';
import type { Outcome } from './outcome';
import type { Promotion } from './promotion';

export async function copyBackupOffsite(p: Promotion, r: Outcome): Promise<OffsiteCopy | undefined> {
  const backup = r.backup;
  if (!p.plan.offsite || !backup || p.plan.backupId || backup.status !== 'verified') return undefined;
  const copy = await copyOffsite({ host: p.host, config: p.config, env: p.prod, manifest: backup, keys: p.plan.offsite, log: p.log });
  await p.op.record('offsite', { backup: backup.id, status: copy.status, location: copy.location, error: copy.status === 'failed' ? copy.error : undefined });
  return copy;
}

/** The base backup this promotion took, and the WAL segments not yet pushed, off the host. */
export async function copyBaseBackupOffsite(p: Promotion, r: Outcome): Promise<WalCopies | undefined> {
  if (!p.plan.offsite || !r.base) return undefined;
  const copies = await copyWalOffsite({ host: p.host, config: p.config, env: p.prod, keys: p.plan.offsite, log: p.log }, r.base);
  for (const [what, copy] of [[`base/${r.base.stamp}`, copies.base] as const, ['wal', copies.wal.copy] as const]) {
    if (copy)
      await p.op.record('offsite', { backup: what, status: copy.status, location: copy.location, error: copy.status === 'failed' ? copy.error : undefined });
  }
  return copies;
}
