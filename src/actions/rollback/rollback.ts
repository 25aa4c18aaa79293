/**
 * rollback: return an environment to an earlier release: the previous one by default, or a named
 * one. Its tagged images start again without a rebuild and its commit is checked out. The database
 * is restored only with restore-database and a backup-id; the data-loss window is logged before the
 * restore and stated in the summary. On a swarm, the release's recorded digests are deployed as the
 * stack instead (swarm.ts).
 */
import { short } from '../../infra/sha';
import type { RollbackInputs, RollbackOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import { usableBackup, type BackupManifest } from '../../domain/backup';
import type { Config, EnvironmentName } from '../../domain/config';
import { Environment } from '../../domain/environment';
import { ConfigurationError, OperationFailed, errorMessage } from '../../infra/errors';
import { underLock, type Operation } from '../../domain/operation';
import { releaseHistory, releaseStack, type Release } from '../../domain/release';
import { drift, observe } from '../../domain/state';
import { lossWindow, startRelease, type RestartResult } from '../../domain/rollback';
import type { ActionIO } from '../../infra/actions-io';
import type { Host } from '../../infra/host';
import type { Logger } from '../../infra/logger';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import { environmentInput, servicesTable } from '../common';
import { checkSwarmTarget, digestLines, swarmFailureLines } from './swarm';

interface Plan {
  environment: EnvironmentName;
  releaseId?: string;
  restoreDatabase: boolean;
  backupId?: string;
}

export const rollbackAction: ActionDefinition<RollbackInputs, RollbackOutputs, Plan> = {
  name: 'rollback',
  prepare({ io }) {
    const environment = environmentInput(io.defaulted('environment'));
    const releaseId = io.input('release-id') ? validate.releaseId(io.input('release-id')) : undefined;
    const restoreDatabase = validate.boolean(io.defaulted('restore-database'), 'input restore-database');
    const backupId = io.input('backup-id') ? validate.backupId(io.input('backup-id')) : undefined;
    if (restoreDatabase && !backupId)
      throw new ConfigurationError(
        'input restore-database is true but no backup-id was given: name the verified backup to restore (see the backup or promote summaries)',
      );
    if (!restoreDatabase && backupId)
      throw new ConfigurationError('input backup-id was given without restore-database: true; the database is never restored implicitly');
    return { environment, releaseId, restoreDatabase, backupId };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const env = new Environment(plan.environment, config);
    io.output('url', env.cfg.url);
    let done: RolledBack;
    try {
      done = await underLock({ host, stateDir: config['state-dir'], env: env.name, ...env.workScope, action: 'rollback', run, log, lockTimeoutSeconds }, (op) =>
        runRollback({ host, config, log, env, plan }, op),
      );
    } catch (e) {
      // The step fails with the error itself: its kind decides how the runner reports it.
      const failed = e instanceof RollbackFailed ? e : undefined;
      const error = failed ? failed.error : e;
      await io.summary(failureSummary(env, error, failed?.target).toMarkdown());
      throw error;
    }
    await reportRolledBack(io, env, done);
  },
};

/** One rollback, fixed for its whole run. */
export interface RollbackRun {
  host: Host;
  config: Config;
  log: Logger;
  env: Environment;
  plan: Plan;
}

/** The release to go to, and what ran before. */
export interface Chosen {
  target: Release;
  current?: Release;
  /** How what ran differed from the recorded release: the rollback settles it. */
  drifted: string[];
  /** Releases passed over because an earlier rollback left them. */
  skipped: string[];
}

export interface RolledBack extends Chosen, RestartResult {
  backup?: BackupManifest;
}

/** A rollback that failed once its target was chosen. */
export class RollbackFailed extends Error {
  constructor(
    readonly target: Release,
    readonly error: unknown,
  ) {
    super(errorMessage(error));
  }
}

/** The runbook under the environment's lock: what runs → which release → the backup to restore, if asked → start it → record. */
export async function runRollback(r: RollbackRun, op: Operation): Promise<RolledBack> {
  const chosen = await chooseTarget(r, op);
  try {
    const backup = await backupToRestore(r);
    const restart = await startRelease({ host: r.host, config: r.config, env: r.env, release: chosen.target, log: r.log, restore: backup });
    await recordRollback(op, { ...chosen, onSwarm: r.env.onSwarm }, backup, restart);
    return { ...chosen, ...restart, backup };
  } catch (e) {
    throw new RollbackFailed(chosen.target, e);
  }
}

/** What runs, and the release to go to: the one named, or the one the current release replaced that no rollback left. */
export async function chooseTarget(r: RollbackRun, op: Operation): Promise<Chosen> {
  const { env, log, plan } = r;
  const history = releaseHistory(op.records);
  const stack = releaseStack(op.records);
  const current = stack.current;
  const drifted = drift(await observe(r.host, env), current);
  if (drifted.length)
    log.warning(`${env.name} does not run its recorded release ${current?.release ?? '(none)'}: ${drifted.join('; ')}. The rollback settles it.`);
  const known =
    history
      .slice(0, 5)
      .map((x) => x.release)
      .join(', ') || 'none';
  if (plan.releaseId) {
    const target = history.find((x) => x.release === plan.releaseId);
    if (!target) throw new OperationFailed(`${env.name} has no release ${plan.releaseId} in its host log; known: ${known}`);
    if (env.onSwarm) checkSwarmTarget({ env, target, named: true, history });
    return { target, current, drifted, skipped: [] };
  }
  if (!stack.target) {
    throw new OperationFailed(
      `${env.name} has no release to roll back to: ${current ? `${current.release} replaced none` : 'no release is recorded'}` +
        `${stack.skipped.length ? ` that was not itself rolled back from (passed over: ${stack.skipped.join(', ')})` : ''}. ` +
        `Name one with release-id (known: ${known}). Nothing was changed.`,
    );
  }
  const { skipped } = stack;
  if (env.onSwarm) checkSwarmTarget({ env, target: stack.target, named: false, history });
  if (skipped.length) log.info(`passing over ${skipped.join(', ')}: a rollback already left ${skipped.length > 1 ? 'them' : 'it'}`);
  return { target: stack.target, current, drifted, skipped };
}

/** The verified backup to restore, only when restore-database named one. */
async function backupToRestore(r: RollbackRun): Promise<BackupManifest | undefined> {
  if (!r.plan.backupId) return undefined;
  const backup = await usableBackup({ host: r.host, config: r.config, env: r.env, id: r.plan.backupId, log: r.log });
  r.log.warning(`The database of ${r.env.name} will be restored from ${backup.id} (taken ${backup.time}): every write since then will be lost.`);
  return backup;
}

/** Recorded as a release (a rollback) and as a rollback from the current release. */
async function recordRollback(op: Operation, chosen: Chosen & { onSwarm: boolean }, backup: BackupManifest | undefined, restart: RestartResult): Promise<void> {
  const { target, current, drifted } = chosen;
  await op.record('release', {
    release: target.release,
    sha: target.sha,
    kind: 'rollback',
    images: target.images,
    // On a swarm, what the stack was deployed with: what drift and the next rollback judge by.
    digests: chosen.onSwarm ? target.digests : undefined,
    previous: target.previous,
    rolledBackFrom: current?.release,
    restoredBackup: backup?.id,
    settled: drifted.length ? drifted : undefined,
  });
  await op.record('rollback', { release: target.release, rolledBackFrom: current?.release, restoredBackup: backup?.id, restoredAt: restart.restoredAt });
}

async function reportRolledBack(io: ActionIO<RollbackInputs, RollbackOutputs>, env: Environment, done: RolledBack): Promise<void> {
  const { target: t, backup, skipped, drifted } = done;
  io.output('release-id', t.release);
  io.output('sha', t.sha);
  io.output('restored-backup-id', backup?.id ?? '');
  const summary = new Summary().heading(`Rollback of ${env.name}`);
  const state = env.onSwarm ? 'every service of the stack converged on its digest' : 'healthy';
  summary.text(`↩️ **${env.name} runs release \`${t.release}\`** (\`${short(t.sha)}\`) again, ${state}. It ran \`${done.current?.release ?? '?'}\` before.`);
  summary.list([
    backup && done.restoredAt
      ? `database restored from \`${backup.id}\`: ${lossWindow(backup, done.restoredAt)}`
      : 'database not restored (its schema and data are as they were)',
    ...(skipped.length ? [`passed over ${skipped.map((x) => `\`${x}\``).join(', ')}: an earlier rollback left ${skipped.length > 1 ? 'them' : 'it'}`] : []),
    ...(drifted.length ? [`before the rollback, ${env.name} did not run its recorded release: ${drifted.join('; ')}`] : []),
    ...(env.onSwarm ? digestLines(t) : []),
  ]);
  servicesTable(summary, done.containers);
  await io.summary(summary.toMarkdown());
}

function failureSummary(env: Environment, e: unknown, target: Release | undefined): Summary {
  const summary = new Summary().heading(`Rollback of ${env.name}`).text(`❌ **The rollback of ${env.name} failed**: ${errorMessage(e)}`);
  if (target && env.onSwarm) summary.list([`target release: \`${target.release}\``, ...swarmFailureLines(env, target, e)]);
  else if (target)
    summary.list([`target release: \`${target.release}\``, `Next: run the status action to see the containers, then retry or pick another release-id.`]);
  return summary;
}
