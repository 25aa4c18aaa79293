/**
 * backup: a verified pg_dump of one environment's database, under its lock; then old backups are
 * pruned (the newest verified one is never deleted).
 */
import type { BackupInputs, BackupOutputs } from '../../../action-types';
import type { ActionDefinition } from '../../domain/action';
import { backupDir, checkBackupDir, pruneBackups, takeBackup, type BackupManifest } from '../../domain/backup';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import { Environment } from '../../domain/environment';
import { underLock } from '../../domain/operation';
import { currentRelease } from '../../domain/release';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import { environmentInput } from '../common';
import type { EnvironmentName } from '../../domain/config';

interface Plan {
  environment: EnvironmentName;
  verify?: 'list' | 'restore';
}

export const backupAction: ActionDefinition<BackupInputs, BackupOutputs, Plan> = {
  name: 'backup',
  prepare({ io, config }) {
    const environment = environmentInput(io.input('environment') || 'prod');
    const v = io.input('verify');
    if (v && v !== 'list' && v !== 'restore') throw new ConfigurationError(`input verify "${validate.printable(v)}" must be list or restore`);
    checkBackupDir(config);
    return { environment, verify: (v || undefined) as Plan['verify'] };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const env = new Environment(plan.environment, config);
    const summary = new Summary().heading(`Backup of ${env.name}`);
    let manifest: BackupManifest | undefined;
    try {
      manifest = await underLock(
        { host, stateDir: config['state-dir'], env: env.name, project: env.cfg.project, action: 'backup', run, log, lockTimeoutSeconds },
        async (op) => {
          const release = currentRelease(op.records);
          try {
            const m = await takeBackup(host, config, env, { release: release?.release, sha: release?.sha }, log, plan.verify);
            await op.record('backup', { backup: m.id, status: m.status, bytes: m.files['db.dump'].bytes, sha256: m.files['db.dump'].sha256 });
            await pruneBackups(host, config, env, log);
            return m;
          } catch (e) {
            await op.record('backup', { status: 'failed', error: errorMessage(e) });
            throw e;
          }
        },
      );
    } catch (e) {
      summary
        .text(`❌ **The backup of ${env.name} failed**: ${errorMessage(e)}`)
        .list([
          'No backup was marked verified; promote will not start without one.',
          `Next: check free space in ${config.backup.dir} and the database container, then run the backup again.`,
        ]);
      await io.summary(summary.toMarkdown());
      throw e;
    }
    const dump = manifest.files['db.dump'];
    const path = `${backupDir(config, env, manifest.id)}/db.dump`;
    io.output('backup-id', manifest.id);
    io.output('path', path);
    io.output('bytes', dump.bytes);
    io.output('sha256', dump.sha256);
    summary.text(`✅ **Backup \`${manifest.id}\` verified** (${manifest.verification.detail}).`);
    summary.table(
      ['file', 'bytes', 'sha256'],
      Object.entries(manifest.files).map(([n, f]) => [n, String(f.bytes), f.sha256]),
    );
    summary.list([
      `path: \`${path}\``,
      `release at the time: ${manifest.release ?? 'none recorded'}`,
      `alembic revision: ${manifest.alembicRevision ?? 'unknown'}`,
      `took ${manifest.durationSeconds}s`,
    ]);
    await io.summary(summary.toMarkdown());
  },
};
