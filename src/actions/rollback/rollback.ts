/**
 * rollback: return an environment to an earlier release: the previous one by default, or a named
 * one. Its tagged images start again without a rebuild and its commit is checked out. The database
 * is restored only with restore-database and a backup-id; the data-loss window is logged before the
 * restore and stated in the summary.
 */
import type { RollbackInputs, RollbackOutputs } from '../../../action-types';
import type { ActionDefinition } from '../../domain/action';
import { usableBackup, type BackupManifest } from '../../domain/backup';
import type { EnvironmentName } from '../../domain/config';
import { Environment } from '../../domain/environment';
import { ConfigurationError, OperationFailed, errorMessage } from '../../infra/errors';
import { underLock } from '../../domain/operation';
import { releaseHistory, releaseStack, type Release } from '../../domain/release';
import { drift, observe } from '../../domain/state';
import { lossWindow, startRelease, type RestartResult } from '../../domain/rollback';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import { environmentInput, servicesTable } from '../common';

interface Plan {
  environment: EnvironmentName;
  releaseId?: string;
  restoreDatabase: boolean;
  backupId?: string;
}

export const rollbackAction: ActionDefinition<RollbackInputs, RollbackOutputs, Plan> = {
  name: 'rollback',
  prepare({ io }) {
    const environment = environmentInput(io.input('environment') || 'prod');
    const releaseId = io.input('release-id') ? validate.releaseId(io.input('release-id')) : undefined;
    const restoreDatabase = validate.boolean(io.input('restore-database') || 'false', 'input restore-database');
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
    const summary = new Summary().heading(`Rollback of ${env.name}`);
    let target: Release | undefined;
    let backup: BackupManifest | undefined;
    let current: Release | undefined;
    let drifted: string[] = [];
    let skipped: string[] = [];
    try {
      const restart: RestartResult = await underLock(
        { host, stateDir: config['state-dir'], env: env.name, project: env.cfg.project, action: 'rollback', run, log, lockTimeoutSeconds },
        async (op) => {
          const history = releaseHistory(op.records);
          const stack = releaseStack(op.records);
          current = stack.current;
          const before = await observe(host, env);
          drifted = drift(before, current);
          if (drifted.length)
            log.warning(`${env.name} does not run its recorded release ${current?.release ?? '(none)'}: ${drifted.join('; ')}. The rollback settles it.`);
          if (plan.releaseId) {
            target = history.find((r) => r.release === plan.releaseId);
            if (!target)
              throw new OperationFailed(
                `${env.name} has no release ${plan.releaseId} in its host log; known: ${
                  history
                    .slice(0, 5)
                    .map((r) => r.release)
                    .join(', ') || 'none'
                }`,
              );
          } else {
            target = stack.target;
            skipped = stack.skipped;
            if (!target) {
              throw new OperationFailed(
                `${env.name} has no release to roll back to: ${current ? `${current.release} replaced none` : 'no release is recorded'}` +
                  `${stack.skipped.length ? ` that was not itself rolled back from (passed over: ${stack.skipped.join(', ')})` : ''}. ` +
                  `Name one with release-id (known: ${
                    history
                      .slice(0, 5)
                      .map((r) => r.release)
                      .join(', ') || 'none'
                  }). Nothing was changed.`,
              );
            }
          }
          if (skipped.length) log.info(`passing over ${skipped.join(', ')}: a rollback already left ${skipped.length > 1 ? 'them' : 'it'}`);
          if (plan.backupId) {
            backup = await usableBackup(host, config, env, plan.backupId, log);
            log.warning(`The database of ${env.name} will be restored from ${backup.id} (taken ${backup.time}): every write since then will be lost.`);
          }
          const r = await startRelease(host, config, env, target, log, backup);
          await op.record('release', {
            release: target.release,
            sha: target.sha,
            kind: 'rollback',
            images: target.images,
            previous: target.previous,
            rolledBackFrom: current?.release,
            restoredBackup: backup?.id,
            settled: drifted.length ? drifted : undefined,
          });
          await op.record('rollback', { release: target.release, rolledBackFrom: current?.release, restoredBackup: backup?.id, restoredAt: r.restoredAt });
          return r;
        },
      );
      const t = target as Release;
      io.output('release-id', t.release);
      io.output('sha', t.sha);
      io.output('restored-backup-id', backup?.id ?? '');
      summary.text(
        `↩️ **${env.name} runs release \`${t.release}\`** (\`${t.sha.slice(0, 12)}\`) again, healthy. It ran \`${current?.release ?? '?'}\` before.`,
      );
      summary.list([
        backup && restart.restoredAt
          ? `database restored from \`${backup.id}\`: ${lossWindow(backup, restart.restoredAt)}`
          : 'database not restored (its schema and data are as they were)',
        ...(skipped.length ? [`passed over ${skipped.map((x) => `\`${x}\``).join(', ')}: an earlier rollback left ${skipped.length > 1 ? 'them' : 'it'}`] : []),
        ...(drifted.length ? [`before the rollback, ${env.name} did not run its recorded release: ${drifted.join('; ')}`] : []),
      ]);
      servicesTable(summary, restart.containers);
    } catch (e) {
      summary.text(`❌ **The rollback of ${env.name} failed**: ${errorMessage(e)}`);
      if (target)
        summary.list([`target release: \`${target.release}\``, `Next: run the status action to see the containers, then retry or pick another release-id.`]);
      await io.summary(summary.toMarkdown());
      throw e;
    }
    await io.summary(summary.toMarkdown());
  },
};
