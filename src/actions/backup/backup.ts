/**
 * backup: a verified pg_dump of one environment's database, under its lock; then old backups are
 * pruned (the newest verified one is never deleted); then, with backup.offsite, an encrypted copy
 * goes from the VPS to the backup host (src/domain/offsite.ts). A copy that fails never undoes the
 * local backup: it fails the step, or only warns when backup.offsite.required is false. With
 * `wal: ensure`, the receiver is checked and a base backup of prod taken (src/domain/wal.ts).
 */
import type { BackupInputs, BackupOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import { backupDir, checkBackupDir, pruneBackups, takeBackup, type BackupManifest } from '../../domain/backup';
import { copyOffsite, type OffsiteCopy, type OffsiteKeys } from '../../domain/offsite';
import { ConfigurationError, OperationFailed, errorMessage } from '../../infra/errors';
import { Environment } from '../../domain/environment';
import { underLock } from '../../domain/operation';
import { currentRelease } from '../../domain/release';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import { environmentInput, offsiteKeysInput, offsiteSummary } from '../common';
import type { Config, EnvironmentName } from '../../domain/config';
import type { Logger } from '../../infra/logger';
import {
  baseRecord,
  baseSummary,
  runBaseBackupStep,
  runWalStep,
  walInput,
  walRecord,
  walCopyFailure,
  walSummary,
  type BaseOutcome,
  type WalInputs,
  type WalOutcome,
  type WalPlan,
} from './wal';
import { runWalPush } from './wal-push';

interface Plan {
  environment: EnvironmentName;
  verify?: 'list' | 'restore';
  /** The backup host's keys, when the config has backup.offsite. */
  offsite?: OffsiteKeys;
  /** The `wal` input: set up or stop prod's continuous WAL archiving after the dump. */
  wal?: WalPlan;
  /** `wal: push`: no dump; only the completed WAL segments not yet off the host go there. */
  walPush?: boolean;
}

export const backupAction: ActionDefinition<BackupInputs & WalInputs, BackupOutputs, Plan> = {
  name: 'backup',
  prepare({ io, config }) {
    const environment = environmentInput(io.defaulted('environment'));
    const v = io.input('verify');
    if (v && v !== 'list' && v !== 'restore') throw new ConfigurationError(`input verify "${validate.printable(v)}" must be list or restore`);
    checkBackupDir(config);
    const offsite = offsiteKeysInput(io, config);
    const wal = walInput(io, config, environment);
    if (wal?.mode === 'push') return { environment, offsite, walPush: true };
    return { environment, verify: (v || undefined) as Plan['verify'], offsite, wal };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    if (plan.walPush && plan.offsite) return runWalPush({ host, config, io, log, run, lockTimeoutSeconds, keys: plan.offsite });
    const env = new Environment(plan.environment, config);
    const summary = new Summary().heading(`Backup of ${env.name}`);
    let manifest: BackupManifest | undefined;
    let copy: OffsiteCopy | undefined;
    let wal: WalOutcome | undefined;
    let base: BaseOutcome | undefined;
    try {
      [manifest, copy, wal, base] = await underLock(
        { host, stateDir: config['state-dir'], env: env.name, ...env.workScope, action: 'backup', run, log, lockTimeoutSeconds },
        async (op) => {
          const release = currentRelease(op.records);
          let m: BackupManifest;
          try {
            m = await takeBackup({ host, config, env, ctx: { release: release?.release, sha: release?.sha }, log, verify: plan.verify });
            await op.record('backup', { backup: m.id, status: m.status, bytes: m.files['db.dump'].bytes, sha256: m.files['db.dump'].sha256 });
            await pruneBackups(host, config, env, log);
          } catch (e) {
            await op.record('backup', { status: 'failed', error: errorMessage(e) });
            throw e;
          }
          // The verified local backup stands whatever happens to its copy and to the WAL step.
          let c: OffsiteCopy | undefined;
          if (plan.offsite) {
            c = await copyOffsite({ host, config, env, manifest: m, keys: plan.offsite, log });
            await op.record('offsite', { backup: m.id, status: c.status, location: c.location, error: c.status === 'failed' ? c.error : undefined });
          }
          const w = plan.wal ? await runWalStep({ host, config, env, log }, plan.wal) : undefined;
          if (w) await op.record('wal', walRecord(w));
          // A base backup once the receiver streams, so the archive holds the WAL it starts from.
          let b: BaseOutcome | undefined;
          if (plan.wal?.mode === 'ensure' && w && !('error' in w)) {
            b = await runBaseBackupStep(
              { host, config, env, log },
              {
                password: plan.wal.password,
                offsite: plan.offsite,
                lock: { run, waitSeconds: lockTimeoutSeconds },
              },
            );
            await op.record('base-backup', baseRecord(b));
          }
          return [m, c, w, b] as const;
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
    io.output('offsite', copy?.status ?? 'off');
    io.output('offsite-path', copy?.status === 'copied' ? copy.location : '');
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
    if (copy) offsiteSummary(summary, { config, env: env.name, localPath: backupDir(config, env, manifest.id), copy });
    if (wal) walSummary(summary, config, wal);
    if (base) baseSummary(summary, base);
    await io.summary(summary.toMarkdown());
    failAfterSummary({ config, log, id: manifest.id, env: env.name, copy, wal, base });
  },
};

/**
 * After the summary: the step fails for what went wrong after the verified dump, first cause first
 * (a failed off-host copy only warns with backup.offsite.required false).
 */
function failAfterSummary(o: { config: Config; log: Logger; id: string; env: string; copy?: OffsiteCopy; wal?: WalOutcome; base?: BaseOutcome }): void {
  const { config, log, id, copy, wal, base } = o;
  const offsiteFailure = (line: string) => {
    if (config.backup.offsite?.required !== false) throw new OperationFailed(line);
    log.warning(`${line} (backup.offsite.required is false: the step succeeds)`);
  };
  if (copy?.status === 'failed') offsiteFailure(`backup ${id} of ${o.env} is verified on the VPS, but its off-host copy failed: ${copy.error}`);
  if (wal && 'error' in wal) throw new OperationFailed(`backup ${id} of prod is verified, but WAL archiving (${wal.mode}) failed: ${wal.error}`);
  if (base && 'error' in base) throw new OperationFailed(`backup ${id} of prod is verified and WAL archiving is on, but the base backup failed: ${base.error}`);
  const walCopy = walCopyFailure(base);
  if (walCopy) offsiteFailure(`backup ${id} of prod is verified and its base backup taken, but ${walCopy}`);
  if (base && 'retentionError' in base && base.retentionError)
    throw new OperationFailed(`base backup ${base.done.stamp} of prod is taken, but the retention of base backups and WAL failed: ${base.retentionError}`);
}
