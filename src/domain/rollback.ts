/**
 * Starting an earlier release again: its tagged images (no rebuild), its commit checked out, and,
 * only when asked, the database restored from a verified backup while the app services are stopped.
 * On a swarm, the release's digests deployed as the stack instead (swarm-rollback.ts).
 * Used by promote's automatic rollback and by the rollback action.
 */
import type { BackupManifest } from './backup';
import { restoreBackup } from './backup';
import type { Config } from './config';
import type { ContainerState, Environment } from './environment';
import { checkoutCommit, releaseEnvironment } from './git';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { short } from '../infra/sha';
import { probeHealthUrl, restoreReleaseImages, waitHealthy, type Release } from './release';
import { rollingOptions, switchServices } from './rolling';
import { startSwarmRelease } from './swarm-rollback';

export interface RestartResult {
  containers: ContainerState[];
  /** When the database restore finished, if there was one. */
  restoredAt?: string;
}

/** The compose services other than the database, so the database can be restored under no load. */
export async function appServices(host: Host, env: Environment): Promise<string[]> {
  return (await env.services(host)).filter((s) => s !== env.cfg.database.service);
}

export interface StartReleaseOptions {
  host: Host;
  config: Config;
  env: Environment;
  /** The release to run again: its images, its commit. */
  release: Release;
  log: Logger;
  /** A backup to restore the database from, under no load, before the release starts. */
  restore?: BackupManifest;
}

export async function startRelease(o: StartReleaseOptions): Promise<RestartResult> {
  const { host, config, env, release, log, restore } = o;
  log.startGroup(`${env.name}: starting release ${release.release} (${short(release.sha)})`);
  try {
    // On a swarm a release is its digests: deployed as the stack, no image retagged (see swarm-rollback.ts).
    if (env.onSwarm) return await startSwarmRelease(o);
    await restoreReleaseImages(host, env, release);
    // With promote.release-dirs the release starts from its own directory (made again if it was
    // removed), so its containers mount its code and nothing moves under them later.
    const runAt = await releaseEnvironment(host, config, env, release.sha);
    if (runAt === env) await checkoutCommit(host, env, release.sha);
    let restoredAt: string | undefined;
    if (restore) {
      const services = await appServices(host, env);
      if (services.length) await host.run(env.compose('stop', ...services), env.composeOptions({ label: `${env.name} compose stop (for the restore)` }));
      log.warning(`${env.name}: restoring the database from backup ${restore.id} taken at ${restore.time}; writes made since then are lost`);
      try {
        await restoreBackup({ host, config, env, m: restore, log, opts: { stoppedServices: services } });
      } catch (e) {
        // The database was put back as it was; start the release's services anyway rather than leave them stopped.
        await host
          .run(runAt.compose('up', '-d', '--no-build', '--remove-orphans'), runAt.composeOptions({ label: `${env.name} compose up after a failed restore` }))
          .catch(ignored(log, `starting ${env.name}'s services after a failed restore`));
        throw e;
      }
      restoredAt = new Date().toISOString();
    }
    await switchServices({
      host,
      env: runAt,
      rolling: env.name === 'prod' ? config.promote.rolling : [],
      options: rollingOptions(config, env),
      log,
      label: `${env.name} compose up (release ${release.release})`,
    });
    // The checkout follows once no container mounts it (see promote's swap).
    if (runAt !== env) await checkoutCommit(host, env, release.sha);
    const containers = await waitHealthy(host, env, log);
    await probeHealthUrl(host, env, log);
    return { containers, restoredAt };
  } finally {
    log.endGroup();
  }
}

export function lossWindow(backup: BackupManifest, restoredAt: string): string {
  const seconds = Math.max(0, Math.round((Date.parse(restoredAt) - Date.parse(backup.time)) / 1000));
  return `writes between ${backup.time} (backup ${backup.id}) and ${restoredAt} (${seconds}s) are lost`;
}
