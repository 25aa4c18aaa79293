/**
 * A release on a Docker Swarm (an environment whose target is swarm): a set of image digests, one
 * per service (`repo@sha256:…`). Deploy builds the images on the manager with the environment's
 * compose files, pushes them to config's swarm.registry and reads their digests (buildAndPush);
 * then deploys the stack with those digests pinned and watches the engine replace the tasks
 * (deployRelease). The engine does the rolling update itself (update_config), and rolls back by
 * itself when a new task fails (failure_action: rollback): the watch only reports what it did, per
 * service. A rollback deploys an earlier release's digests the same way.
 */
import * as path from 'node:path';
import type { EnvContext } from './environment';
import { SECRET_KEY, parseEnvFile } from './env-file';
import { defaultImageName, mergedBuilds, type ServiceBuild } from './ship';
import type { ServiceImage } from './release';
import { imageIdsCommand } from '../infra/docker';
import { ConfigurationError, OperationFailed } from '../infra/errors';
import * as swarm from '../infra/swarm';

/** A swarm release: each service's image, pinned by digest. */
export type SwarmRelease = Record<string, swarm.DigestRef>;

export interface BuiltRelease {
  images: SwarmRelease;
  /** The registry names (`<registry>/<repository>:<tag>`) each built image was pushed as. */
  pushed: Record<string, string>;
  /** Services whose image has no digest on the manager (never pushed nor pulled): deployed by name, as they are. */
  unpinned: Array<{ service: string; image: string }>;
}

/** The overlay twinstack writes beside the base compose file, deployed after the environment's own files. */
export const DIGESTS_FILE = '.twinstack-digests.yml';

/**
 * Builds the environment's images on the manager (compose build with its files and env file), tags
 * each built image `<registry>/<repository>:<tag>`, pushes it and reads its digest. Images a service
 * uses without building are pinned by the digest they were pulled or pushed with, when they have one.
 */
export async function buildAndPush(ctx: EnvContext, tag: string): Promise<BuiltRelease> {
  const registry = registryOf(ctx);
  const services = await mergedBuilds(ctx.host, ctx.env);
  await composeBuild(ctx, []);
  return pushOrPin(ctx, { services, registry, tag });
}

/**
 * buildAndPush for some services only (promote's rebuilt ones on a swarm prod, built with prod's
 * files): those that build are built, pushed and pinned; the others are pinned by the digest the
 * manager knows, or deployed by name. `services`: their build definitions from the merged configuration.
 */
export async function buildAndPushServices(ctx: EnvContext, o: { tag: string; services: ReadonlyMap<string, ServiceBuild> }): Promise<BuiltRelease> {
  const registry = registryOf(ctx);
  const builds = [...o.services.values()].filter((s) => s.build).map((s) => s.service);
  if (builds.length) await composeBuild(ctx, builds);
  return pushOrPin(ctx, { services: o.services, registry, tag: o.tag });
}

function registryOf({ config, env }: EnvContext): string {
  const registry = config.swarm.registry;
  if (!registry) throw new ConfigurationError(`environments.${env.name}.target is swarm: set swarm.registry to the registry the nodes pull from`);
  return registry;
}

/** compose build on the manager with the environment's files and env file: every service, or the ones named. */
async function composeBuild(ctx: EnvContext, services: readonly string[]): Promise<void> {
  const { host, env, log } = ctx;
  log.startGroup(`${env.name}: compose build${services.length ? ` ${services.join(' ')}` : ''}`);
  try {
    await host.run(env.compose('build', ...services), env.composeOptions({ label: `${env.name} compose build`, timeoutSeconds: 3600 }));
  } finally {
    log.endGroup();
  }
}

/** Each built service pushed and pinned by its new digest; each other one pinned by the digest it has, or left unpinned. */
async function pushOrPin(ctx: EnvContext, o: { services: ReadonlyMap<string, ServiceBuild>; registry: string; tag: string }): Promise<BuiltRelease> {
  const { host, config, env, log } = ctx;
  const { registry, tag } = o;
  const out: BuiltRelease = { images: {}, pushed: {}, unpinned: [] };
  for (const [service, s] of o.services) {
    const image = s.image ?? defaultImageName(env.project, service, config['compose-command']);
    if (s.build) {
      out.pushed[service] = pushedName({ registry, project: env.project, service, image, tag });
      out.images[service] = await pushImage(ctx, { image, remote: out.pushed[service] });
      continue;
    }
    const r = await host.run(swarm.repoDigests(image), { check: false, quiet: true, timeoutSeconds: 120 });
    const digest = r.exitCode === 0 ? swarm.pinnedDigest(r.stdout, image) : undefined;
    if (digest) out.images[service] = digest;
    else out.unpinned.push({ service, image });
  }
  for (const u of out.unpinned)
    log.warning(`${env.name}: ${u.service} runs ${u.image}, which the manager has no digest of (never pushed or pulled): it is deployed by name, not pinned`);
  return out;
}

/** Where a built image goes: its own repository when it is named in the registry already, else `<project>-<service>`. */
function pushedName({ registry, project, service, image, tag }: { registry: string; project: string; service: string; image: string; tag: string }): string {
  const repo = swarm.imageRepository(image);
  const name = repo.startsWith(`${registry}/`) ? repo.slice(registry.length + 1) : `${project}-${service}`;
  return swarm.registryRef(registry, name, tag);
}

async function pushImage(ctx: EnvContext, { image, remote }: { image: string; remote: string }): Promise<swarm.DigestRef> {
  const { host, log } = ctx;
  await host.run(swarm.tagForRegistry(image, remote), { quiet: true, label: `tagging ${image} as ${remote}`, timeoutSeconds: 120 });
  await host.run(swarm.push(remote), { quiet: true, label: `pushing ${remote}`, timeoutSeconds: 3600 });
  const r = await host.run(swarm.repoDigests(remote), { quiet: true, label: `reading the digest of ${remote}`, timeoutSeconds: 120 });
  const repo = swarm.imageRepository(remote);
  const digest = swarm.parseRepoDigests(r.stdout, repo);
  if (!digest) throw new OperationFailed(`${remote} was pushed but the manager knows no digest of it in ${repo}`);
  log.info(`pushed ${remote} as ${digest}`);
  return digest;
}

/**
 * What the release record keeps of each service: the name it is deployed by (the digest, or the
 * image's own name when unpinned), the image id on the manager (what its containers report), and
 * the registry name it was pushed as.
 */
export async function recordedImages(ctx: EnvContext, built: BuiltRelease): Promise<Record<string, ServiceImage>> {
  const entries = [
    ...Object.entries(built.images).map(([service, ref]) => ({ service, name: ref, tag: built.pushed[service] ?? ref })),
    ...built.unpinned.map((u) => ({ service: u.service, name: u.image, tag: u.image })),
  ];
  if (entries.length === 0) return {};
  const r = await ctx.host.run(imageIdsCommand(entries.map((e) => e.name)), {
    quiet: true,
    label: 'reading the image ids of the release',
    timeoutSeconds: 120,
  });
  const ids = r.stdout.split('\n').filter((l) => l.trim() !== '');
  if (ids.length !== entries.length) throw new OperationFailed(`the manager printed ${ids.length} image ids for the release's ${entries.length} images`);
  return Object.fromEntries(entries.map((e, i) => [e.service, { name: e.name, id: ids[i].trim(), tag: e.tag }]));
}

/** What the engine says of one service once the watch ends. */
export interface ServiceReport {
  /** The compose service name. */
  service: string;
  /** The image the service's spec names now (after a rollback by the engine, the old one). */
  image: string;
  /** The digest the release asked for; undefined for a service deployed by name. */
  digest?: string;
  replicas: { wanted: number; running: number };
  /** The update the engine ran for this deploy, if any. */
  update?: { state: string; message: string };
  /** Tasks started for this deploy that failed, with the engine's error. */
  failed: Array<{ task: string; node: string; state: string; error: string }>;
  /** Exactly the wanted replicas run and none is starting or stopping: after a rollback, the old release serves again. */
  steady: boolean;
  /** What the engine said of the update while the watch ran (why it rolled back, then that it did). */
  messages?: string[];
  verdict: 'converged' | 'waiting' | 'failed';
}

/** A swarm deploy that the engine rolled back, or that did not converge in time: the message names every service, task and error. */
export class SwarmDeployFailed extends OperationFailed {
  constructor(
    message: string,
    readonly services: ServiceReport[],
  ) {
    super(message);
  }
}

/** What ran before the deploy: its tasks are not this deploy's, and an update already reported is not this deploy's update. */
interface Baseline {
  taskIds: Set<string>;
  updateStarted: Map<string, string>;
}

interface StackSnapshot {
  services: swarm.ServiceStatus[];
  tasks: swarm.TaskLine[];
}

async function readStack(ctx: EnvContext): Promise<StackSnapshot> {
  const { host, env } = ctx;
  const list = await host.run(swarm.serviceList(env.project), { quiet: true, label: `listing ${env.name}'s services`, timeoutSeconds: 120 });
  const names = swarm.parseServiceList(list.stdout).map((s) => s.Name);
  if (names.length === 0) return { services: [], tasks: [] };
  const spec = await host.run(swarm.serviceInspect(names), { quiet: true, label: `inspecting ${env.name}'s services`, timeoutSeconds: 120 });
  const ps = await host.run(swarm.serviceTasks(names), { quiet: true, label: `listing ${env.name}'s tasks`, timeoutSeconds: 120 });
  return { services: swarm.parseServiceStatus(spec.stdout), tasks: swarm.parseTasks(ps.stdout) };
}

function baselineOf(s: StackSnapshot): Baseline {
  const updateStarted = new Map<string, string>();
  for (const svc of s.services) if (svc.UpdateStatus?.StartedAt) updateStarted.set(svc.Spec.Name, svc.UpdateStatus.StartedAt);
  return { taskIds: new Set(s.tasks.map((t) => t.ID)), updateStarted };
}

/** The tasks of one service among `docker service ps`'s lines (`<stack>_<service>.<slot or node>`; older tasks indented). */
export function tasksOf(tasks: readonly swarm.TaskLine[], serviceName: string): swarm.TaskLine[] {
  return tasks.filter((t) => t.Name.replace(/^[^A-Za-z0-9]+/, '').startsWith(`${serviceName}.`));
}

const digestOf = (ref: string | undefined) => (ref ? swarm.taskDigest(ref) : undefined);

/**
 * One service judged against the release: converged when the engine's update for this deploy (if
 * any) completed and exactly the wanted replicas run, each on the wanted digest (running means
 * healthy: the engine reports a task with a healthcheck running only once it is healthy); failed
 * when the engine paused the update or rolled it back; waiting otherwise.
 */
export function judgeService(o: {
  stack: string;
  svc: swarm.ServiceStatus;
  tasks: readonly swarm.TaskLine[];
  release: SwarmRelease;
  baseline: Baseline;
}): ServiceReport {
  const name = o.svc.Spec.Name;
  const service = name.startsWith(`${o.stack}_`) ? name.slice(o.stack.length + 1) : name;
  const own = tasksOf(o.tasks, name);
  const desired = own.filter((t) => t.DesiredState === 'Running');
  const running = desired.filter((t) => t.CurrentState.startsWith('Running'));
  const wanted = o.svc.Spec.Mode?.Global ? Math.max(desired.length, 1) : (o.svc.Spec.Mode?.Replicated?.Replicas ?? 1);
  const digest = o.release[service];
  const want = digestOf(digest);
  const onDigest = (image: string) => !want || swarm.taskDigest(image) === want;
  const status = o.svc.UpdateStatus;
  const ours = status?.StartedAt && status.StartedAt !== o.baseline.updateStarted.get(name);
  const update = ours ? { state: status.State ?? '', message: status.Message ?? '' } : undefined;
  // A task of this deploy that ended: failed, rejected, or stopped by the engine as unhealthy (its
  // process may then exit 0, which the engine records as Complete with no error).
  const failed = own
    .filter((t) => !o.baseline.taskIds.has(t.ID) && onDigest(t.Image))
    .filter((t) => t.Error !== '' || /^(Failed|Rejected)/.test(t.CurrentState) || (t.DesiredState !== 'Running' && !t.CurrentState.startsWith('Running')))
    .map((t) => ({ task: t.ID.slice(0, 12), node: t.Node, state: t.CurrentState.replace(/ [^ ]+ \w+ ago$/, ''), error: t.Error }));
  // A task the engine told to stop may still run (and answer) through its stop grace period, after
  // the update says completed: the deploy is not done until it has stopped.
  const stopping = own.filter((t) => t.DesiredState !== 'Running' && t.CurrentState.startsWith('Running'));
  const steady = desired.length === wanted && running.length === wanted && stopping.length === 0;
  const base = { service, image: o.svc.Spec.TaskTemplate.ContainerSpec.Image, digest, replicas: { wanted, running: running.length }, update, failed, steady };
  if (update && ['paused', 'rollback_completed', 'rollback_paused'].includes(update.state)) return { ...base, verdict: 'failed' };
  if (update && update.state !== 'completed') return { ...base, verdict: 'waiting' };
  const done = steady && running.every((t) => onDigest(t.Image)) && onDigest(base.image);
  return { ...base, verdict: done ? 'converged' : 'waiting' };
}

/** One line per service that did not converge: its update, its replicas, its failed tasks and their errors. */
export function describeReports(reports: readonly ServiceReport[]): string {
  return reports
    .filter((r) => r.verdict !== 'converged')
    .map((r) => {
      const said = [...new Set([...(r.messages ?? []), r.update?.message ?? ''])].filter(Boolean);
      const update = r.update ? `update ${r.update.state}${said.length ? ` (${said.join('; ')})` : ''}, ` : '';
      const tasks = r.failed.length
        ? `; tasks of this release that ended: ${r.failed.map((t) => `${t.task} on ${t.node} ${t.state}${t.error ? `: ${t.error}` : ''}`).join(', ')}`
        : '';
      return `${r.service}: ${update}${r.replicas.running}/${r.replicas.wanted} running, runs ${r.image}${tasks}`;
    })
    .join('; ');
}

export interface DeployOptions {
  release: SwarmRelease;
  /** What the watch may take, by default the environment's health-timeout-seconds. */
  timeoutSeconds?: number;
  /** How often the engine is asked (ms). */
  pollMs?: number;
}

/**
 * Deploys the release: the digest overlay written beside the base compose file, then `docker stack
 * deploy` of the environment's files and the overlay, its env file's variables on standard input;
 * then watches the engine until every service converged (the reports), or the engine rolled back
 * or paused an update, or the time ran out (SwarmDeployFailed naming the services, tasks and errors).
 */
export async function deployRelease(ctx: EnvContext, o: DeployOptions): Promise<ServiceReport[]> {
  const { host, env, log } = ctx;
  const dir = env.cfg.checkout;
  const overlay = path.posix.join(path.posix.dirname(env.cfg.composeFiles[0]), DIGESTS_FILE);
  const baseline = baselineOf(await readStack(ctx));
  await host.writeFile(path.posix.join(dir, overlay), swarm.digestOverlay(o.release), 0o644);
  const values = parseEnvFile((await host.readFile(path.posix.join(dir, env.cfg.envFile))).toString('utf8'));
  for (const [key, value] of values) if (SECRET_KEY.test(key) && value.length >= 6) log.secret(value);
  log.startGroup(`${env.name}: docker stack deploy ${env.project}`);
  try {
    await host.run(swarm.stackDeploy({ dir, files: [...env.cfg.composeFiles, overlay], stack: env.project }), {
      stdin: swarm.envStdin(values),
      label: `${env.name} stack deploy`,
      timeoutSeconds: 600,
    });
  } finally {
    log.endGroup();
  }
  return watchStack(ctx, { ...o, baseline });
}

/** Polls the engine until every service converged, or one failed and none is still moving, or the time is up. */
async function watchStack(ctx: EnvContext, o: DeployOptions & { baseline: Baseline }): Promise<ServiceReport[]> {
  const { env, log } = ctx;
  const timeoutSeconds = o.timeoutSeconds ?? env.cfg.healthTimeoutSeconds;
  const deadline = Date.now() + timeoutSeconds * 1000;
  let said = '';
  const messages = new Map<string, string[]>();
  for (;;) {
    const snap = await readStack(ctx);
    const reports = snap.services.map((svc) => judgeService({ stack: env.project, svc, tasks: snap.tasks, release: o.release, baseline: o.baseline }));
    for (const r of reports) {
      const seen = messages.get(r.service) ?? [];
      if (r.update?.message && !seen.includes(r.update.message)) messages.set(r.service, [...seen, r.update.message]);
      r.messages = messages.get(r.service);
    }
    const missing = Object.keys(o.release).filter((s) => !reports.some((r) => r.service === s));
    const progress = reports.map((r) => `${r.service} ${r.update?.state ?? r.verdict} ${r.replicas.running}/${r.replicas.wanted}`).join(', ');
    if (progress !== said) log.info(`${env.name}: ${progress || 'no services yet'}`);
    said = progress;
    if (missing.length === 0 && reports.length && reports.every((r) => r.verdict === 'converged')) return reports;
    if (
      reports.some((r) => r.verdict === 'failed') &&
      !reports.some((r) => r.update && !['completed', 'paused', 'rollback_completed', 'rollback_paused'].includes(r.update.state)) &&
      // A rolled-back service is reported once its old tasks serve again (or at the deadline, as it is).
      reports.every((r) => r.update?.state !== 'rollback_completed' || r.steady)
    ) {
      const rolledBack = reports.some((r) => r.update?.state === 'rollback_completed');
      throw new SwarmDeployFailed(
        `${env.name}: the swarm update failed${rolledBack ? ' and the engine rolled it back' : ''}: ${describeReports(reports)}`,
        reports,
      );
    }
    if (Date.now() > deadline) {
      const absent = missing.length ? `; not in the stack: ${missing.join(', ')}` : '';
      throw new SwarmDeployFailed(`${env.name}: the stack did not converge in ${timeoutSeconds}s: ${describeReports(reports)}${absent}`, reports);
    }
    await new Promise((r) => setTimeout(r, o.pollMs ?? 2000));
  }
}

/** Returns the environment to an earlier release: its digests deployed and watched as any release's. */
export async function rollbackRelease(ctx: EnvContext, o: DeployOptions & { from?: string; to: string }): Promise<ServiceReport[]> {
  ctx.log.info(`${ctx.env.name}: rolling back${o.from ? ` from ${o.from}` : ''} to ${o.to}: deploying its digests`);
  return deployRelease(ctx, o);
}
