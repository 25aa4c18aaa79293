/**
 * backup's `wal` input: `ensure` sets up (or checks) prod's continuous WAL archiving, `off` stops it
 * and drops its slot (src/domain/wal.ts). Read and checked in prepare, run under prod's lock after
 * the dump: a WAL step that fails never undoes a verified backup.
 */
import type { ActionIO } from '../../infra/actions-io';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import type { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import type { Config, EnvironmentName } from '../../domain/config';
import type { EnvContext } from '../../domain/environment';
import { ensureWal, stopWal, walDir, type WalEnsured, type WalStopped } from '../../domain/wal';

/** The inputs this step reads (in actions/backup/action.yml). */
export interface WalInputs {
  wal: string;
  'wal-password': string;
}

export type WalPlan = { mode: 'ensure'; password: string } | { mode: 'off' };

export type WalOutcome = { mode: 'ensure'; done: WalEnsured } | { mode: 'off'; done: WalStopped } | { mode: 'ensure' | 'off'; error: string };

/** Reads `wal` and `wal-password` (masked at once) and checks them against the config. */
export function walInput<I extends WalInputs, O>(io: ActionIO<I, O>, config: Config, environment: EnvironmentName): WalPlan | undefined {
  const mode = io.input('wal');
  const password = io.secret('wal-password');
  if (!mode) {
    if (password) throw new ConfigurationError('input wal-password is given but input wal is not: set wal: ensure, or drop wal-password');
    return undefined;
  }
  if (mode !== 'ensure' && mode !== 'off') throw new ConfigurationError(`input wal "${validate.printable(mode)}" must be ensure or off`);
  if (environment !== 'prod') throw new ConfigurationError(`input wal archives prod's WAL only: run it with environment: prod (it is ${environment})`);
  if (mode === 'off') return { mode };
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
