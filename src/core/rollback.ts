/**
 * Starting an earlier release again: its tagged images (no rebuild), its commit checked out, and,
 * only when asked, the database restored from a verified backup while the app services are stopped.
 * Used by promote's automatic rollback and by the rollback action.
 */
import type { BackupManifest } from './backup';
import { restoreBackup } from './backup';
import type { Config } from './config';
import type { ContainerState, Environment } from './environment';
import { checkoutCommit } from './git';
import type { Host } from './host';
import type { Logger } from './logger';
import { probeHealthUrl, restoreReleaseImages, waitHealthy, type Release } from './release';
import { argv } from './shell';

export interface RestartResult {
  containers: ContainerState[];
  /** When the database restore finished, if there was one. */
  restoredAt?: string;
}

/** The compose services other than the database, so the database can be restored under no load. */
async function appServices(host: Host, env: Environment): Promise<string[]> {
  const r = await host.run(env.compose('config', '--services'), env.composeOptions({ quiet: true, label: `${env.name} compose config --services`, timeoutSeconds: 120 }));
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s && s !== env.cfg.database.service);
}

export async function startRelease(host: Host, config: Config, env: Environment, release: Release, log: Logger, restore?: BackupManifest): Promise<RestartResult> {
  log.startGroup(`${env.name}: starting release ${release.release} (${release.sha.slice(0, 12)})`);
  try {
    await restoreReleaseImages(host, env, release);
    await checkoutCommit(host, env, release.sha);
    let restoredAt: string | undefined;
    if (restore) {
      const services = await appServices(host, env);
      if (services.length) await host.run(env.compose('stop', ...services), env.composeOptions({ label: `${env.name} compose stop (for the restore)` }));
      log.warning(`${env.name}: restoring the database from backup ${restore.id} taken at ${restore.time}; writes made since then are lost`);
      try {
        await restoreBackup(host, config, env, restore, log);
      } catch (e) {
        // The database was put back as it was; start the release's services anyway rather than leave them stopped.
        await host.run(env.compose('up', '-d', '--no-build', '--remove-orphans'), env.composeOptions({ label: `${env.name} compose up after a failed restore` })).catch(() => undefined);
        throw e;
      }
      restoredAt = new Date().toISOString();
    }
    await host.run(env.compose('up', '-d', '--no-build', '--remove-orphans'), env.composeOptions({ label: `${env.name} compose up (release ${release.release})` }));
    const containers = await waitHealthy(host, env, log);
    await probeHealthUrl(host, env, log);
    return { containers, restoredAt };
  } finally {
    log.endGroup();
  }
}

export interface MigrationPlan {
  container: string;
  current: string;
  heads: string[];
  /** False when the database is already at the single head: nothing will change. */
  pending: boolean;
}

/** Where alembic stands in the environment's api service, before migrating. */
export async function migrationPlan(host: Host, env: Environment, timeoutSeconds: number, service = env.cfg.apiService): Promise<MigrationPlan> {
  const container = await env.serviceContainer(host, service);
  const run = (args: string[]) => host.run(argv('docker', 'exec', container, 'alembic', ...args), { label: `${env.name} alembic ${args[0]}`, quiet: true, timeoutSeconds });
  const heads = [...(await run(['heads'])).stdout.matchAll(/^(\w+)(?: \(\w+\))* \(head\)/gm)].map((m) => m[1]);
  const current = /^(\w+)/m.exec((await run(['current'])).stdout.trim())?.[1] ?? '';
  return { container, current, heads, pending: !(heads.length === 1 && heads[0] === current) };
}

export async function upgradeHead(host: Host, env: Environment, plan: MigrationPlan, timeoutSeconds: number): Promise<void> {
  await host.run(argv('docker', 'exec', plan.container, 'alembic', 'upgrade', 'head'), { label: `${env.name} alembic upgrade head`, timeoutSeconds });
}

export function lossWindow(backup: BackupManifest, restoredAt: string): string {
  const seconds = Math.max(0, Math.round((Date.parse(restoredAt) - Date.parse(backup.time)) / 1000));
  return `writes between ${backup.time} (backup ${backup.id}) and ${restoredAt} (${seconds}s) are lost`;
}
