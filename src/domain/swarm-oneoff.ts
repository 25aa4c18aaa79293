/**
 * A one-off task on a swarm: the command runs in a replicated job of the new image, started from
 * the api service's own spec (its env, mounts, networks, secrets and placement), as `compose run`
 * starts a one-off container of the service on one host. The variables travel in an env file
 * written in a directory only the SSH user can read, removed once the job is created; the job is
 * removed when it has ended, timed out or been cancelled, so no migration runs on unseen.
 */
import { onCancel } from '../infra/cancel';
import { OperationFailed } from '../infra/errors';
import type { CommandResult, Host } from '../infra/host';
import { sh } from '../infra/shell';
import * as swarm from '../infra/swarm';
import type { Environment } from './environment';

export interface SwarmOneOff {
  /** Variables over the service's own (e.g. PGOPTIONS, the rehearsal's database variable). */
  env?: Record<string, string>;
  timeoutSeconds: number;
  label: string;
  /** The one-off's fixed name (`<project>-twinstack-<what>`); the job is `<stack>_twinstack-<what>`. */
  name: string;
  /** The image the task runs: the new release's api image by digest. */
  image: string;
}

/** The job's service name: `<stack>_twinstack-<what>` for the one-off named `<stack>-twinstack-<what>`. */
export function oneOffJobName(stack: string, name: string): string {
  const what = name.startsWith(`${stack}-`) ? name.slice(stack.length + 1) : name;
  return swarm.swarmServiceName(stack, what);
}

/** Runs `command` in a one-off task of `at`'s api service on its swarm; the result as `compose run` would give it. */
export async function swarmOneOff(host: Host, at: Environment, command: readonly string[], o: SwarmOneOff): Promise<CommandResult> {
  const image = swarm.digestRef.safeParse(o.image);
  if (!image.success)
    throw new OperationFailed(`${at.name}: ${o.label}: the one-off task's image must be pinned by digest (repo@sha256:...), not "${o.image}"`);
  const source = await apiSpec(host, at);
  const name = oneOffJobName(at.project, o.name);
  const remove = () => removeJob(host, name);
  // A job of this name left by a cut run goes first: it must not migrate on beside the new one.
  await remove();
  const unregister = onCancel(remove);
  const started = Date.now();
  try {
    const create = await createJob(host, { name, image: image.data, command, source, envFile: '' }, o);
    const waited = await host.run(swarm.jobWait(name), {
      check: false,
      quiet: true,
      label: `${o.label}: waiting for ${name}`,
      timeoutSeconds: o.timeoutSeconds,
    });
    const logs = await host.run(swarm.serviceLogs(name), { check: false, quiet: true, label: `${o.label}: output`, timeoutSeconds: 120 });
    const base = { command: create, signal: null, stdout: logs.stdout, durationMs: Date.now() - started };
    if (waited.timedOut) {
      const why = `${o.label}: the one-off task ${name} did not end within ${o.timeoutSeconds} s; it was removed`;
      return { ...base, exitCode: 124, timedOut: true, stderr: `${logs.stderr}\n${why}` };
    }
    const id = waited.stdout.trim();
    if (waited.exitCode !== 0 || !id)
      throw new OperationFailed(`${at.name}: ${o.label}: waiting for ${name} failed: ${waited.stderr.trim() || `exit ${waited.exitCode}`}`);
    const task = swarm.parseTaskStatus((await host.run(swarm.taskInspect(id), { quiet: true, timeoutSeconds: 60 })).stdout, id);
    return { ...base, ...taskExit(task), stderr: [logs.stderr, taskError(task)].filter(Boolean).join('\n'), timedOut: false };
  } finally {
    await remove();
    unregister();
  }
}

/** The job removed, its live task stopped first; a plain `service rm` when that could not finish (the job must go). */
async function removeJob(host: Host, name: string): Promise<void> {
  const r = await host.run(swarm.jobRemove(name), { check: false, quiet: true, label: `removing ${name}`, timeoutSeconds: 120 });
  if (r.exitCode !== 0 || r.timedOut) await host.run(swarm.serviceRemove(name), { check: false, quiet: true, timeoutSeconds: 60 });
}

/** The spec of `at`'s api service, as the engine runs it. */
async function apiSpec(host: Host, at: Environment): Promise<swarm.OneOffSource> {
  const service = swarm.swarmServiceName(at.project, at.cfg.apiService);
  const r = await host.run(swarm.serviceInspect([service]), { check: false, quiet: true, label: `docker service inspect ${service}`, timeoutSeconds: 60 });
  const source = r.exitCode === 0 ? swarm.parseOneOffSource(r.stdout, service) : undefined;
  if (!source) throw new OperationFailed(`${at.name}: no service ${service} on the swarm to start a one-off task from; deploy ${at.name} first`);
  return source;
}

/**
 * Writes the env file (the spec's variables, o.env over them) in a fresh directory only the SSH
 * user can read, creates the job from it, and removes the directory: the client has read the file
 * by then. Returns the create command (no value in it).
 */
async function createJob(host: Host, job: swarm.OneOffJob, o: SwarmOneOff): Promise<string> {
  const content = swarm.oneOffEnvFile(job.source.Spec.TaskTemplate.ContainerSpec.Env ?? [], o.env ?? {});
  // mktemp -d: mode 0700 whatever the umask, in the SSH user's TMPDIR (/tmp when unset).
  const dir = (await host.run('mktemp -d -t twinstack-oneoff.XXXXXXXX', { quiet: true, timeoutSeconds: 60 })).stdout.trim();
  if (!/^\/[A-Za-z0-9._/-]*\/twinstack-oneoff\.[A-Za-z0-9]+$/.test(dir)) throw new OperationFailed(`mktemp on the manager returned "${dir.slice(0, 80)}"`);
  const removeDir = () => host.run(sh`rm -rf -- ${dir}`, { check: false, quiet: true, timeoutSeconds: 60 }).then(() => undefined);
  const unregister = onCancel(removeDir);
  try {
    const envFile = `${dir}/env`;
    await host.writeFile(envFile, content, 0o600);
    const create = swarm.oneOffCreate({ ...job, envFile });
    await host.run(create, { quiet: true, label: `${o.label}: creating ${job.name}`, timeoutSeconds: 120 });
    return create;
  } finally {
    await removeDir();
    unregister();
  }
}

/** The exit code of an ended task: its container's, or 125 (as `docker run`) when the engine never ran it. */
function taskExit(task: swarm.TaskStatus | undefined): { exitCode: number } {
  if (!task) return { exitCode: 125 };
  if (task.Status.State === 'complete') return { exitCode: task.Status.ContainerStatus?.ExitCode ?? 0 };
  if (task.Status.State === 'failed') return { exitCode: task.Status.ContainerStatus?.ExitCode || 1 };
  return { exitCode: 125 };
}

/** The engine's own words when it ended the task otherwise than by its exit (rejected, shut down), for the caller's error. */
function taskError(task: swarm.TaskStatus | undefined): string {
  if (!task) return 'the one-off task is gone';
  const { State, Err, ContainerStatus } = task.Status;
  if (State === 'complete' || (State === 'failed' && ContainerStatus?.ExitCode)) return '';
  return `task ${State}${Err ? `: ${Err}` : ''}`;
}
