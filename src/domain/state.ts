/**
 * What an environment really runs, read from the host: the checkout's HEAD, every service's
 * container and image id, health, and (when asked) the alembic revision. The host is the source of
 * truth; the host log is its history. Every action that changes or judges an environment starts
 * here and compares what runs with the release on record: a difference is drift.
 */
import * as fs from 'node:fs';
import { currentRevision } from './alembic';
import { parseInspect, type ContainerState, type Environment } from './environment';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import type { Release } from './release';
import { COMPOSE_LABELS, projectLabel, shortId } from '../infra/docker';
import { parseSha, short } from '../infra/sha';
import { hostScript } from '../infra/shell';

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
  time: string;
}

const SEP = '@twinstack-state@';

const OBSERVE = fs.readFileSync(__dirname + '/observe.sh', 'utf8');

/** Reads the environment's observed state in one round trip (two with `alembic`). */
export async function observe(
  host: Host,
  env: Environment,
  opts: { alembic?: false } | { alembic: true; log: Pick<Logger, 'debug'> } = {},
): Promise<ObservedState> {
  const script = hostScript(OBSERVE, { CHECKOUT: env.cfg.checkout, SEP, PROJECT_LABEL: projectLabel(env.project), WORKING_DIR: COMPOSE_LABELS.workingDir });
  const r = await host.run(script, { quiet: true, label: `reading what ${env.name} runs`, timeoutSeconds: 120 });
  const [headPart, inspectPart, dirsPart] = r.stdout.split(`${SEP}\n`);
  const head = parseSha(headPart) ?? '';
  const containers = parseInspect(inspectPart ?? '[]').filter((c) => !c.oneoff);
  const images: Record<string, string> = {};
  for (const c of containers) if (c.service && !images[c.service]) images[c.service] = c.imageId;
  const state: ObservedState = { environment: env.name, head, containers, images, time: new Date().toISOString() };
  const runsFrom = (dirsPart ?? '')
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'))
    .map(([dir, h]) => ({ dir, head: h?.trim() ?? '', services: containers.filter((c) => c.workingDir === dir).map((c) => c.service) }))
    .filter((x) => x.services.length > 0);
  if (runsFrom.length) state.runsFrom = runsFrom;
  // The api container was just read: alembic runs in it directly, and not at all when none runs.
  const api = containers.find((c) => c.service === env.cfg.apiService && c.status === 'running');
  // The revision completes the picture and is not needed for it: a failed read leaves it out.
  if (opts.alembic && api)
    state.alembic = await currentRevision(host, env, { container: api.id }).catch(ignored(opts.log, `reading ${env.name}'s alembic revision`));
  return state;
}

/** How what runs differs from a release: one line per difference, empty when they agree. */
export function drift(observed: ObservedState, release: Pick<Release, 'release' | 'sha' | 'images'> | undefined): string[] {
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

/** The opening of every refusal on drift: what the record says, and how the host differs from it. */
export function driftMessage(environment: string, release: Pick<Release, 'release' | 'sha'>, lines: string[]): string {
  return `${environment} does not run its recorded release ${release.release} (${short(release.sha)}): ${lines.join('; ')}.`;
}

export { shortId };
