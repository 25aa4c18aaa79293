/**
 * promote's steps where prod's target is swarm: the runbook (promote.ts) is the same, and these
 * replace the compose steps that differ. The release shipped is a set of digests: dev's, exactly as
 * its gate tested them, where prod builds a service as dev does; built with prod's files at the
 * commit and pushed where the builds differ. The swap is a `docker stack deploy` of those digests,
 * watched until the engine converged or rolled back by itself (src/domain/swarm-release.ts).
 */
import type { Config } from '../../domain/config';
import type { Environment } from '../../domain/environment';
import { checkoutCommit } from '../../domain/git';
import { newReleaseId } from '../../domain/release';
import type { ServiceBuild } from '../../domain/ship';
import { buildAndPushServices, deployRelease, type BuiltRelease, type ServiceReport, type SwarmRelease } from '../../domain/swarm-release';
import { ConfigurationError, OperationFailed } from '../../infra/errors';
import { short } from '../../infra/sha';
import { digestRef } from '../../infra/swarm';
import type { GatedRelease } from './gated';
import type { BackedUp, Committed, Promotion, ShippedSwarm } from './promotion';

/**
 * promote.write-freeze stops services with compose; a stack's replicas are the engine's, and every
 * stack deploy resets them. Refused before the host is touched.
 */
export function refuseSwarmWriteFreeze(config: Config): void {
  if (config.environments.prod.target === 'swarm' && config.promote['write-freeze'].length)
    throw new ConfigurationError(
      'promote.write-freeze is not supported when environments.prod.target is swarm: remove it (the backup is then taken while every service runs)',
    );
}

/** On a swarm prod the release shipped is dev's digests: a dev release that records none is refused. */
export function requireGatedDigests(prod: Environment, gated: GatedRelease): void {
  if (!prod.onSwarm || gated.digests) return;
  throw new OperationFailed(
    `prod's target is swarm, but dev's release of ${short(gated.sha)} records no image digests to ship: deploy dev on a swarm (environments.dev.target: swarm), run the gate, then promote. Nothing was changed.`,
  );
}

/** The release of a swarm prod: the digests (service → repo@sha256:…) its stack is deployed with. */
export function gatedDigests(p: Pick<Promotion, 'gated'>): Record<string, string> {
  return p.gated.digests ?? {};
}

/**
 * The release to deploy: dev's digests for the services the ship plan ships; every other service of
 * prod's configuration (rebuilt, or configured differently) built with prod's files at the commit,
 * pushed and pinned (a pulled image pinned by the digest the manager knows). Nothing restarts.
 */
export async function shipSwarmRelease(p: Promotion, b: BackedUp): Promise<ShippedSwarm> {
  const { host, config, log, sha } = p;
  const releaseId = newReleaseId(sha);
  const shipped: SwarmRelease = {};
  for (const s of b.ship.ship) {
    const ref = digestRef.safeParse(s.id);
    if (!ref.success) throw new OperationFailed(`dev's release records ${s.service} as ${s.id}, which is not pinned by digest: deploy dev again`);
    shipped[s.service] = ref.data;
    log.info(`prod: ${s.service} ships the gated ${ref.data}`);
  }
  const others = new Map<string, ServiceBuild>([...b.builds].filter(([service]) => !(service in shipped)));
  const built: BuiltRelease = others.size
    ? await buildAndPushServices({ host, config, env: b.at, log }, { tag: releaseId, services: others })
    : { images: {}, pushed: {}, unpinned: [] };
  return { releaseId, built: { ...built, images: { ...shipped, ...built.images } } };
}

/**
 * The swap: the stack deployed with the release's digests from prod's checkout at the commit (or
 * the release's own directory, with promote.release-dirs), watched until the engine converged.
 */
export async function deploySwarmRelease(p: Promotion, c: Committed & { swarm: ShippedSwarm }): Promise<ServiceReport[]> {
  const { host, config, prod, log, sha } = p;
  const releaseDirs = config.promote['release-dirs'];
  // The stack reads its files when deployed: from the checkout moved to the commit, or the release's directory.
  if (!releaseDirs) await checkoutCommit(host, prod, sha);
  const services = await deployRelease({ host, config, env: releaseDirs ? c.at : prod, log }, { release: c.swarm.built.images });
  if (releaseDirs) await checkoutCommit(host, prod, sha);
  return services;
}

/** Health on a swarm: every service of the release converged on its digest, as the watch reported. */
export function assertConverged(reports: readonly ServiceReport[] | undefined, release: Readonly<Record<string, string>>): void {
  const wrong: string[] = [];
  for (const [service, digest] of Object.entries(release)) {
    const r = reports?.find((x) => x.service === service);
    if (!r) wrong.push(`${service} is not in the stack`);
    else if (r.verdict !== 'converged') wrong.push(`${service} did not converge (${r.replicas.running}/${r.replicas.wanted} running)`);
    else if (r.digest !== digest) wrong.push(`${service} was deployed with ${r.digest ?? 'no digest'}, not ${digest}`);
  }
  if (wrong.length) throw new OperationFailed(`prod does not run the release's digests: ${wrong.join('; ')}`);
}

/** The api's new image, which the one-off alembic tasks run on a swarm (undefined on compose). */
export function newApiImage(p: Pick<Promotion, 'prod'>, s: { swarm?: ShippedSwarm }): string | undefined {
  return s.swarm?.built.images[p.prod.cfg.apiService];
}
