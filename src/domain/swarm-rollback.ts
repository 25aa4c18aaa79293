/**
 * Starting an earlier release again on a swarm (env.onSwarm): its recorded digests deployed as the
 * stack and watched until the engine converged (rollbackRelease); nothing is built or retagged.
 * When the database is restored too, the stack's app services are scaled to 0 first, so nothing
 * writes while it is replaced; the stack deploy then gives them the replicas their files say.
 */
import { restoreBackup, type BackupManifest } from './backup';
import type { EnvContext } from './environment';
import { checkoutCommit, releaseEnvironment } from './git';
import type { Release } from './release';
import type { RestartResult, StartReleaseOptions } from './rollback';
import { rollbackRelease, type SwarmRelease } from './swarm-release';
import { appReplicas, scaleLater, scaleServices } from './swarm-scale';
import { OperationFailed } from '../infra/errors';
import { ignored } from '../infra/logger';
import * as swarm from '../infra/swarm';

/** The digests a swarm rollback deploys: the release's record of them, each `repo@sha256:…`. */
export function releaseDigests(envName: string, release: Release): SwarmRelease {
  const digests = release.digests ?? {};
  if (Object.keys(digests).length === 0)
    throw new OperationFailed(
      `${envName} runs on a swarm, but release ${release.release} records no image digests (it was not deployed to the swarm): name a release deployed on the swarm (the rollback action's release-id)`,
    );
  const bad = Object.entries(digests).filter(([, ref]) => !swarm.digestRef.safeParse(ref).success);
  if (bad.length)
    throw new OperationFailed(
      `release ${release.release} records ${bad.map(([s, ref]) => `${s}: "${ref.slice(0, 120)}"`).join(', ')}, not images pinned by digest (repo@sha256:…): name another release`,
    );
  return digests;
}

/**
 * startRelease on a swarm: the release's directory (promote.release-dirs) or its commit checked
 * out, then, if asked, the database restored with the app services at 0 replicas, then the stack
 * deployed with the release's digests. A failed restore still deploys the release, then fails.
 */
export async function startSwarmRelease({ host, config, env, release, log, restore }: StartReleaseOptions): Promise<RestartResult> {
  const digests = releaseDigests(env.name, release);
  const runAt = await releaseEnvironment(host, config, env, release.sha);
  if (runAt === env) await checkoutCommit(host, env, release.sha);
  const ctx: EnvContext = { host, config, env: runAt, log };
  const deploy = () => rollbackRelease(ctx, { release: digests, to: release.release });
  let restoredAt: string | undefined;
  if (restore) {
    try {
      await restoreWithoutLoad(ctx, restore);
    } catch (e) {
      // The database was put back as it was: deploy the release anyway, which scales the services up again.
      await deploy().catch(ignored(log, `deploying ${env.name}'s release ${release.release} after a failed restore`));
      throw e;
    }
    restoredAt = new Date().toISOString();
  }
  await deploy();
  // The checkout follows once the stack runs from the release's directory (as startRelease's compose path).
  if (runAt !== env) await checkoutCommit(host, env, release.sha);
  const containers = await env.containers(host).catch(ignored(log, `listing ${env.name}'s task containers`, []));
  return { containers, restoredAt };
}

/** The stack's app services at 0 replicas (the engine waited until their tasks stopped), then the restore. */
async function restoreWithoutLoad(ctx: EnvContext, restore: BackupManifest): Promise<void> {
  const { host, config, env, log } = ctx;
  const apps = await appReplicas(ctx);
  if (apps.length) {
    log.info(`${env.name}: scaling ${apps.map((a) => a.service).join(', ')} to 0 replicas for the restore`);
    await scaleServices(
      ctx,
      apps.map((a) => ({ service: a.service, replicas: 0 })),
      { why: 'for the restore' },
    );
  }
  log.warning(`${env.name}: restoring the database from backup ${restore.id} taken at ${restore.time}; writes made since then are lost`);
  // A restore cut short is undone by the next operation, which then scales the services back as they were.
  await restoreBackup({ host, config, env, m: restore, log, opts: { restartLater: scaleLater(env, apps) } });
}
