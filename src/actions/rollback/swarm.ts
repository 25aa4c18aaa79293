/**
 * rollback on a swarm target: the release to go to must be one deployed on the swarm (its record
 * names a digest per service), which startRelease deploys as the stack; the summary names those
 * digests, and when the rollback fails its runbook offers the engine's own single-service fallback
 * (`docker service rollback`), which twinstack never runs by itself.
 */
import type { Environment } from '../../domain/environment';
import type { Release } from '../../domain/release';
import { SwarmDeployFailed } from '../../domain/swarm-release';
import { releaseDigests } from '../../domain/swarm-rollback';
import { ConfigurationError, OperationFailed } from '../../infra/errors';
import { swarmServiceName } from '../../infra/swarm';

/**
 * Refuses, before anything on the host changes, a target that records no digests: a named one as
 * an input to change, the default one naming the releases that could be named instead.
 */
export function checkSwarmTarget(o: { env: Environment; target: Release; named: boolean; history: readonly Release[] }): void {
  const { env, target, named } = o;
  if (Object.keys(target.digests ?? {}).length) {
    releaseDigests(env.name, target);
    return;
  }
  const deployed = o.history.filter((x) => Object.keys(x.digests ?? {}).length && x.release !== target.release).map((x) => x.release);
  const known = deployed.slice(0, 5).join(', ') || 'none';
  const why = `${env.name} runs on a swarm, where a rollback deploys a release's image digests, and release ${target.release} records none (it was not deployed to the swarm)`;
  if (named) throw new ConfigurationError(`input release-id: ${why}; name a release deployed on the swarm (known: ${known}). Nothing was changed.`);
  throw new OperationFailed(`${why}; name a release deployed on the swarm with release-id (known: ${known}). Nothing was changed.`);
}

/** One summary line per service: the digest the rollback deployed. */
export function digestLines(target: Release): string[] {
  return Object.entries(target.digests ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([service, ref]) => `\`${service}\` runs \`${ref}\``);
}

/**
 * The failure summary's lines on a swarm: what the engine did per service, then what to do, the
 * single-service fallback last (each service that did not converge, or any of the release's).
 */
export function swarmFailureLines(env: Environment, target: Release, e: unknown): string[] {
  const reports = e instanceof SwarmDeployFailed ? e.services.filter((s) => s.verdict !== 'converged') : [];
  const engine = reports.map(
    (s) =>
      `\`${s.service}\`: ${s.update ? `update ${s.update.state}, ` : ''}${s.replicas.running}/${s.replicas.wanted} running, runs \`${s.image}\`` +
      (s.failed.length ? `; ${s.failed.map((t) => `task ${t.task} on ${t.node} ${t.state}${t.error ? ` (${t.error})` : ''}`).join(', ')}` : ''),
  );
  const services = reports.length ? reports.map((s) => s.service) : Object.keys(target.digests ?? {}).sort();
  return [
    ...engine,
    `Next: run the status action to see what each service runs, then retry the rollback or name another release-id.`,
    `If this fails again for one service only: on the manager, ${services
      .map((s) => `\`docker service rollback ${swarmServiceName(env.project, s)}\``)
      .join(
        ' or ',
      )} returns that service to its previous spec (the engine's own fallback; twinstack does not run it, and the host log does not record it: deploy or roll back afterwards to settle).`,
  ];
}
