/**
 * promote ("flip the switch"): put on prod exactly what passed the gate on dev.
 *
 *   1. the commit (input sha, or dev's release) and its passing gate, read under dev's lock   nothing changed yet
 *   2. it is on the configured branch; the dispatcher is not its pusher (when asked)          nothing changed yet
 *   3. a scratch checkout of the commit; which images ship as gated and which are rebuilt    nothing changed yet
 *   4. a verified backup of prod (its write counters kept), the schema's fingerprint          nothing changed yet
 *      and with backup.wal a base backup; one that fails refuses                              nothing changed yet
 *   5. the gated images tagged under prod's names, the differing ones rebuilt                 old containers still serve
 *   6. the rehearsal: the migration on a full copy of prod; a failure refuses                 prod untouched
 *   ── point of no return ──
 *   7. the real migration in a one-off container of the new image, lock_timeout set, while the old containers serve
 *   8. the swap: checkout, up --no-build; health; prod runs exactly the shipped image ids
 *   9. on any failure in 7–8: the previous release's images again; the database restored only when
 *      its schema moved, after counting the rows that restore loses
 *
 * On a swarm prod (target: swarm, swarm.ts) the release is a set of digests: 5 ships dev's gated
 * digests and builds and pushes the differing services; 7 and the rehearsal run the new api digest;
 * 8 is a stack deploy the engine rolls out (or rolls back by itself, which is a failure of health).
 *
 * Prod ends on the new release or back on the old one; the outcome says which. runPromotion below
 * is that runbook; its steps live in gated.ts (1–2), prepare.ts (3–6), forward.ts (7–8),
 * recover.ts (9), base-backup.ts (4, backup.wal) and summary.ts.
 */
import { short } from '../../infra/sha';
import type { PromoteInputs, PromoteOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import { backupDir } from '../../domain/backup';
import type { Config } from '../../domain/config';
import { Environment } from '../../domain/environment';
import type { OffsiteCopy } from '../../domain/offsite';
import { walCopiesFailure, type WalCopies } from '../../domain/wal-offsite';
import { underLock } from '../../domain/operation';
import type { ActionIO } from '../../infra/actions-io';
import { ConfigurationError, OperationFailed } from '../../infra/errors';
import type { Logger } from '../../infra/logger';
import { offsiteKeysInput, offsiteSummary, walCopiesSummary } from '../common';
import * as validate from '../../infra/validate';
import { checkHealth, ForwardFailed, migrateInPlace, migrateProd, recordPromotion, swapProd } from './forward';
import { checkTwoPersonRule, gatedRelease, type GatedRelease } from './gated';
import { failureOf, type Outcome } from './outcome';
import {
  backUpProd,
  checkOnBranch,
  openPromotion,
  placeCommit,
  refusePromotion,
  rehearseMigrations,
  reserveRollbackTime,
  shipToProd,
  stageRelease,
  unchangedOutcome,
  withScratchCheckouts,
  withWriteFreeze,
} from './prepare';
import { baseBackUpProd } from './base-backup';
import { copyBackupOffsite, copyBaseBackupOffsite } from './offsite';
import { isRefusal, type Plan, type Promotion } from './promotion';
import { rollBackPromotion } from './recover';
import { promoteSummary } from './summary';
import { refuseSwarmWriteFreeze, requireGatedDigests } from './swarm';

export { gatedRelease, type GatedRelease } from './gated';
export type { Outcome, Stage } from './outcome';
export { promoteSummary } from './summary';

/**
 * wal-password (masked at once): required when backup.wal is enabled, for the base backup before the
 * change; refused in one line before the host is touched when it is missing. Ignored otherwise, so a
 * workflow may pass the secret whether or not the config archives WAL.
 */
function walPasswordInput(io: ActionIO<PromoteInputs, PromoteOutputs>, config: Config): string | undefined {
  const password = io.secret('wal-password');
  if (!config.backup.wal.enabled) return undefined;
  if (!password)
    throw new ConfigurationError(
      `input wal-password is required: backup.wal is enabled, so promote takes a base backup of prod first; pass the password of the replication role ${config.backup.wal.role} from a secret (TWINSTACK_WAL_PASSWORD)`,
    );
  if (/[\r\n\0]/.test(password)) throw new ConfigurationError('input wal-password must be one line');
  return password;
}

export const promoteAction: ActionDefinition<PromoteInputs, PromoteOutputs, Plan> = {
  name: 'promote',
  prepare({ io, config }) {
    refuseSwarmWriteFreeze(config);
    const backupId = io.input('backup-id') ? validate.backupId(io.input('backup-id'), 'input backup-id') : undefined;
    const sha = io.input('sha') ? validate.sha(io.input('sha'), 'input sha') : undefined;
    return {
      sha,
      requireGate: validate.boolean(io.defaulted('require-gate'), 'input require-gate'),
      backupId,
      backupMaxAgeMinutes: validate.positiveInt(io.defaulted('backup-max-age-minutes'), 'input backup-max-age-minutes', 10080),
      offsite: offsiteKeysInput(io, config),
      walPassword: walPasswordInput(io, config),
    };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const prod = new Environment('prod', config);
    const dev = new Environment('dev', config);
    io.output('url', prod.cfg.url);
    // 1. The commit and what passed the gate for it, read under dev's lock.
    const gated = await gatedRelease({
      host,
      stateDir: config['state-dir'],
      dev,
      wanted: plan.sha,
      requireGate: plan.requireGate,
      run,
      log,
      lockTimeoutSeconds,
    });
    // 2. The two-person rule, before the host is touched at all.
    checkTwoPersonRule(config, gated, run);
    // A swarm prod ships dev's digests: a dev release without them is refused here.
    requireGatedDigests(prod, gated);
    const { sha } = gated;
    const { result, copy, walCopies } = await underLock(
      { host, stateDir: config['state-dir'], env: 'prod', ...prod.workScope, action: 'promote', sha, run, log, lockTimeoutSeconds },
      async (op) => {
        const p: Promotion = { host, config, log, plan, prod, dev, op, gated, sha };
        const r = await runPromotion(p);
        // 10. Still under the lock, so no other run prunes the backup while it is copied.
        return { result: r, copy: await copyBackupOffsite(p, r), walCopies: await copyBaseBackupOffsite(p, r) };
      },
      ({ result: r }) => (r.outcome === 'promoted' || r.outcome === 'unchanged' ? 'success' : 'failure'),
    );
    await reportOutcome(io, { prod, config, result, gated, copy, walCopies, log });
  },
};

/**
 * The runbook under prod's lock. Every step before the point of no return either hands on to the
 * next or refuses, leaving prod as it was; every step after it either hands on or fails, and the
 * failure rolls prod back. Steps that only throw (the opening checks, the backup) change nothing.
 */
export async function runPromotion(p: Promotion): Promise<Outcome> {
  const opened = await openPromotion(p);
  if (opened.previous?.sha === p.sha) return unchangedOutcome(p, { ...opened, previous: opened.previous });
  await checkOnBranch(p);
  const at = await placeCommit(p);
  return withScratchCheckouts(p, async () => {
    const staged = await stageRelease(p, opened, at);
    return withWriteFreeze(p, async (frozen) => {
      const dumped = await backUpProd(p, staged, frozen);
      const backedUp = await baseBackUpProd(p, dumped);
      if (isRefusal(backedUp)) return refusePromotion(p, dumped, backedUp);
      const shipped = await shipToProd(p, backedUp);
      if (isRefusal(shipped)) return refusePromotion(p, backedUp, shipped);
      const rehearsed = await rehearseMigrations(p, shipped);
      if (isRefusal(rehearsed)) return refusePromotion(p, backedUp, rehearsed);
      const committed = reserveRollbackTime(p, rehearsed);
      if (isRefusal(committed)) return refusePromotion(p, backedUp, committed);
      // ── Point of no return: from here a failure rolls prod back.
      try {
        const migrated = await migrateProd(p, committed);
        const swapped = await swapProd(p, committed, migrated);
        const settled = await migrateInPlace(p, committed, swapped);
        const healthy = await checkHealth(p, committed, settled);
        return await recordPromotion(p, committed, healthy);
      } catch (e) {
        if (!(e instanceof ForwardFailed)) throw e;
        return rollBackPromotion(p, committed, e);
      }
    });
  });
}

interface Report {
  prod: Environment;
  config: Config;
  result: Outcome;
  gated: GatedRelease;
  copy?: OffsiteCopy;
  walCopies?: WalCopies;
  log: Logger;
}

/**
 * The outputs and the job summary. A promotion that did not end on the commit fails the step; so
 * does a failed off-host copy unless backup.offsite.required is false (prod keeps the new release
 * either way: the copy is of a backup, not part of the change).
 */
async function reportOutcome(io: ActionIO<PromoteInputs, PromoteOutputs>, { prod, config, result, gated, copy, walCopies, log }: Report): Promise<void> {
  io.output('outcome', result.outcome);
  io.output('release-id', result.releaseId);
  io.output('backup-id', result.backup?.id ?? '');
  io.output('sha', result.sha);
  io.output('offsite', copy?.status ?? 'off');
  io.output('offsite-path', copy?.status === 'copied' ? copy.location : '');
  const summary = promoteSummary(prod, result, gated);
  if (copy && result.backup) offsiteSummary(summary, { config, env: prod.name, localPath: backupDir(config, prod, result.backup.id), copy });
  if (walCopies) walCopiesSummary(summary, walCopies);
  await io.summary(summary.toMarkdown());
  const shown = short(result.sha);
  const failure = failureOf(result);
  const why = `${failure?.stage} (${failure?.message})`;
  if (result.outcome === 'refused') throw new OperationFailed(`promotion of ${shown} refused during ${why}; prod was not changed`);
  if (result.outcome === 'rolled-back') throw new OperationFailed(`promotion of ${shown} failed during ${why}; prod was rolled back to ${result.releaseId}`);
  if (result.outcome === 'rollback-failed')
    throw new OperationFailed(`promotion of ${shown} failed during ${why} AND the rollback failed (${result.rollbackError}): prod needs a person now`);
  const failed = [
    copy?.status === 'failed' && result.backup ? `the off-host copy of backup ${result.backup.id} failed: ${copy.error}` : undefined,
    walCopies && result.base ? walCopiesFailure(walCopies, result.base.stamp) : undefined,
  ].filter((f) => f !== undefined);
  if (failed.length) {
    const line = `prod runs release ${result.releaseId}, but ${failed.join('; ')}`;
    if (config.backup.offsite?.required !== false) throw new OperationFailed(line);
    log.warning(`${line} (backup.offsite.required is false: the step succeeds)`);
  }
}
