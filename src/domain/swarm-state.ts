/**
 * What a stack runs, as the swarm's manager reports it: per service, the image its spec names
 * (pinned by digest once twinstack deployed it), the replicas it wants and runs, and its tasks'
 * states and errors. A swarm release is a digest per service (`repo@sha256:…`); drift is a
 * service whose spec or running tasks differ from it. Pure: state.ts reads the engine.
 */
import { imageRepo, stackServiceName, taskDigest, taskService, type ServiceInspect, type TaskLine } from '../infra/swarm';

export interface SwarmTask {
  id: string;
  /** The node's hostname. */
  node: string;
  /** What the engine wants of it (Running, Shutdown) and what it is (`Running 2 minutes ago`, `Failed …`). */
  desired: string;
  state: string;
  /** The engine's error for the task ('' when none): a failed start, a failed healthcheck. */
  error: string;
  /** The digest the task was given (`sha256:…`), when its image names one. */
  digest?: string;
}

export interface SwarmServiceState {
  /** The stack's name of the service (the swarm service's name without `<stack>_`). */
  service: string;
  /** The image its spec names, as the engine keeps it (`repo:tag@sha256:…` once resolved). */
  image: string;
  /** The spec's digest (`sha256:…`); undefined when the image is not pinned. */
  digest?: string;
  /** Replicas the spec asks for (undefined for a global service) and tasks running now. */
  replicas: { wanted?: number; running: number };
  /** Every task the engine keeps for the service, old ones too, as it lists them (newest of each slot first). */
  tasks: SwarmTask[];
  /** The last update or rollback, as the engine reports it (`rollback_completed`, `paused` …). */
  update?: { state: string; message: string };
}

export interface SwarmObservation {
  stack: string;
  services: SwarmServiceState[];
}

/** A release on a swarm: service → `repo@sha256:…` (what deploy pushed, what promote deploys). */
export type StackDigests = Readonly<Record<string, string>>;

const running = (t: SwarmTask) => t.desired === 'Running' && t.state.startsWith('Running');

/** The stack's services from `docker service inspect` and their tasks from `docker service ps`. */
export function swarmObservation(stack: string, specs: readonly ServiceInspect[], tasks: readonly TaskLine[]): SwarmObservation {
  const services = specs.map((s): SwarmServiceState => {
    const own = tasks
      .filter((t) => taskService(t.Name) === s.Spec.Name)
      .map((t) => ({ id: t.ID, node: t.Node, desired: t.DesiredState, state: t.CurrentState, error: t.Error, digest: taskDigest(t.Image) }));
    const image = s.Spec.TaskTemplate.ContainerSpec.Image;
    const state: SwarmServiceState = {
      service: stackServiceName(stack, s.Spec.Name) ?? s.Spec.Name,
      image,
      digest: taskDigest(image),
      replicas: { wanted: s.Spec.Mode?.Global ? undefined : (s.Spec.Mode?.Replicated?.Replicas ?? 1), running: own.filter(running).length },
      tasks: own,
    };
    if (s.UpdateStatus?.State) state.update = { state: s.UpdateStatus.State, message: s.UpdateStatus.Message ?? '' };
    return state;
  });
  return { stack, services: services.sort((a, b) => a.service.localeCompare(b.service)) };
}

/** `sha256:` and 12 hex digits: how a digest is shown. */
export function shortDigest(digest: string | undefined): string {
  return digest ? digest.slice(0, 'sha256:'.length + 12) : 'no digest';
}

/** How a service differs from its recorded `repo@sha256:…`: one line, or undefined when it runs exactly that. */
function serviceDrift(s: SwarmServiceState, recorded: string): string | undefined {
  const want = taskDigest(recorded);
  if (!s.digest) return `service ${s.service} runs ${s.image}, not pinned by digest (the release's is ${shortDigest(want)})`;
  if (s.digest !== want || imageRepo(s.image) !== imageRepo(recorded))
    return `service ${s.service} runs ${imageRepo(s.image)}@${shortDigest(s.digest)}, not the release's ${imageRepo(recorded)}@${shortDigest(want)}`;
  const live = s.tasks.filter(running);
  if (s.replicas.wanted !== 0 && !live.length) return `service ${s.service} has no running task`;
  const other = live.filter((t) => t.digest !== want);
  if (other.length)
    return `service ${s.service}: ${other.length} of ${live.length} running tasks run ${shortDigest(other[0].digest)}, not the release's ${shortDigest(want)}`;
  return undefined;
}

/**
 * How what the stack runs differs from a release's digests: one line per difference, empty when they
 * agree. `byName`: the release's services deployed by image name (unpinned), part of it all the same.
 */
export function swarmDrift(observed: SwarmObservation, digests: StackDigests, byName: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const [service, ref] of Object.entries(digests).sort(([a], [b]) => a.localeCompare(b))) {
    const s = observed.services.find((x) => x.service === service);
    const line = s ? serviceDrift(s, ref) : `service ${service} is not deployed in stack ${observed.stack}`;
    if (line) out.push(line);
  }
  for (const s of observed.services)
    if (!(s.service in digests) && !byName.includes(s.service)) out.push(`service ${s.service} runs, but is not part of the release`);
  return out;
}

/** The tasks of a service that failed or were rejected, newest first as the engine lists them: what status shows. */
export function failedTasks(s: SwarmServiceState): SwarmTask[] {
  return s.tasks.filter((t) => t.error !== '' || /^(Failed|Rejected)\b/.test(t.state));
}
