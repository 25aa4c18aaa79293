/**
 * What an environment really runs, read from the host: the checkout's HEAD, every service's
 * container and image id, health, and (when asked) the alembic revision. The host is the source of
 * truth; the host log is its history. Every action that changes or judges an environment starts
 * here and compares what runs with the release on record: a difference is drift.
 */
import * as fs from 'node:fs';
import { currentRevision } from './alembic';
import { parseInspect, parseStackInspect, type ContainerState, type Environment } from './environment';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import type { Release } from './release';
import { COMPOSE_LABELS, projectLabel, shortId } from '../infra/docker';
import { parseSha, short } from '../infra/sha';
import { hostScript } from '../infra/shell';
import { parseServiceInspect, parseTasks, stackLabel } from '../infra/swarm';
import { swarmDrift, swarmObservation, type StackDigests, type SwarmObservation } from './swarm-state';

export interface ObservedState {
  environment: string;
  /** The checkout's HEAD commit, or '' when the checkout cannot be read. */
  head: string;
  /** The project's containers (one-off containers of `compose run` left out). */
  containers: ContainerState[];
  /** Service → image id of its container. */
  images: Record<string, string>;
  /** alembic's current revision in the api container, when asked for and readable. */
  alembic?: string;
  /**
   * The directories outside the checkout that the containers were started from (compose's project
   * directory: a release directory of promote.release-dirs), each with its HEAD, or 'missing' when
   * the directory is gone. Their code is what the containers' bind mounts serve.
   */
  runsFrom?: Array<{ dir: string; head: string; services: string[] }>;
  /** On a swarm (target swarm): the stack's services as the manager reports them; `containers` are then its tasks' on the manager's node. */
  swarm?: SwarmObservation;
  time: string;
}

const SEP = '@twinstack-state@';

const OBSERVE = fs.readFileSync(__dirname + '/observe.sh', 'utf8');
const OBSERVE_STACK = fs.readFileSync(__dirname + '/observe-stack.sh', 'utf8');

/** Reads the environment's observed state in one round trip (two with `alembic`). */
export async function observe(
  host: Host,
  env: Environment,
  opts: { alembic?: false } | { alembic: true; log: Pick<Logger, 'debug'> } = {},
): Promise<ObservedState> {
  const state = env.onSwarm ? await observeStack(host, env) : await observeProject(host, env);
  // The api container was just read: alembic runs in it directly, and not at all when none runs.
  const api = state.containers.find((c) => c.service === env.cfg.apiService && c.status === 'running');
  // The revision completes the picture and is not needed for it: a failed read leaves it out.
  if (opts.alembic && api)
    state.alembic = await currentRevision(host, env, { container: { id: api.id, endpoint: api.node?.endpoint } }).catch(
      ignored(opts.log, `reading ${env.name}'s alembic revision`),
    );
  return state;
}

/** Service → image id of its first container. */
function imagesOf(containers: readonly ContainerState[]): Record<string, string> {
  const images: Record<string, string> = {};
  for (const c of containers) if (c.service && !images[c.service]) images[c.service] = c.imageId;
  return images;
}

async function observeProject(host: Host, env: Environment): Promise<ObservedState> {
  const script = hostScript(OBSERVE, { CHECKOUT: env.cfg.checkout, SEP, PROJECT_LABEL: projectLabel(env.project), WORKING_DIR: COMPOSE_LABELS.workingDir });
  const r = await host.run(script, { quiet: true, label: `reading what ${env.name} runs`, timeoutSeconds: 120 });
  const [headPart, inspectPart, dirsPart] = r.stdout.split(`${SEP}\n`);
  const head = parseSha(headPart) ?? '';
  const containers = parseInspect(inspectPart ?? '[]').filter((c) => !c.oneoff);
  const state: ObservedState = { environment: env.name, head, containers, images: imagesOf(containers), time: new Date().toISOString() };
  const runsFrom = (dirsPart ?? '')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'))
    .map(([dir, h]) => ({ dir, head: h?.trim() ?? '', services: containers.filter((c) => c.workingDir === dir).map((c) => c.service) }))
    .filter((x) => x.services.length > 0);
  if (runsFrom.length) state.runsFrom = runsFrom;
  return state;
}

/**
 * observe on a swarm: the stack's service specs and tasks from the manager; its task containers on
 * the manager's node, and with config swarm.nodes also on each other node of a task that it
 * reaches, one round trip a node (the tasks and the manager's hostname say which nodes).
 */
async function observeStack(host: Host, env: Environment): Promise<ObservedState> {
  const script = hostScript(OBSERVE_STACK, { CHECKOUT: env.cfg.checkout, SEP, STACK_FILTER: stackLabel(env.project) });
  const r = await host.run(script, { quiet: true, label: `reading what ${env.name} runs on the swarm`, timeoutSeconds: 120 });
  const [headPart, specPart, tasksPart, inspectPart, herePart] = r.stdout.split(`${SEP}\n`);
  const tasks = parseTasks(tasksPart ?? '');
  const here = (herePart ?? '').trim();
  let containers = parseStackInspect(inspectPart ?? '[]', env.project);
  if (Object.keys(env.config.swarm.nodes).length > 0) {
    // The other nodes with a task that should run (desired Running, as stack-nodes.sh and
    // task-container.sh ask the engine), each read on its own engine: one round trip a node.
    const others = [...new Set(tasks.filter((t) => t.DesiredState === 'Running' && t.Node && t.Node !== here).map((t) => t.Node))];
    if (here) {
      const elsewhere = env.enginesOf(here, others).engines.filter((e) => e.endpoint);
      containers = [...containers, ...(await env.containersOn(host, elsewhere))].sort((a, b) => a.service.localeCompare(b.service));
    } else containers = await env.containers(host);
  }
  const swarm = swarmObservation(env.project, parseServiceInspect(specPart ?? '[]'), tasks);
  return { environment: env.name, head: parseSha(headPart) ?? '', containers, images: imagesOf(containers), swarm, time: new Date().toISOString() };
}

/** A release as drift reads it; on a swarm, its digests per service (`repo@sha256:…`). */
export type RecordedRelease = Pick<Release, 'release' | 'sha' | 'images'> & { digests?: StackDigests };

/** How what runs differs from a release: one line per difference, empty when they agree. */
export function drift(observed: ObservedState, release: RecordedRelease | undefined): string[] {
  if (observed.swarm) return stackDrift(observed, observed.swarm, release);
  const out: string[] = [];
  if (!release) {
    if (observed.containers.length) out.push(`${observed.containers.length} container(s) run, but no release is recorded`);
    return out;
  }
  if (!observed.head) out.push('the checkout has no readable HEAD');
  else if (observed.head !== release.sha) out.push(`the checkout is at ${short(observed.head)}, not at the release's commit ${short(release.sha)}`);
  for (const [service, image] of Object.entries(release.images)) {
    const running = observed.images[service];
    if (!running) out.push(`service ${service} has no container`);
    else if (running !== image.id) out.push(`service ${service} runs image ${shortId(running)}, not the release's ${shortId(image.id)}`);
  }
  for (const service of Object.keys(observed.images)) {
    if (!release.images[service]) out.push(`service ${service} runs, but is not part of the release`);
  }
  // A release directory is what the containers' bind mounts serve: its commit is the code they run.
  for (const r of observed.runsFrom ?? []) {
    const who = r.services.length === 1 ? `service ${r.services[0]} runs` : `services ${r.services.join(', ')} run`;
    if (r.head === 'missing') out.push(`${who} from ${r.dir}, which no longer exists`);
    else if (!r.head) out.push(`${who} from ${r.dir}, which has no readable HEAD`);
    else if (r.head !== release.sha) out.push(`${who} from ${r.dir}, at ${short(r.head)}, not at the release's commit ${short(release.sha)}`);
  }
  return out;
}

/** drift on a swarm: the checkout's HEAD, then each service's digest and running tasks against the release's digests. */
function stackDrift(observed: ObservedState, swarm: SwarmObservation, release: RecordedRelease | undefined): string[] {
  if (!release) return swarm.services.length ? [`${swarm.services.length} service(s) run in stack ${swarm.stack}, but no release is recorded`] : [];
  const out: string[] = [];
  if (!observed.head) out.push('the checkout has no readable HEAD');
  else if (observed.head !== release.sha) out.push(`the checkout is at ${short(observed.head)}, not at the release's commit ${short(release.sha)}`);
  if (!release.digests) out.push(`release ${release.release} records no image digests, so what the stack runs cannot be matched with it; deploy again`);
  else {
    const digests = release.digests;
    // A service deployed by name (no digest on the manager) is in the release's images, not its digests.
    const byName = Object.keys(release.images).filter((s) => !(s in digests));
    out.push(...swarmDrift(swarm, digests, byName));
  }
  return out;
}

/** The opening of every refusal on drift: what the record says, and how the host differs from it. */
export function driftMessage(environment: string, release: Pick<Release, 'release' | 'sha'>, lines: string[]): string {
  return `${environment} does not run its recorded release ${release.release} (${short(release.sha)}): ${lines.join('; ')}.`;
}

export { shortId };
