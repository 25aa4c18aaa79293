/**
 * Replacing a stateless service with no failed request (the technique of docker-rollout): start the
 * new container beside the old one, wait until it is healthy and the proxy routes to it, stop the
 * old one gracefully with a drain time, remove it, settle the scale back to one. If the new
 * container does not come up, it is removed and the old one keeps serving.
 *
 * What this needs from the stack (preflight's `rolling` check says so): no `container_name` (two
 * containers of the service run at once), no published host ports (both would bind the same one),
 * no `network_mode: host` (same), a healthcheck, and a proxy that finds the service's containers
 * by name or label (caddy-docker-proxy, or Caddy's `dynamic a` on the Docker network's DNS name).
 *
 * The caller puts the new image under the service's compose image name first (a tag or a build):
 * every compose call here runs with `--no-build`.
 */
import * as fs from 'node:fs';
import { ConfigurationError, OperationFailed, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { inspectProjectContainers, shortId, stopAndRemove } from '../infra/docker';
import { argv, hostScript } from '../infra/shell';
import { parseInspect, type ContainerState, type Environment } from './environment';
import { HealthError, containerLogs } from './release';
import type { Config } from './config';

const PROBE_ROUTING = fs.readFileSync(__dirname + '/probe-routing.sh', 'utf8');

export interface RouteProbe {
  /** A URL fetched from the host through the proxy (curl), such as the site's health URL. */
  url: string;
  /** A response header in which the answering container names itself (its hostname, by default its short id; or its ip:port). */
  header: string;
  /** How long the proxy may take to route to the new container (default 30 s). */
  timeoutSeconds?: number;
}

export interface RollingOptions {
  /** `docker stop -t`: how long the old container may finish its requests after SIGTERM before it is killed. */
  drainSeconds: number;
  /** How long the new container may take to turn healthy (default: the environment's health-timeout-seconds). */
  healthTimeoutSeconds?: number;
  /** Makes "the proxy routes to the new container" observable; without it, settleSeconds are waited instead. */
  routeProbe?: RouteProbe;
  /** Without a route probe: how long the proxy gets to notice the new container before the old one stops (default 3 s). */
  settleSeconds?: number;
}

/** What one service's replacement did. */
export interface ServiceSwitch {
  service: string;
  /** The containers that served before (stopped and removed). */
  from: string[];
  /** The container that serves now. */
  to: string;
  imageId: string;
  /** Milliseconds from start until the new container was healthy, and until the proxy routed to it. */
  healthyAfterMs: number;
  routedAfterMs?: number;
  totalMs: number;
}

const POLL_MS = 1000;

/** One service of an environment, and where its steps run and log. */
interface ServiceStep {
  host: Host;
  env: Environment;
  service: string;
  log: Logger;
}

export interface RollingReplaceOptions {
  host: Host;
  env: Environment;
  services: readonly string[];
  log: Logger;
  opts: RollingOptions;
}

/**
 * Replaces each listed service in turn with no failed request. Throws a HealthError naming the
 * service (with the new container's last log lines) when a new container does not turn healthy or
 * the proxy never routes to it: that container is removed and the old one still serves. Services
 * already replaced before a failure stay replaced (the returned list is lost with the throw; the
 * log says which).
 */
export async function rollingReplace({ host, env, services, log, opts }: RollingReplaceOptions): Promise<ServiceSwitch[]> {
  await assertKnownServices(host, env, services);
  const done: ServiceSwitch[] = [];
  for (const service of services) done.push(await replaceOne({ host, env, service, log, opts }));
  return done;
}

/**
 * The in-place switch, for comparison (what deploy and promote do today): compose recreates each
 * listed service's container, so nothing serves between the old one stopping and the new one
 * listening. Waits until the new containers are healthy.
 */
export async function replaceInPlace({
  host,
  env,
  services,
  log,
  healthTimeoutSeconds,
}: Omit<RollingReplaceOptions, 'opts'> & { healthTimeoutSeconds?: number }): Promise<void> {
  await host.run(
    env.compose('up', '-d', '--no-deps', '--no-build', ...services),
    env.composeOptions({ label: `${env.name}: compose up ${services.join(' ')}` }),
  );
  for (const service of services) {
    const running = (await serviceContainers(host, env, service)).filter((c) => c.status === 'running');
    if (running.length !== 1) throw new OperationFailed(`${env.name}: ${running.length} containers of ${service} run after compose up; expected 1`);
    await waitContainerHealthy({ host, env, service, c: running[0], timeoutSeconds: healthTimeoutSeconds ?? env.cfg.healthTimeoutSeconds });
    log.info(`${env.name}: ${service} recreated in place (${running[0].name}, healthy)`);
  }
}

async function replaceOne({ host, env, service, log, opts }: ServiceStep & { opts: RollingOptions }): Promise<ServiceSwitch> {
  const started = Date.now();
  const before = await serviceContainers(host, env, service);
  const old = before.filter((c) => c.status === 'running');
  // A stopped leftover (of a run cut halfway) would be started again by `--scale` instead of a new container.
  const leftovers = before.filter((c) => c.status !== 'running');
  if (leftovers.length) {
    await host.run(
      argv(
        'docker',
        'rm',
        '-f',
        leftovers.map((c) => c.id),
      ),
      { label: `${env.name}: removing stopped ${service} containers`, quiet: true, timeoutSeconds: 120 },
    );
    log.info(`${env.name}: removed ${leftovers.length} stopped container(s) of ${service} (${leftovers.map((c) => c.name).join(', ')})`);
  }
  log.info(`${env.name}: rolling ${service}: starting a new container beside ${old.length ? old.map((c) => c.name).join(', ') : 'none'}`);

  // 1. The new container beside the old ones. --no-recreate keeps the old ones as they are.
  const known = new Set(before.map((c) => c.id));
  let next: ContainerState | undefined;
  let healthyAfterMs: number;
  let routedAfterMs: number | undefined;
  try {
    await host.run(
      env.compose('up', '-d', '--no-deps', '--no-recreate', '--no-build', '--scale', `${service}=${old.length + 1}`, service),
      env.composeOptions({ label: `${env.name}: compose up --scale ${service}=${old.length + 1}` }),
    );
    const fresh = (await serviceContainers(host, env, service)).filter((c) => !known.has(c.id));
    if (fresh.length !== 1) {
      throw new OperationFailed(
        `${env.name}: compose started ${fresh.length} new containers of ${service}, expected 1; the old ones (${old.map((c) => c.name).join(', ') || 'none'}) were left as they are`,
      );
    }
    next = fresh[0];

    // 2. Healthy, and routed to.
    await waitContainerHealthy({ host, env, service, c: next, timeoutSeconds: opts.healthTimeoutSeconds ?? env.cfg.healthTimeoutSeconds });
    healthyAfterMs = Date.now() - started;
    log.info(`${env.name}: rolling ${service}: ${next.name} is healthy after ${(healthyAfterMs / 1000).toFixed(1)} s`);
    if (opts.routeProbe) {
      await waitRouted({ host, env, service, c: next, old, probe: opts.routeProbe, log });
      routedAfterMs = Date.now() - started;
      log.info(`${env.name}: rolling ${service}: the proxy routes to ${next.name}`);
    } else {
      await sleep((opts.settleSeconds ?? 3) * 1000);
    }
  } catch (e) {
    // Whatever compose created goes again; the old containers keep serving, untouched.
    await removeNew({ host, env, service, known, drainSeconds: opts.drainSeconds, log });
    log.error(`${env.name}: rolling ${service} stopped before the switch; ${old.map((c) => c.name).join(', ') || 'nothing'} still serves`);
    throw e;
  }

  // 3. The old containers drain and go: SIGTERM, up to drainSeconds to finish, then KILL.
  if (old.length) {
    const ids = old.map((c) => c.id);
    await host.run(argv('docker', 'stop', '-t', opts.drainSeconds, ids), {
      label: `${env.name}: stopping the old ${service} container`,
      quiet: true,
      timeoutSeconds: opts.drainSeconds + 120,
    });
    await host.run(argv('docker', 'rm', ids), { label: `${env.name}: removing the old ${service} container`, quiet: true, timeoutSeconds: 120 });
  }

  // 4. Back to one container in compose's own count (a no-op on the containers: the new one stays).
  await host.run(
    env.compose('up', '-d', '--no-deps', '--no-recreate', '--no-build', '--scale', `${service}=1`, service),
    env.composeOptions({ label: `${env.name}: compose up --scale ${service}=1`, quiet: true }),
  );
  const after = (await serviceContainers(host, env, service)).filter((c) => c.status === 'running');
  if (after.length !== 1 || after[0].id !== next.id) {
    throw new OperationFailed(
      `${env.name}: after the rolling replacement of ${service}, ${after.map((c) => c.name).join(', ') || 'no container'} runs instead of ${next.name} alone`,
    );
  }
  const totalMs = Date.now() - started;
  log.info(
    `${env.name}: rolling ${service}: ${old.map((c) => c.name).join(', ') || 'nothing'} → ${next.name} (image ${shortId(next.imageId)}) in ${(totalMs / 1000).toFixed(1)} s`,
  );
  return { service, from: old.map((c) => c.id), to: next.id, imageId: next.imageId, healthyAfterMs, routedAfterMs, totalMs };
}

/** Stops (with the drain time: the proxy may have sent it requests) and removes every container of the service not in `known`. */
async function removeNew({ host, env, service, known, drainSeconds, log }: ServiceStep & { known: Set<string>; drainSeconds: number }): Promise<void> {
  try {
    const extra = (await serviceContainers(host, env, service)).filter((c) => !known.has(c.id));
    if (extra.length === 0) return;
    const ids = extra.map((c) => c.id);
    await host.run(stopAndRemove(ids, drainSeconds), {
      label: `${env.name}: removing the new ${service} container`,
      quiet: true,
      timeoutSeconds: drainSeconds + 120,
    });
    log.info(`${env.name}: removed the new ${service} container ${extra.map((c) => c.name).join(', ')}`);
  } catch (e) {
    log.warning(
      `${env.name}: the new ${service} container could not be removed (${e instanceof Error ? e.message : String(e)}); the next rolling replacement removes it if it is stopped`,
    );
  }
}

/** A rolling service the compose files do not define is a config error, found before anything changes. */
async function assertKnownServices(host: Host, env: Environment, services: readonly string[]): Promise<void> {
  if (services.length === 0) return;
  const defined = await env.services(host);
  const unknown = services.filter((s) => !defined.includes(s));
  if (unknown.length) {
    throw new ConfigurationError(
      `promote.rolling names ${unknown.map((s) => `"${s}"`).join(', ')}, which ${env.name}'s compose files do not define (services: ${defined.join(', ')}): correct promote.rolling`,
    );
  }
}

/** The service's containers (one-off `compose run` containers left out), old ones first. */
export async function serviceContainers(host: Host, env: Environment, service: string): Promise<ContainerState[]> {
  const r = await host.run(inspectProjectContainers(env.project, service), {
    label: `listing the ${service} containers`,
    quiet: true,
    timeoutSeconds: 60,
  });
  return parseInspect(r.stdout)
    .filter((c) => !c.oneoff)
    .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

async function inspectOne(host: Host, id: string): Promise<ContainerState | undefined> {
  const r = await host.run(argv('docker', 'inspect', id), { check: false, quiet: true, timeoutSeconds: 60 });
  return r.exitCode === 0 ? parseInspect(r.stdout)[0] : undefined;
}

/** Waits for the container's own healthcheck; a container without one cannot be judged, so it is refused. */
async function waitContainerHealthy({
  host,
  env,
  service,
  c,
  timeoutSeconds,
}: Omit<ServiceStep, 'log'> & { c: ContainerState; timeoutSeconds: number }): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const now = await inspectOne(host, c.id);
    const state = !now ? 'gone' : now.status === 'exited' ? `exited with code ${now.exitCode}` : now.status === 'running' ? now.health : now.status;
    if (now && now.status === 'running' && !now.hasHealthcheck) {
      throw new HealthError(
        `${env.name}: ${service} has no healthcheck, so a rolling replacement cannot tell when its new container may take traffic: add a healthcheck to ${service} (compose file or image)`,
        service,
        'no healthcheck',
        '',
      );
    }
    if (now && now.status === 'running' && now.health === 'healthy') return;
    const failed = !now || now.status === 'exited' || now.status === 'dead' || now.status === 'restarting' || now.health === 'unhealthy';
    if (failed || Date.now() > deadline) {
      const logs = now ? await containerLogs(host, now) : '';
      const why = failed ? `is ${state}` : `is still ${state} after ${timeoutSeconds} s`;
      throw new HealthError(
        `${env.name}: the new ${service} container ${c.name} ${why}${logs ? `; its last lines: ${tailLines(logs, 5)}` : ''}`,
        service,
        state,
        logs,
      );
    }
    await sleep(POLL_MS);
  }
}

/** How a container can be named in the route probe's header: its hostname, its short id, its addresses. */
export interface ContainerNames {
  id: string;
  hostname: string;
  addresses: string[];
}

/** Parses `docker inspect --format '{{.Id}} {{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}'`, one container a line. */
export function parseContainerNames(text: string): ContainerNames[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((w) => w.length >= 2 && /^[0-9a-f]{12,64}$/.test(w[0]))
    .map(([id, hostname, ...addresses]) => ({ id, hostname, addresses: addresses.filter(Boolean) }));
}

/**
 * The names in a response header that prove the new container answered: its short id, its addresses,
 * and its hostname unless an old container has the same one (a fixed `hostname:` in the compose file
 * gives every container of the service the same): a name that also fits an old container proves nothing.
 */
export function routeProof(next: ContainerNames, old: readonly ContainerNames[]): { names: Set<string>; sharedHostname: boolean } {
  const oldNames = new Set(old.flatMap((c) => [shortId(c.id), c.hostname.toLowerCase(), ...c.addresses]));
  const sharedHostname = oldNames.has(next.hostname.toLowerCase());
  const names = new Set([shortId(next.id), ...next.addresses, ...(sharedHostname ? [] : [next.hostname.toLowerCase()])].filter((n) => n && !oldNames.has(n)));
  return { names, sharedHostname };
}

/** Whether a header value (a name, or name:port as Caddy's upstream.hostport gives) is one of `names`. */
export function namesContainer(value: string, names: ReadonlySet<string>): boolean {
  const v = value.trim().toLowerCase();
  return names.has(v) || names.has(v.replace(/:\d+$/, ''));
}

/** Fetches the probe URL from the host until the answering container is the new one. */
async function waitRouted({
  host,
  env,
  service,
  c,
  old,
  probe,
  log,
}: ServiceStep & { c: ContainerState; old: readonly ContainerState[]; probe: RouteProbe }): Promise<void> {
  // The container answers to its hostname, its short id and each of its addresses (a proxy may name the upstream by ip:port).
  const inspect = await host.run(
    argv(
      'docker',
      'inspect',
      '--format',
      '{{.Id}} {{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}',
      c.id,
      old.map((o) => o.id),
    ),
    // An old container gone meanwhile makes inspect fail for it alone; the others are still printed.
    { check: false, quiet: true, timeoutSeconds: 60 },
  );
  const all = parseContainerNames(inspect.stdout);
  const next = all.find((n) => n.id === c.id || c.id.startsWith(n.id) || n.id.startsWith(c.id)) ?? { id: c.id, hostname: '', addresses: [] };
  const { names, sharedHostname } = routeProof(
    next,
    all.filter((n) => n !== next),
  );
  if (sharedHostname) {
    log.info(
      `${env.name}: rolling ${service}: the old and the new container share the hostname ${next.hostname} (a fixed hostname: in the compose file), so only ${[...names].join(' or ')} in ${probe.header} counts as the new one answering`,
    );
  }
  const header = probe.header.toLowerCase();
  const timeout = probe.timeoutSeconds ?? 30;
  const deadline = Date.now() + timeout * 1000;
  const seen = new Set<string>();
  for (;;) {
    // Several requests a round: a proxy balancing over both containers answers from either.
    const r = await host.run(hostScript(PROBE_ROUTING, { URL: probe.url }), {
      check: false,
      quiet: true,
      label: `probing ${probe.url}`,
      timeoutSeconds: 60,
    });
    for (const line of r.stdout.split('\n')) {
      const m = /^([^:\s]+):\s*(.*)$/.exec(line);
      if (!m || m[1].toLowerCase() !== header) continue;
      const named = m[2].trim();
      if (namesContainer(named, names)) return;
      seen.add(named);
    }
    if (Date.now() > deadline) {
      throw new HealthError(
        `${env.name}: the proxy did not route to the new ${service} container ${c.name} within ${timeout} s (${probe.url} answered from ${[...seen].join(', ') || 'no container naming itself in ' + probe.header}); is the proxy finding containers by name or label?`,
        service,
        'not routed',
        '',
      );
    }
    await sleep(500);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** promote's settings for a rolling switch of `env`: drain time, and the route probe through its url when configured. */
export function rollingOptions(config: Config, env: Environment): RollingOptions {
  const probe = config.promote['route-probe'];
  return {
    drainSeconds: config.promote['drain-seconds'],
    routeProbe: probe
      ? { url: `${env.cfg.url.replace(/\/+$/, '')}${probe.path ?? env.cfg.healthPath}`, header: probe.header, timeoutSeconds: probe['timeout-seconds'] }
      : undefined,
  };
}

/**
 * Starts an environment's services from their (already tagged) images: the services in `rolling`
 * with no failed request, the rest recreated in place by `up -d --no-build`. With no rolling service
 * this is just `up -d --no-build --remove-orphans`. Used by promote's swap and by every rollback.
 */
export async function switchServices({
  host,
  env,
  rolling,
  options,
  log,
  label,
}: {
  host: Host;
  env: Environment;
  /** The services replaced with no failed request; the others are recreated in place. */
  rolling: readonly string[];
  options: RollingOptions;
  log: Logger;
  label: string;
}): Promise<void> {
  // One read of the project's containers: a rolling service that runs nothing yet simply starts.
  const running = (await env.containers(host)).filter((c) => c.status === 'running' && !c.oneoff);
  const roll = rolling.filter((s) => running.some((c) => c.service === s));
  if (!roll.length) {
    await upInPlace(host, env, undefined, label);
    return;
  }
  const others = (await env.services(host)).filter((s) => !roll.includes(s));
  if (others.length) await upInPlace(host, env, others, label);
  await rollingReplace({ host, env, services: roll, log, opts: options });
}

/**
 * Recreates changed services in place. docker-compose v1 stops and starts one service after another
 * in a single `up`. Compose v2 first replaces every changed container (stopping each old one) and
 * starts the new ones only when all are replaced: one slow stop (a worker finishing its task, on the
 * api's image so changed with it) keeps every other service down meanwhile. So under v2 each
 * service gets an `up` of its own, in dependency order (`config --services` prints them so): a
 * service is down only for its own stop and start. Without --no-deps, so each call converges the
 * same project and the containers' config hash matches the next plain `up`.
 */
async function upInPlace(host: Host, env: Environment, services: readonly string[] | undefined, label: string): Promise<void> {
  if (env.config['compose-command'] === 'docker-compose') {
    await host.run(env.compose('up', '-d', '--no-build', '--remove-orphans', ...(services ?? [])), env.composeOptions({ label }));
    return;
  }
  for (const service of services ?? (await env.services(host))) {
    await host.run(env.compose('up', '-d', '--no-build', '--remove-orphans', service), env.composeOptions({ label: `${label} ${service}` }));
  }
}
