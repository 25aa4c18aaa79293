/**
 * backup's `wal` input: `ensure` sets up (or checks) prod's continuous WAL archiving, `off` stops it
 * and drops its slot (src/domain/wal.ts). Read and checked in prepare, run under prod's lock after
 * the dump: a WAL step that fails never undoes a verified backup. With `ensure`, a base backup of
 * prod follows once the receiver streams: a scheduled backup run is the base backups' schedule.
 */
import type { ActionIO } from '../../infra/actions-io';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import type { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import type { Config, EnvironmentName } from '../../domain/config';
import type { EnvContext } from '../../domain/environment';
import type { RecordFields } from '../../domain/host-log';
import type { OffsiteKeys } from '../../domain/offsite';
import { walCopiesSummary } from '../common';
import { walCopiesFailure, type WalCopies, type WalPushLock } from '../../domain/wal-offsite';
import { copyWalOffsite } from '../../domain/wal-offsite-retention';
import { pruneBaseBackups, type BaseRetention } from '../../domain/wal-retention';
import { baseBackup, ensureWal, stopWal, walDir, type BaseBackup, type WalEnsured, type WalStopped } from '../../domain/wal';

/** The inputs this step reads (in actions/backup/action.yml). */
export interface WalInputs {
  wal: string;
  'wal-password': string;
}

export type WalPlan = { mode: 'ensure'; password: string } | { mode: 'off' };

/** `wal: push`: only the completed WAL segments not yet off the host (src/actions/backup/wal-push.ts). */
export type WalInput = WalPlan | { mode: 'push' };

export type WalOutcome = { mode: 'ensure'; done: WalEnsured } | { mode: 'off'; done: WalStopped } | { mode: 'ensure' | 'off'; error: string };

/** Reads `wal` and `wal-password` (masked at once) and checks them against the config. */
export function walInput<I extends WalInputs, O>(io: ActionIO<I, O>, config: Config, environment: EnvironmentName): WalInput | undefined {
  const mode = io.input('wal');
  const password = io.secret('wal-password');
  if (!mode) {
    if (password) throw new ConfigurationError('input wal-password is given but input wal is not: set wal: ensure, or drop wal-password');
    return undefined;
  }
  if (mode !== 'ensure' && mode !== 'off' && mode !== 'push')
    throw new ConfigurationError(`input wal "${validate.printable(mode)}" must be ensure, off or push`);
  if (environment !== 'prod') throw new ConfigurationError(`input wal archives prod's WAL only: run it with environment: prod (it is ${environment})`);
  if (mode === 'off') return { mode };
  if (mode === 'push') return checkPush(config);
  if (!config.backup.wal.enabled) {
    throw new ConfigurationError('input wal is ensure but backup.wal.enabled is false in the config: set it to true (README, Continuous WAL archiving)');
  }
  if (!password)
    throw new ConfigurationError(
      `input wal-password is required with wal: ensure: pass the password of the replication role ${config.backup.wal.role} from a secret`,
    );
  if (/[\r\n\0]/.test(password)) throw new ConfigurationError('input wal-password must be one line');
  return { mode, password };
}

/** `wal: push` needs WAL archiving and a backup host; it takes no password (it never logs in to the database). */
function checkPush(config: Config): WalInput {
  if (!config.backup.wal.enabled) {
    throw new ConfigurationError('input wal is push but backup.wal.enabled is false in the config: set it to true (README, Continuous WAL archiving)');
  }
  if (!config.backup.offsite) {
    throw new ConfigurationError('input wal is push but the config has no backup.offsite: add that section (README, Off-host copies), or drop wal: push');
  }
  return { mode: 'push' };
}

/** The WAL step: its outcome, never thrown (the caller records it and fails the step after the summary). */
export async function runWalStep(c: EnvContext, plan: WalPlan): Promise<WalOutcome> {
  try {
    if (plan.mode === 'ensure') return { mode: 'ensure', done: await ensureWal(c, plan.password) };
    return { mode: 'off', done: await stopWal(c) };
  } catch (e) {
    return { mode: plan.mode, error: errorMessage(e) };
  }
}

/** The host-log record of the step. */
export function walRecord(w: WalOutcome): { mode: 'ensure' | 'off'; status: 'done' | 'failed'; receiver?: string; slot?: string; error?: string } {
  if ('error' in w) return { mode: w.mode, status: 'failed', error: w.error };
  if (w.mode === 'ensure') return { mode: w.mode, status: 'done', receiver: w.done.receiver, slot: w.done.slot };
  return { mode: w.mode, status: 'done', receiver: w.done.container, slot: w.done.slot };
}

/** The summary's lines for the step. */
export function walSummary(summary: Summary, config: Config, w: WalOutcome): void {
  if ('error' in w) {
    summary.text(`❌ **WAL archiving (${w.mode}) failed**: ${w.error}`);
    return;
  }
  if (w.mode === 'ensure') {
    const { receiver, container, slot } = w.done;
    summary.text(
      `✅ **WAL archiving of prod is on**: receiver ${container} ${receiver}, slot ${config.backup.wal.slot} ${slot}, streaming into \`${walDir(config)}\`.`,
    );
  } else {
    summary.text(
      `✅ **WAL archiving of prod is off**: receiver ${w.done.container}, slot ${config.backup.wal.slot} ${w.done.slot}; archived WAL stays in \`${walDir(config)}\`.`,
    );
  }
}

export type BaseOutcome = { done: BaseBackup; offsite?: WalCopies; retention?: BaseRetention; retentionError?: string } | { error: string };

/**
 * The base backup after `ensure`; with backup.offsite, it and the WAL not yet pushed go off the
 * host; then the retention of base backups and WAL on the host, which keeps what has not gone off
 * it (never thrown: recorded, then the step fails after the summary). A failed copy or retention
 * keeps the new base backup.
 */
export async function runBaseBackupStep(c: EnvContext, o: { password: string; offsite?: OffsiteKeys; lock?: WalPushLock }): Promise<BaseOutcome> {
  let done: BaseBackup;
  try {
    done = await baseBackup(c, o.password);
  } catch (e) {
    return { error: errorMessage(e) };
  }
  let offsite: WalCopies | undefined;
  if (o.offsite) {
    const send = { host: c.host, config: c.config, env: c.env, keys: o.offsite, log: c.log, lock: o.lock };
    offsite = await copyWalOffsite(send, done);
  }
  try {
    return { done, offsite, retention: await pruneBaseBackups(c) };
  } catch (e) {
    return { done, offsite, retentionError: errorMessage(e) };
  }
}

/** The first failed off-host copy of the base backup or the WAL, in one line; undefined when none failed. */
export function walCopyFailure(b: BaseOutcome | undefined): string | undefined {
  if (!b || 'error' in b || !b.offsite) return undefined;
  return walCopiesFailure(b.offsite, b.done.stamp);
}

/** The host-log record of the base backup. */
export function baseRecord(b: BaseOutcome): RecordFields<'base-backup'> {
  if ('error' in b) return { status: 'failed', error: b.error };
  const bytes = Object.values(b.done.files).reduce((a, n) => a + n, 0);
  const { retention: r } = b;
  return { status: 'done', stamp: b.done.stamp, bytes, seconds: b.done.seconds, pruned: r?.removed, walPruned: r?.walRemoved.length, error: b.retentionError };
}

/** The summary's line for the base backup. */
export function baseSummary(summary: Summary, b: BaseOutcome): void {
  if ('error' in b) {
    summary.text(`❌ **The base backup of prod failed**: ${b.error}. The dump above stays verified; run the backup again.`);
    return;
  }
  const files = Object.entries(b.done.files).map(([n, bytes]) => `${n} ${bytes} bytes`);
  summary.text(`✅ **Base backup \`${b.done.stamp}\`** of prod in \`${b.done.dir}\` (${files.join(', ')}), ${b.done.seconds} s; its WAL is in the archive.`);
  const r = b.retention;
  if (r)
    summary.text(
      `Retention (backup.wal.keep-base): ${r.kept.length} base backup(s) kept${r.start ? `, WAL from ${r.start} on` : ''}; removed ${r.removed.length} base backup(s) and ${r.walRemoved.length} WAL segment(s).`,
    );
  if (b.offsite) walCopiesSummary(summary, b.offsite);
  if (b.retentionError) summary.text(`❌ **The retention of base backups and WAL failed** (the new base backup is kept): ${b.retentionError}`);
}
