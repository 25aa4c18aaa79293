/**
 * An operation on one environment: taken under that environment's lock, recorded in its host log
 * as `started` and `finished` (with the outcome), and released on success, failure and cancellation.
 * Before it starts, operations left unfinished by dead runs are reported and marked interrupted.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { RunInfo } from '../infra/actions-io';
import { onCancel } from '../infra/cancel';
import { OperationFailed, errorMessage } from '../infra/errors';
import { argv, hostScript } from '../infra/shell';
import { short } from '../infra/sha';
import type { Host } from '../infra/host';
import { HostLog, pendingDirOf, unfinishedOperations, type LogEvent, type LogRecord, type NewRecord, type Outcome, type RecordFields } from './host-log';
import { EnvironmentLock, describeHolder, type LockHolder } from './lock';
import { ignored, type Logger } from '../infra/logger';
import { utcStamp } from '../infra/stamp';

const PENDING_UNDO = fs.readFileSync(__dirname + '/pending-undo.sh', 'utf8');

export interface Operation {
  id: string;
  env: string;
  log: HostLog;
  /** The environment's host log as it was when the lock was taken (release history, gates…). */
  records: LogRecord[];
  /** Operations of earlier runs that never finished (reported already; the caller may refuse to go on). */
  interrupted: LogRecord[];
  staleHolder?: LockHolder;
  /** Leftovers of cut multi-step host changes that this operation put right before it began. */
  recovered: string[];
  /** Appends a record for this operation to the environment's host log. */
  record: <E extends LogEvent>(event: E, fields: RecordFields<E>) => Promise<LogRecord>;
}

export interface OperationOptions {
  host: Host;
  stateDir: string;
  env: string;
  /** The environment's compose project: a cancel signals work inside its containers, and no other's. */
  project: string;
  /** The project is a stack on a swarm: a cancel signals work inside its task containers on the manager's node, */
  swarm?: boolean;
  /** and on the other nodes' engines (config swarm.nodes' endpoints). */
  endpoints?: readonly string[];
  action: string;
  sha?: string;
  run: RunInfo;
  log: Logger;
  lockTimeoutSeconds: number;
}

export function newOperationId(): string {
  return `${utcStamp()}-${randomBytes(3).toString('hex')}`;
}

export async function underLock<T>(o: OperationOptions, fn: (op: Operation) => Promise<T>, outcomeOf: (result: T) => Outcome = () => 'success'): Promise<T> {
  const id = newOperationId();
  const hostLog = new HostLog(o.host, o.stateDir, o.env);
  const holder: LockHolder = { run: o.run.url, actor: o.run.actor, sha: o.sha ?? o.run.sha, action: o.action, op: id, since: new Date().toISOString() };
  const lock = await EnvironmentLock.acquire({ host: o.host, stateDir: o.stateDir, env: o.env, holder, waitSeconds: o.lockTimeoutSeconds, log: o.log });
  // A cancel from here on first stops this run's remote work and records it, then frees the lock (below).
  lock.leaveCancelToCaller();
  // From here every command runs inside this run's lease (see EnvironmentLock.fence).
  const unfence = o.host.addFence(lock.fence(id, o.run.url));
  let finished = false;
  let cancelling = false;
  const base = { action: o.action, op: id, run: o.run.url, actor: o.run.actor };
  const unregister = onCancel(async () => {
    cancelling = true;
    o.host.halt();
    unfence();
    // The remote work of this run ends before the host log says so and the lock is freed.
    const stopped = await EnvironmentLock.stopWork({
      host: o.host,
      stateDir: o.stateDir,
      env: o.env,
      op: id,
      project: o.project,
      swarm: o.swarm,
      endpoints: o.endpoints,
    }).catch((e) => `could not stop it: ${errorMessage(e)}`);
    o.log.warning(`${o.env}: remote work of this run: ${stopped}`);
    if (!finished) await hostLog.append({ ...base, event: 'finished', outcome: 'cancelled', stopped }).catch(ignored(o.log, 'recording cancelled'));
    await lock.release();
  });
  try {
    let op: Operation;
    try {
      op = await openOperation({ o, hostLog, lock, id, base });
    } catch (e) {
      // Cut short by the cancel (the host is halted): the cancel handler records it and frees the lock.
      if (cancelling) await new Promise(() => undefined);
      throw e;
    }
    let result: T;
    try {
      result = await fn(op);
    } catch (e) {
      if (cancelling) await new Promise(() => undefined); // the cancel handler records the outcome and exits
      finished = true;
      await hostLog
        .append({ ...base, sha: o.sha, event: 'finished', outcome: 'failure', error: o.log.redact(errorMessage(e)).slice(0, 2000) })
        .catch((le) => o.log.warning(`could not record the failure in the host log: ${errorMessage(le)}`));
      throw e;
    }
    finished = true;
    await hostLog.append({ ...base, sha: o.sha, event: 'finished', outcome: outcomeOf(result) });
    return result;
  } finally {
    unregister();
    unfence();
    await lock.release().catch((e) => o.log.warning(`could not release the ${o.env} lock cleanly: ${errorMessage(e)}`));
  }
}

/** The opening checks under the lock: the host log read (and compacted), unfinished operations and cut host changes dealt with, `started` recorded. */
async function openOperation({
  o,
  hostLog,
  lock,
  id,
  base,
}: {
  o: OperationOptions;
  hostLog: HostLog;
  lock: EnvironmentLock;
  id: string;
  base: OperationBase;
}): Promise<Operation> {
  // What cut host changes left is listed beside the read of the log (both only read; acted on below, in order).
  const pending = listPending(o);
  pending.catch(ignored(o.log, 'listing cut host changes (awaited below)'));
  const records = await hostLog.read(o.log).catch(async (e) => {
    await pending.catch(ignored(o.log, 'listing cut host changes'));
    throw e;
  });
  const archived = await hostLog.compact(records).catch((e) => o.log.warning(`could not compact the ${o.env} host log: ${errorMessage(e)}`));
  if (archived)
    o.log.info(
      `The ${o.env} host log had ${records.length} records: archived whole as ${archived}; the live log keeps releases, rollbacks, each commit's last gate, unfinished operations and the newest records.`,
    );
  const interrupted = unfinishedOperations(records);
  for (const r of interrupted) {
    o.log.warning(
      `Unfinished operation on ${o.env}: ${r.action} ${r.op} by ${r.run ?? 'an unknown run'} (sha ${short(String(r.sha ?? '?'))}, started ${r.time}) never finished; ` +
        `its run died or lost the connection. Check the ${o.env} state in this run's summary.`,
    );
    await hostLog.append({ action: r.action, op: r.op, event: 'interrupted', outcome: 'interrupted', run: r.run, reportedBy: o.run.url });
  }
  // Multi-step host changes (a database restore) leave the script that undoes them until they
  // finish; one still there was cut halfway, and is undone before anything else happens.
  const recovered = await undoPending(o, hostLog, base, await pending);
  if (lock.stale && !interrupted.some((r) => r.op === lock.stale?.op)) {
    o.log.warning(`The ${o.env} lock was left by ${describeHolder(lock.stale)}.`);
  }
  const op: Operation = {
    id,
    env: o.env,
    log: hostLog,
    records,
    interrupted,
    recovered,
    staleHolder: lock.stale,
    // One event's fields with the operation's own: TypeScript cannot follow E through the spread.
    record: (event, fields) => hostLog.append({ ...base, sha: o.sha, ...fields, event } as NewRecord),
  };
  await hostLog.append({ ...base, sha: o.sha, event: 'started', staleLock: lock.stale ? lock.stale.run : undefined });
  return op;
}

type OperationBase = { action: string; op: string; run: string; actor: string };

/** One round trip: each leftover undo script with its first line (what it undoes), one a line. */
async function listPending(o: OperationOptions): Promise<string> {
  const list = await o.host.run(hostScript(PENDING_UNDO, { PENDING_DIR: pendingDirOf(o.stateDir, o.env) }), {
    quiet: true,
    label: 'looking for cut host changes',
    timeoutSeconds: 60,
  });
  return list.stdout;
}

async function undoPending(o: OperationOptions, hostLog: HostLog, base: OperationBase, list: string): Promise<string[]> {
  const done: string[] = [];
  for (const line of list.split('\n').filter(Boolean)) {
    const [file, head = ''] = line.split('\t');
    const first = head.replace(/^#\s*/, '').trim();
    o.log.warning(`${o.env}: an earlier run was cut in the middle of a host change (${first}); undoing it now.`);
    try {
      await o.host.run(argv('bash', '-o', 'pipefail', '-e', file), { label: `undoing the cut change ${file}`, timeoutSeconds: 900 });
      // Only once it has run through: a failed undo stays for the next run (or a person) to retry.
      await o.host.run(argv('rm', '-f', file), { label: `undoing the cut change ${file}`, quiet: true, timeoutSeconds: 60 });
      done.push(`${first}: undone`);
      await hostLog.append({ ...base, event: 'recovered', what: first });
    } catch (e) {
      throw new OperationFailed(
        `${o.env}: an earlier run was cut in the middle of a host change (${first}) and undoing it failed: ${errorMessage(e)}. The undo script is ${file} on the host; run it by hand, then retry.`,
      );
    }
  }
  return done;
}
