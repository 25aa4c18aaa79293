/**
 * deploy on a swarm target: compose's runbook up to the isolation checks (what runs → checkout →
 * isolation), then the images built on the manager and pushed to the registry → the stack deployed
 * with each service pinned to its digest, the engine watched until it converged → the release
 * recorded with its digests. A new task that fails is rolled back by the engine itself
 * (update_config failure_action: rollback): the deploy then fails naming the services, tasks and
 * errors, and the record says what runs after it.
 */
import type { Environment } from '../../domain/environment';
import { releaseEnvironment } from '../../domain/git';
import type { Operation } from '../../domain/operation';
import { newReleaseId } from '../../domain/release';
import { buildAndPush, deployRelease, recordedImages, type BuiltRelease, type ServiceReport, type SwarmDeployFailed } from '../../domain/swarm-release';
import { ignored } from '../../infra/logger';
import { engineReportLines } from '../common';
import { checkIsolation, checkOut, inStage, openDeploy, recordFailedDeploy, type Deployed, type Deployment, type Opened } from './deploy';

export async function runSwarmDeploy(d: Deployment, op: Operation): Promise<Deployed> {
  const opened = await openDeploy(d, op);
  try {
    const sha = await checkOut(d);
    await checkIsolation(d, opened, sha);
    const releaseId = newReleaseId(sha);
    // prod with promote.release-dirs: built and deployed from the release's own directory.
    const ctx = { host: d.host, config: d.config, env: await releaseEnvironment(d.host, d.config, d.env, sha), log: d.log };
    const built = await inStage('build and up', sha, () => buildAndPush(ctx, releaseId));
    const services = await inStage('health', sha, () => deployRelease(ctx, { release: built.images }));
    return await recordSwarmDeploy(d, { op, opened, sha, releaseId, built, services });
  } catch (e) {
    throw await recordFailedDeploy(d, op, opened, e);
  }
}

async function recordSwarmDeploy(
  d: Deployment,
  o: { op: Operation; opened: Opened; sha: string; releaseId: string; built: BuiltRelease; services: ServiceReport[] },
): Promise<Deployed> {
  const { host, config, env, log } = d;
  const { previous, settled } = o.opened;
  return inStage('health', o.sha, async () => {
    const images = await recordedImages({ host, config, env, log }, o.built);
    const durationSeconds = Math.round((Date.now() - d.started) / 1000);
    await o.op.record('release', {
      release: o.releaseId,
      sha: o.sha,
      kind: 'deploy',
      images,
      digests: o.built.images,
      unpinned: o.built.unpinned.length ? o.built.unpinned.map((u) => u.service) : undefined,
      previous: previous?.release,
      durationSeconds,
      settled: settled.length ? settled : undefined,
    });
    for (const s of o.services) log.info(`${env.name}: ${s.service} runs ${s.image} (${s.replicas.running}/${s.replicas.wanted})`);
    // The containers of a stack's tasks, where the environment can list them; the summary's table only.
    const containers = await env.containers(host).catch(ignored(log, `listing ${env.name}'s containers`, []));
    return { releaseId: o.releaseId, sha: o.sha, previousReleaseId: previous?.release ?? '', durationSeconds, containers, settled };
  });
}

/** The failure summary of a swarm deploy: per service what the engine did, then what to do next. */
export function swarmFailureLines(env: Environment, e: SwarmDeployFailed): string[] {
  const lines = engineReportLines(e.services);
  const rolledBack = e.services.some((s) => s.update?.state === 'rollback_completed');
  return [
    ...lines,
    rolledBack
      ? `The engine rolled the failed services back to the images they ran before; ${env.name} runs what the record says above.`
      : `${env.name} may run a mix of old and new tasks: the next deploy or a rollback settles it.`,
    `Next: fix the commit and deploy again, or deploy an earlier commit; the host log records this failed deploy.`,
  ];
}
