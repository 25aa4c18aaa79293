/**
 * promote ("flip the switch"): put prod on the exact commit that passed the gate on dev.
 *
 *   1. dev's release, and a passing gate for its sha (from the dev host log)   nothing changed yet
 *   2. a verified backup of prod                                               nothing changed yet
 *   3. the rollback point: prod's current release (sha and image tags)
 *   ── point of no return ──
 *   4. checkout, build, up -d    5. alembic upgrade head    6. healthchecks and the prod URL
 *   7. on any failure in 4–6: start the rollback point's images again (no rebuild), and restore the
 *      database from the backup of step 2 if the migration had begun; health checked again
 *   8. the release (or the rollback) recorded in the prod host log
 *
 * Prod ends on the new release or back on the old one; the outcome says which.
 */
import type { PromoteInputs, PromoteOutputs } from '../../../action-types';
import type { ActionDefinition } from '../../domain/action';
import { takeBackup, usableBackup, type BackupManifest } from '../../domain/backup';
import { Environment, type ContainerState } from '../../domain/environment';
import { OperationFailed, errorMessage } from '../../infra/errors';
import { checkoutCommit, resolveRef } from '../../domain/git';
import { HostLog, latest, type RecordOf } from '../../domain/host-log';
import type { RunInfo } from '../../infra/actions-io';
import type { Host } from '../../infra/host';
import type { Logger } from '../../infra/logger';
import { EnvironmentLock } from '../../domain/lock';
import { drift, driftMessage, observe, shortId } from '../../domain/state';
import { underLock } from '../../domain/operation';
import { composeBuildAndUp, currentRelease, newReleaseId, probeHealthUrl, pruneReleaseTags, tagRelease, waitHealthy, HealthError, type Release } from '../../domain/release';
import { migrationPlan, upgradeHead } from '../../domain/alembic';
import { lossWindow, startRelease } from '../../domain/rollback';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import { servicesTable } from '../common';
import { isolationGate } from '../../safety/preflight';

interface Plan {
  requireGate: boolean;
  backupId?: string;
  backupMaxAgeMinutes: number;
}

/** Time kept for the automatic rollback when the run has a deadline. */
const ROLLBACK_RESERVE_MS = 30 * 60_000;

type Stage = 'checkout' | 'isolation' | 'build and up' | 'migration' | 'health';

interface Outcome {
  outcome: 'promoted' | 'rolled-back' | 'unchanged' | 'rollback-failed';
  sha: string;
  releaseId: string;
  backup?: BackupManifest;
  previous?: Release;
  failure?: { stage: Stage; message: string; logs?: string; service?: string };
  restored?: string;
  rollbackError?: string;
  containers: ContainerState[];
  interrupted: string[];
}

export const promoteAction: ActionDefinition<PromoteInputs, PromoteOutputs, Plan> = {
  name: 'promote',
  prepare({ io }) {
    const backupId = io.input('backup-id') ? validate.backupId(io.input('backup-id'), 'input backup-id') : undefined;
    return {
      requireGate: validate.boolean(io.input('require-gate') || 'true', 'input require-gate'),
      backupId,
      backupMaxAgeMinutes: validate.positiveInt(io.input('backup-max-age-minutes') || '60', 'input backup-max-age-minutes', 10080),
    };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const prod = new Environment('prod', config);
    io.output('url', prod.cfg.url);

    // 1. What dev runs, read under dev's lock, and whether exactly that passed the gate.
    const { devRelease, gate } = await gatedDevRelease(host, config['state-dir'], new Environment('dev', config), plan.requireGate, run, log, lockTimeoutSeconds);
    const sha = devRelease.sha;

    const result = await underLock(
      { host, stateDir: config['state-dir'], env: 'prod', action: 'promote', sha, run, log, lockTimeoutSeconds },
      async (op): Promise<Outcome> => {
        const previous = currentRelease(op.records);
        const interrupted = [...op.interrupted.map((r) => `${r.action} ${r.op} by ${r.run} (started ${r.time}) never finished`), ...op.recovered.map((r) => `a cut host change was put right first: ${r}`)];
        // The rollback point must be what prod really runs.
        const prodDrift = drift(await observe(host, prod), previous);
        if (previous && prodDrift.length) {
          throw new OperationFailed(
            `${driftMessage('prod', previous, prodDrift)} ` +
              `There is no known-good state to roll back to, so nothing was changed. Settle prod first: run the rollback workflow with release-id ${previous.release}.`,
          );
        }
        if (previous?.sha === sha) {
          log.info(`prod already runs ${sha.slice(0, 12)} (release ${previous.release}); nothing to do`);
          return { outcome: 'unchanged', sha, releaseId: previous.release, previous, containers: await prod.containers(host), interrupted };
        }

        // 2. A verified backup of prod, or nothing happens.
        let backup: BackupManifest;
        if (plan.backupId) {
          backup = await usableBackup(host, config, prod, plan.backupId, log);
          const ageMinutes = (Date.now() - Date.parse(backup.time)) / 60000;
          if (ageMinutes > plan.backupMaxAgeMinutes) {
            throw new OperationFailed(`backup ${backup.id} is ${Math.round(ageMinutes)} minutes old, more than backup-max-age-minutes (${plan.backupMaxAgeMinutes}); take a new one`);
          }
        } else {
          backup = await takeBackup(host, config, prod, { release: previous?.release, sha: previous?.sha }, log);
        }
        await op.record('backup', { backup: backup.id, status: backup.status, bytes: backup.files['db.dump']?.bytes, sha256: backup.files['db.dump']?.sha256 });

        // 3. The rollback point is `previous`. From here on, prod changes. The way forward must end
        // early enough to leave the rollback its time before the run's deadline.
        const fullDeadline = host.deadline;
        if (fullDeadline !== undefined) {
          if (fullDeadline - Date.now() < 2 * ROLLBACK_RESERVE_MS) {
            throw new OperationFailed(`too little time is left before the run's deadline to promote and still roll back (${Math.round((fullDeadline - Date.now()) / 60000)} min); nothing was changed. Raise the job's timeout-minutes.`);
          }
          host.deadline = fullDeadline - ROLLBACK_RESERVE_MS;
        }
        let stage: Stage = 'checkout';
        let migrationStarted = false;
        try {
          await resolveRef(host, prod, sha);
          await checkoutCommit(host, prod, sha);
          stage = 'isolation';
          await isolationGate(host, config, log, `prod at ${sha.slice(0, 12)}`);
          stage = 'build and up';
          await composeBuildAndUp(host, prod, true, log);
          stage = 'migration';
          const migration = await migrationPlan(host, prod, config.gate['timeout-seconds']);
          if (migration.pending) {
            // From here a failure may leave the schema half-migrated: the rollback restores the backup.
            migrationStarted = true;
            await upgradeHead(host, prod, migration, config.gate['timeout-seconds']);
          } else {
            log.info(`prod's database is already at ${migration.current}: no migration to run`);
          }
          stage = 'health';
          const containers = await waitHealthy(host, prod, log);
          await probeHealthUrl(host, prod, log);

          const releaseId = newReleaseId(sha);
          const images = await tagRelease(host, prod, releaseId, containers);
          await op.record('release', { release: releaseId, sha, kind: 'promote', images, previous: previous?.release, devRelease: devRelease.release, gate: gate?.op, backup: backup.id });
          await pruneReleaseTags(host, prod, config['keep-releases'], [releaseId, previous?.release ?? ''], log);
          return { outcome: 'promoted', sha, releaseId, backup, previous, containers, interrupted };
        } catch (e) {
          const failure = {
            stage,
            message: errorMessage(e),
            logs: e instanceof HealthError ? e.logs : undefined,
            service: e instanceof HealthError ? e.service : undefined,
          };
          log.error(`promote failed during ${stage}: ${failure.message}; rolling back`);
          host.deadline = fullDeadline;
          if (!previous) {
            return { outcome: 'rollback-failed', sha, releaseId: '', backup, failure, rollbackError: 'prod had no release recorded by twinstack to return to', containers: await prod.containers(host).catch(() => []), interrupted };
          }
          // 7. Automatic rollback.
          try {
            const restart = await startRelease(host, config, prod, previous, log, migrationStarted ? backup : undefined);
            await op.record('release', { release: previous.release, sha: previous.sha, kind: 'rollback', images: previous.images, previous: previous.previous, reason: `promote of ${sha} failed during ${stage}`, restoredBackup: restart.restoredAt ? backup.id : undefined });
            await op.record('rollback', { release: previous.release, failedSha: sha, stage, restoredBackup: restart.restoredAt ? backup.id : undefined, restoredAt: restart.restoredAt });
            return {
              outcome: 'rolled-back',
              sha,
              releaseId: previous.release,
              backup,
              previous,
              failure,
              restored: restart.restoredAt ? lossWindow(backup, restart.restoredAt) : undefined,
              containers: restart.containers,
              interrupted,
            };
          } catch (re) {
            return { outcome: 'rollback-failed', sha, releaseId: '', backup, previous, failure, rollbackError: errorMessage(re), containers: await prod.containers(host).catch(() => []), interrupted };
          }
        }
      },
      (r) => (r.outcome === 'promoted' || r.outcome === 'unchanged' ? 'success' : 'failure'),
    );

    io.output('outcome', result.outcome);
    io.output('release-id', result.releaseId);
    io.output('backup-id', result.backup?.id ?? '');
    io.output('sha', result.sha);
    await io.summary(promoteSummary(prod, result, devRelease).toMarkdown());
    if (result.outcome === 'rolled-back') {
      throw new OperationFailed(`promotion of ${sha.slice(0, 12)} failed during ${result.failure?.stage} (${result.failure?.message}); prod was rolled back to ${result.releaseId}`);
    }
    if (result.outcome === 'rollback-failed') {
      throw new OperationFailed(`promotion of ${sha.slice(0, 12)} failed during ${result.failure?.stage} (${result.failure?.message}) AND the rollback failed (${result.rollbackError}): prod needs a person now`);
    }
  },
};

function promoteSummary(prod: Environment, r: Outcome, devRelease: Release): Summary {
  const s = new Summary().heading('Flip the switch: dev → prod');
  const short = r.sha.slice(0, 12);
  switch (r.outcome) {
    case 'promoted':
      s.text(`✅ **prod now runs \`${short}\`** (release \`${r.releaseId}\`), the commit that passed on dev (release \`${devRelease.release}\`).`);
      break;
    case 'unchanged':
      s.text(`➖ **prod already runs \`${short}\`** (release \`${r.releaseId}\`). Nothing was changed.`);
      break;
    case 'rolled-back':
      s.text(`↩️ **The promotion failed and prod was rolled back.** prod runs its previous release \`${r.releaseId}\` (\`${r.previous?.sha.slice(0, 12)}\`) again, healthy.`);
      break;
    case 'rollback-failed':
      s.text(`🚨 **The promotion failed and the rollback did not complete. prod needs a person now.**`);
      break;
  }
  const items: string[] = [];
  if (r.failure) items.push(`failed during **${r.failure.stage}**: ${r.failure.message}`);
  if (r.outcome === 'rolled-back') items.push(r.restored ? `database restored from backup \`${r.backup?.id}\`: ${r.restored}` : 'database not restored: the migration had not started, no data was lost');
  if (r.rollbackError) items.push(`rollback error: ${r.rollbackError}`);
  if (r.backup) items.push(`backup before the change: \`${r.backup.id}\` (${r.backup.files['db.dump']?.bytes ?? 0} bytes, ${r.backup.verification.detail})`);
  if (r.previous && r.outcome === 'promoted') items.push(`previous release (rollback target): \`${r.previous.release}\``);
  for (const i of r.interrupted) items.push(`⚠️ an earlier operation on prod was interrupted: ${i}`);
  if (r.outcome === 'rollback-failed') items.push(`Next: look at the containers below; run the rollback workflow with a release id, or restore backup \`${r.backup?.id}\` by hand.`);
  if (r.outcome === 'rolled-back') items.push(`Next: fix the cause on dev, gate it, and flip the switch again.`);
  s.list(items);
  s.heading(`${prod.name}`, 3);
  servicesTable(s, r.containers);
  if (r.failure?.logs) s.detailsCode(`last log lines of ${r.failure.service}`, r.failure.logs);
  s.text(`dev still runs \`${devRelease.release}\`.`);
  return s;
}

/**
 * dev's release and the gate that passed for exactly what dev runs: the same commit and the same
 * image ids the tests ran in, with dev not drifted from its record. Read under dev's lock, so no
 * dev deploy changes it halfway through the reading. Refuses in one line otherwise.
 */
export async function gatedDevRelease(
  host: Host,
  stateDir: string,
  dev: Environment,
  requireGate: boolean,
  run: RunInfo,
  log: Logger,
  lockTimeoutSeconds: number,
): Promise<{ devRelease: Release; gate?: RecordOf<'gate'> }> {
  const lock = await EnvironmentLock.acquireToRead(host, stateDir, 'dev', run, 'promote (reading dev)', lockTimeoutSeconds, log, '');
  try {
    const devRecords = await new HostLog(host, stateDir, 'dev').read(log);
    const devRelease = currentRelease(devRecords);
    if (!devRelease) throw new OperationFailed('dev has no release recorded: deploy dev and run the gate first. Nothing was changed.');
    const observed = await observe(host, dev);
    const drifted = drift(observed, devRelease);
    if (drifted.length) {
      throw new OperationFailed(
        `${driftMessage('dev', devRelease, drifted)} ` +
          `What runs on dev was not gated as such. Deploy dev again and run the gate, then promote. Nothing was changed.`,
      );
    }
    const gate = latest(devRecords, 'gate', (r) => r.sha === devRelease.sha);
    if (!requireGate) return { devRelease, gate };
    if (gate?.passed !== true) {
      throw new OperationFailed(
        `commit ${devRelease.sha} (dev release ${devRelease.release}) has no passing gate on dev${gate ? ` (its last gate failed at ${gate.time})` : ''}: run the gate on dev, or fix and deploy again. Nothing was changed.`,
      );
    }
    const tested = gate.images ?? {};
    if (!Object.keys(tested).length) {
      throw new OperationFailed(`the passing gate of ${devRelease.sha.slice(0, 12)} (${gate.time}) does not say which images it tested: run the gate on dev again. Nothing was changed.`);
    }
    const changed = Object.entries(tested).filter(([svc, id]) => observed.images[svc] !== id);
    if (changed.length) {
      throw new OperationFailed(
        `dev no longer runs what passed the gate at ${gate.time}: ${changed.map(([svc, id]) => `${svc} ran ${shortId(id)}, now ${observed.images[svc] ? shortId(observed.images[svc]) : 'nothing'}`).join('; ')}. ` +
          `Run the gate on dev again. Nothing was changed.`,
      );
    }
    return { devRelease, gate };
  } finally {
    await lock.release();
  }
}
