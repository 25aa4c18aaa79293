/**
 * 10. The backup this promotion took goes off the host (backup.offsite), once prod has settled on
 * the new release or back on the old one. It runs last so it never lengthens the write freeze or
 * the promotion itself; the verified backup is on the VPS for a rollback the whole time. A named
 * backup-id is not copied again: the backup action copied it when it took it.
 */
import { copyOffsite, type OffsiteCopy } from '../../domain/offsite';
import type { Outcome } from './outcome';
import type { Promotion } from './promotion';

export async function copyBackupOffsite(p: Promotion, r: Outcome): Promise<OffsiteCopy | undefined> {
  const backup = r.backup;
  if (!p.plan.offsite || !backup || p.plan.backupId || backup.status !== 'verified') return undefined;
  const copy = await copyOffsite({ host: p.host, config: p.config, env: p.prod, manifest: backup, keys: p.plan.offsite, log: p.log });
  await p.op.record('offsite', { backup: backup.id, status: copy.status, location: copy.location, error: copy.status === 'failed' ? copy.error : undefined });
  return copy;
}
