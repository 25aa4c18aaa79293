/**
 * status: where each environment stands. Reads the host log (current release, last gate, unfinished
 * operations), the lock holder, and the containers' states; changes nothing on the host.
 */
import type { StatusInputs, StatusOutputs } from '../../../action-types';
import type { ActionContext, ActionDefinition, Prepared } from '../runner';
import { ENVIRONMENTS, type EnvironmentName } from '../../domain/config';
import { Environment, type ContainerState } from '../../domain/environment';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import { ignored } from '../../infra/logger';
import { HostLog, latest, unfinishedOperations, type LogRecord } from '../../domain/host-log';
import { EnvironmentLock, describeBusy, describeHolder, type BusyEntry, type LockHolder } from '../../domain/lock';
import { releaseStack } from '../../domain/release';
import { drift, observe } from '../../domain/state';
import { failedTasks, shortDigest, type SwarmObservation } from '../../domain/swarm-state';
import { short } from '../../infra/sha';
import { Summary } from '../../infra/summary';
import { printable } from '../../infra/validate';

export interface EnvironmentStatus {
  environment: EnvironmentName;
  release?: { id: string; sha: string; time: string; run?: string };
  lastGate?: { sha: string; passed: boolean; time: string };
  lock?: LockHolder;
  unfinished: Array<{ action: string; op: string; run?: string; time: string }>;
  containers: ContainerState[];
  /** alembic's revision in the api container, when it answered. */
  alembic?: string;
  containersError?: string;
  /** On a swarm: each service's image, replicas and failed tasks, as the manager reports them. */
  swarm?: SwarmObservation;
  /** The checkout's HEAD on the host. */
  head?: string;
  /** How what runs differs from the recorded release (empty: it runs exactly that release). */
  drift: string[];
  /** A deploy that failed after the current release was recorded. */
  failedDeploy?: { sha: string; stage: string; time: string; error: string };
  /** Remote work of earlier runs still running (their process groups hold the busy file). */
  remoteWork: BusyEntry[];
  /** Where a rollback without release-id would go. */
  rollbackTarget?: string;
}

interface Plan {
  environments: EnvironmentName[];
}

export async function readStatus(ctx: ActionContext<StatusInputs, StatusOutputs, Plan>, name: EnvironmentName): Promise<EnvironmentStatus> {
  const { host, config, log } = ctx;
  const records: LogRecord[] = await new HostLog(host, config['state-dir'], name).read(log);
  const rel = latest(records, 'release');
  const gate = latest(records, 'gate');
  const failed = latest(records, 'release-failed');
  const stack = releaseStack(records);
  const status: EnvironmentStatus = {
    environment: name,
    release: rel ? { id: String(rel.release), sha: String(rel.sha), time: rel.time, run: rel.run } : undefined,
    lastGate: gate ? { sha: String(gate.sha), passed: gate.passed === true, time: gate.time } : undefined,
    lock: await EnvironmentLock.readHolder(host, config['state-dir'], name),
    unfinished: unfinishedOperations(records).map((r) => ({ action: r.action, op: r.op, run: r.run, time: r.time })),
    containers: [],
    drift: [],
    remoteWork: [],
    rollbackTarget: stack.target?.release,
  };
  if (failed && (!rel || failed.time > rel.time)) {
    status.failedDeploy = { sha: failed.sha ?? '', stage: failed.stage, time: failed.time, error: failed.error ?? '' };
  }
  const work = await EnvironmentLock.busyWork(host, config['state-dir'], name).catch(ignored(log, `reading ${name}'s busy file`));
  if (work?.busy) status.remoteWork = work.entries.length ? work.entries : [{ pgid: 0, op: '', run: '', label: 'unrecorded process', since: '' }];
  try {
    const observed = await observe(host, new Environment(name, config), { alembic: true, log });
    status.containers = observed.containers;
    status.head = observed.head;
    status.alembic = observed.alembic;
    if (observed.swarm) status.swarm = observed.swarm;
    status.drift = drift(observed, stack.current);
  } catch (e) {
    status.containersError = errorMessage(e);
  }
  return status;
}

export function statusSummary(all: EnvironmentStatus[]): Summary {
  const s = new Summary().heading('twinstack status');
  s.table(
    ['environment', 'release on record', 'sha', 'since', 'runs the release?', 'containers', 'lock'],
    all.map((e) => [
      e.environment,
      e.release?.id ?? 'none recorded',
      e.release ? short(e.release.sha) : '',
      e.release?.time ?? '',
      e.containersError
        ? 'unknown'
        : e.drift.length
          ? `NO: drifted (${e.drift.length} difference${e.drift.length === 1 ? '' : 's'}, below; checkout at ${e.head ? short(e.head) : '?'})`
          : 'yes',
      e.containersError
        ? 'unknown (docker did not answer)'
        : e.swarm
          ? tasksRunning(e.swarm)
          : `${e.containers.filter((c) => c.status === 'running').length}/${e.containers.length} running`,
      e.lock ? `held by ${describeHolder(e.lock)}` : 'free',
    ]),
  );
  for (const e of all) {
    s.heading(e.environment, 3);
    const notes: string[] = [];
    if (e.drift.length) {
      notes.push(
        `🚨 **drift**: the record says ${e.release ? `release \`${e.release.id}\` (\`${short(e.release.sha)}\`)` : 'no release'}, but the host runs something else: ${e.drift.join('; ')}. ` +
          `gate and promote refuse ${e.environment} until a deploy or a rollback settles it.`,
      );
    }
    for (const w of e.remoteWork) notes.push(`⏳ remote work still running: ${describeBusy(w)}; the next run waits for it`);
    if (e.failedDeploy)
      notes.push(`last deploy FAILED: \`${short(e.failedDeploy.sha)}\` at stage ${e.failedDeploy.stage}, ${e.failedDeploy.time}: ${e.failedDeploy.error}`);
    if (e.rollbackTarget) notes.push(`a rollback without release-id goes to \`${e.rollbackTarget}\``);
    if (e.alembic !== undefined) notes.push(`database schema at alembic revision \`${e.alembic || 'none'}\` (read in the ${e.environment} api container)`);
    if (e.lastGate) notes.push(`last gate: ${e.lastGate.passed ? 'passed' : 'FAILED'} for ${short(e.lastGate.sha)} at ${e.lastGate.time}`);
    for (const u of e.unfinished)
      notes.push(
        `⚠️ unfinished ${u.action} (${u.op}) started ${u.time} by ${u.run ?? 'unknown run'}: the run died; run status again after the next action, or deploy/rollback to settle it`,
      );
    if (e.containersError) notes.push(`containers: ${e.containersError}`);
    s.list(notes);
    if (e.swarm) swarmTables(s, e.swarm);
    if (e.containers.length) {
      s.table(
        ['service', 'container', 'state', 'health', 'image'],
        e.containers.map((c) => [c.service, c.name, c.status + (c.status === 'exited' ? ` (${c.exitCode})` : ''), c.health, c.image]),
      );
    }
  }
  return s;
}

/** On a swarm the engine keeps the containers of replaced tasks: what counts is the tasks running against the replicas wanted. */
function tasksRunning(swarm: SwarmObservation): string {
  const running = swarm.services.reduce((n, v) => n + v.replicas.running, 0);
  const wanted = swarm.services.reduce((n, v) => n + (v.replicas.wanted ?? v.replicas.running), 0);
  return `${running}/${wanted} tasks running`;
}

/** A stack's services (digest, replicas, last update) and the tasks that failed, with the engine's error. */
function swarmTables(s: Summary, swarm: SwarmObservation): void {
  s.table(
    ['service', 'image', 'digest', 'replicas running', 'last update'],
    swarm.services.map((v) => [
      v.service,
      v.image.replace(/@.*$/, ''),
      shortDigest(v.digest),
      `${v.replicas.running}/${v.replicas.wanted ?? 'global'}`,
      v.update ? `${v.update.state}${v.update.message ? `: ${v.update.message}` : ''}` : '',
    ]),
  );
  const failed = swarm.services.flatMap((v) => failedTasks(v).map((t) => [v.service, t.id.slice(0, 12), t.node, t.state, t.error, shortDigest(t.digest)]));
  if (failed.length) s.table(['service', 'failed task', 'node', 'state', 'error', 'digest'], failed);
}

export const statusAction: ActionDefinition<StatusInputs, StatusOutputs, Plan> = {
  name: 'status',
  prepare(ctx: Prepared<StatusInputs, StatusOutputs>): Plan {
    const raw = ctx.io.defaulted('environments');
    const names = raw.split(/[\s,]+/).filter(Boolean);
    for (const n of names) {
      if (!(ENVIRONMENTS as readonly string[]).includes(n)) {
        throw new ConfigurationError(`input environments: "${printable(n)}" is not an environment; use prod, dev or both`);
      }
    }
    return { environments: names as EnvironmentName[] };
  },
  async execute(ctx) {
    const all: EnvironmentStatus[] = [];
    for (const name of ctx.plan.environments) all.push(await readStatus(ctx, name));
    for (const e of all) {
      ctx.log.info(
        `${e.environment}: ${e.release ? `release ${e.release.id} (${short(e.release.sha)})` : 'no release recorded'}; ` +
          `${e.containersError ? 'containers unknown' : `${e.containers.filter((c) => c.status === 'running').length}/${e.containers.length} containers running`}` +
          `${e.drift.length ? `; DRIFT: ${e.drift.join('; ')}` : ''}` +
          `${e.lock ? `; locked by ${describeHolder(e.lock)}` : ''}`,
      );
    }
    for (const e of all) if (e.release) ctx.io.output(`${e.environment}-release`, e.release.id);
    ctx.io.output('json', JSON.stringify(all));
    await ctx.io.summary(statusSummary(all).toMarkdown());
  },
};
