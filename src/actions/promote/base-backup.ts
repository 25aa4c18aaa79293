/**
 * 4b. With backup.wal.enabled, a base backup of prod after the dump and before anything ships: a
 * point-in-time restore can start from prod as it was just before the change. One that fails
 * refuses the promotion: nothing on prod has changed yet.
 */
import { errorMessage } from '../../infra/errors';
import { baseBackup } from '../../domain/wal';
import type { BackedUp, Promotion, Refusal } from './promotion';

export async function baseBackUpProd(p: Promotion, b: BackedUp): Promise<BackedUp | Refusal> {
  const password = p.plan.walPassword;
  if (!p.config.backup.wal.enabled || password === undefined) return b;
  try {
    const base = await baseBackup({ host: p.host, config: p.config, env: p.prod, log: p.log }, password);
    const bytes = Object.values(base.files).reduce((a, n) => a + n, 0);
    await p.op.record('base-backup', { status: 'done', stamp: base.stamp, bytes, seconds: base.seconds });
    return { ...b, base };
  } catch (e) {
    await p.op.record('base-backup', { status: 'failed', error: errorMessage(e) });
    return { refused: 'base-backup', message: `the base backup of prod (backup.wal) failed: ${errorMessage(e)}` };
  }
}
