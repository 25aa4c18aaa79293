/**
 * The per-environment lock on the host. A `flock` held by a process inside our SSH session: if the
 * run dies or loses its connection, sshd ends the session, the process exits and the kernel drops
 * the lock, so a dead run can never block the host for ever. The holder file beside it says who
 * holds the lock; a holder file found by the next run that takes the lock is the trace of a run
 * that died holding it (a stale lock), and is reported.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { RunInfo } from '../infra/actions-io';
import { LockTimeoutError, RemoteCommandError, errorMessage } from '../infra/errors';
import { parseBusyEntry, parseLockHolder } from './lock-records';
import type { Fence, Host, RemoteProcess } from '../infra/host';
import { stateDirOf } from './host-log';
import { onCancel } from '../infra/cancel';
import { ignored, type Logger } from '../infra/logger';
import { EXEC_PID_PREFIX, projectLabel, signalExecs } from '../infra/docker';
import { stackLabel } from '../infra/swarm';
import { short } from '../infra/sha';
import { hostScript, quote, sh } from '../infra/shell';

export interface LockHolder {
  run: string;
  actor: string;
  sha: string;
  action: string;
  op: string;
  since: string;
  /** Set when the holder file could not be read as one: what was wrong with it. */
  problem?: string;
}

/** A process group that holds an environment's busy file, as its command registered it. */
export interface BusyEntry {
  pgid: number;
  op: string;
  run: string;
  label: string;
  since: string;
}

export function describeBusy(e: BusyEntry): string {
  return `${e.label || 'a command'} (process group ${e.pgid}${e.op ? `, operation ${e.op}` : ''}${e.run ? ` of run ${e.run}` : ''}${e.since ? `, since ${e.since}` : ''})`;
}

const ACQUIRED = 'twinstack-lock-acquired';
const TIMEOUT_EXIT = 75;
const BUSY_WORK = fs.readFileSync(__dirname + '/busy-work.sh', 'utf8');
const STOP_WORK = fs.readFileSync(__dirname + '/stop-work.sh', 'utf8');
const READ_HOLDER = fs.readFileSync(__dirname + '/read-holder.sh', 'utf8');
const LOCK_TAKE = fs.readFileSync(__dirname + '/lock-take.sh', 'utf8');
const LOCK_CLAIM = fs.readFileSync(__dirname + '/lock-claim.sh', 'utf8');
/** The line lock-claim.sh prints before the holder file it found. */
const HOLDER_WAS = 'twinstack-lock-holder-was';

/** Where a lock is: the host, its state directory, and the environment's name. */
export interface LockPlace {
  host: Host;
  stateDir: string;
  env: string;
}

export interface AcquireOptions extends LockPlace {
  holder: LockHolder;
  /** How long to wait for the lock, and for an earlier run's remote work to end. */
  waitSeconds: number;
  log: Logger;
}

export class EnvironmentLock {
  private released = false;
  /** Unregisters the clean-up that frees this lock when the run is cancelled. */
  private forgetCancel: () => void = () => undefined;

  private readonly host: Host;
  private readonly process: RemoteProcess;
  private readonly holderFile: string;
  readonly env: string;
  /** The holder of a lock whose run died without releasing it, if this acquisition found one. */
  readonly stale: LockHolder | undefined;
  readonly stateDir: string;

  private constructor({
    host,
    process,
    holderFile,
    env,
    stale,
    stateDir,
  }: LockPlace & { process: RemoteProcess; holderFile: string; stale: LockHolder | undefined }) {
    this.host = host;
    this.process = process;
    this.holderFile = holderFile;
    this.env = env;
    this.stale = stale;
    this.stateDir = stateDir;
  }

  static paths(stateDir: string, env: string) {
    const dir = stateDirOf(stateDir, env);
    return { dir, lockFile: `${dir}/lock`, holderFile: `${dir}/lock-holder.json`, busyFile: `${dir}/busy`, entriesDir: `${dir}/busy.d` };
  }

  /** The fence every command of the operation holding this lock runs under (see Host.addFence). */
  fence(op: string, run: string): Fence {
    const { busyFile, entriesDir } = EnvironmentLock.paths(this.stateDir, this.env);
    return { env: this.env, busyFile, entriesDir, op, run };
  }

  /**
   * Remote work still running under earlier runs' leases: the busy file is held (shared) by a
   * process that outlived its run (an orphaned build, a compose up, a restore). Lists the live
   * process groups from the entries directory and forgets the dead ones.
   */
  static async busyWork(host: Host, stateDir: string, env: string): Promise<{ busy: boolean; entries: BusyEntry[] }> {
    const { busyFile, entriesDir } = EnvironmentLock.paths(stateDir, env);
    const r = await host.run(hostScript(BUSY_WORK, { ENTRIES_DIR: entriesDir, BUSY_FILE: busyFile }), {
      quiet: true,
      label: `checking ${env} for remote work of earlier runs`,
      timeoutSeconds: 60,
    });
    return parseBusy(r.stdout.split('\n'), entriesDir);
  }

  /**
   * Holding the flock: waits until no process of an earlier run holds the busy file, saying what it
   * waits for and for how long it has waited (past the deadline, refuses), and then, in the same
   * round trip (lock-claim.sh), reads the holder file left there and writes this run's.
   */
  private static async claim({
    host,
    stateDir,
    env,
    holder,
    deadline,
    waitSeconds,
    log,
  }: AcquireOptions & { deadline: number }): Promise<LockHolder | undefined> {
    const { entriesDir, busyFile, holderFile } = EnvironmentLock.paths(stateDir, env);
    const started = Date.now();
    let lastSaid = 0;
    for (;;) {
      const tmp = `${holderFile}.twinstack-${randomBytes(6).toString('hex')}`;
      const r = await host.run(
        hostScript(`${BUSY_WORK}\n${LOCK_CLAIM}`, { ENTRIES_DIR: entriesDir, BUSY_FILE: busyFile, FILE: holderFile, TMP: tmp, MARKER: HOLDER_WAS }),
        {
          stdin: `${JSON.stringify(holder)}\n`,
          quiet: true,
          label: `checking ${env} for remote work of earlier runs, then writing the ${env} lock holder`,
          timeoutSeconds: 60,
        },
      );
      const lines = r.stdout.split('\n');
      const at = lines.indexOf(HOLDER_WAS);
      const { busy, entries } = parseBusy(at < 0 ? lines : lines.slice(0, at), entriesDir);
      if (!busy) {
        if (Date.now() - started > 1000) log.info(`The earlier remote work on ${env} has ended (waited ${Math.round((Date.now() - started) / 1000)}s).`);
        return EnvironmentLock.holderOf(lines.slice(at + 1).join('\n'), holderFile);
      }
      const what = entries.length ? entries.map(describeBusy).join('; ') : 'a process that holds the busy file (not recorded)';
      if (Date.now() >= deadline) {
        throw new LockTimeoutError(
          `the ${env} lock is free, but remote work of an earlier run is still running on the host: ${what}; gave up after ${waitSeconds}s ` +
            `(wait for it to end, or stop it on the host: kill -TERM -- -<process group>; then check status)`,
        );
      }
      if (Date.now() - lastSaid >= 10_000) {
        lastSaid = Date.now();
        log.info(
          `The ${env} lock is free, but remote work of an earlier run is still running: ${what}. Waiting for it to end (waited ${Math.round((Date.now() - started) / 1000)}s of ${waitSeconds}s).`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /**
   * Stops the remote work of one operation: TERM to each of its process groups (and to the
   * processes it started with docker exec inside the containers of its environment's compose
   * project, and no other's), then KILL to what is left after the grace time. Returns when the busy
   * file is free of that work, or after the grace times. GitHub gives a cancelled job about 10 s
   * from its first signal to SIGKILL: the grace times leave room to record the outcome after.
   */
  static async stopWork({
    host,
    stateDir,
    env,
    op,
    project,
    swarm,
    endpoints = [],
    graceSeconds = 3,
  }: LockPlace & { op: string; project: string; swarm?: boolean; endpoints?: readonly string[]; graceSeconds?: number }): Promise<string> {
    const { busyFile, entriesDir } = EnvironmentLock.paths(stateDir, env);
    const script = hostScript(STOP_WORK, {
      OP: op,
      ENTRIES_DIR: entriesDir,
      BUSY_FILE: busyFile,
      GRACE: graceSeconds,
      // On a swarm (swarm: true) the project is a stack: its task containers on the manager's node,
      PROJECT_LABEL: swarm ? stackLabel(project) : projectLabel(project),
      // And on the other nodes' engines (config swarm.nodes): a task's container may run there.
      ENDPOINTS: swarm ? endpoints.join('\n') : '',
      SIGNAL_TERM: signalExecs(`${quote(EXEC_PID_PREFIX + op)}-*`, 'TERM'),
      SIGNAL_KILL: signalExecs(`${quote(EXEC_PID_PREFIX + op)}-*`, 'KILL'),
    });
    const r = await host.run(script, { quiet: true, check: false, label: `stopping the remote work of ${op}`, timeoutSeconds: graceSeconds + 20 });
    return r.stdout.trim();
  }

  static async readHolder(host: Host, stateDir: string, env: string): Promise<LockHolder | undefined> {
    const { holderFile } = EnvironmentLock.paths(stateDir, env);
    const r = await host.run(hostScript(READ_HOLDER, { FILE: holderFile }), { quiet: true, label: 'reading the lock holder', timeoutSeconds: 60 });
    return EnvironmentLock.holderOf(r.stdout, holderFile);
  }

  /** A holder file's text as read: undefined when there was none. */
  private static holderOf(text: string, holderFile: string): LockHolder | undefined {
    if (!text.trim()) return undefined;
    try {
      return parseLockHolder(text, holderFile);
    } catch (e) {
      // Most likely cut short by a run that died writing it: reported, never a reason to block the environment.
      return { run: 'unknown', actor: 'unknown', sha: '', action: 'unknown', op: '', since: '', problem: errorMessage(e) };
    }
  }

  /** The lock of an environment this run only reads (op `read`): its writers wait, and it waits for them. */
  static acquireToRead({
    host,
    stateDir,
    env,
    run,
    action,
    waitSeconds,
    log,
    sha = run.sha,
  }: Omit<AcquireOptions, 'holder'> & { run: RunInfo; action: string; sha?: string }): Promise<EnvironmentLock> {
    return EnvironmentLock.acquire({
      host,
      stateDir,
      env,
      holder: { run: run.url, actor: run.actor, sha, action, op: 'read', since: new Date().toISOString() },
      waitSeconds,
      log,
    });
  }

  static async acquire({ host, stateDir, env, holder, waitSeconds, log }: AcquireOptions): Promise<EnvironmentLock> {
    const started = Date.now();
    const { dir, lockFile, holderFile } = EnvironmentLock.paths(stateDir, env);
    // The flock is asked for at once (lock-take.sh makes the directory first); the holder is read
    // beside it, to name whom a wait is for, and before this run writes its own.
    const proc = host.spawn(hostScript(LOCK_TAKE, { DIR: dir, LOCK_FILE: lockFile, WAIT: waitSeconds, TIMEOUT_EXIT, ACQUIRED }), {
      quiet: true,
      label: `taking the ${env} lock`,
    });
    const acquired = proc.waitForLine(ACQUIRED);
    acquired.catch(ignored(log, `taking the ${env} lock (awaited below)`));
    const current = await EnvironmentLock.readHolder(host, stateDir, env).catch(async (e) => {
      await proc.end().catch(ignored(log, `freeing the ${env} lock after reading its holder failed`));
      throw e;
    });
    if (current) log.info(`The ${env} lock is held or was left by ${describeHolder(current)}; waiting up to ${waitSeconds}s.`);
    try {
      await acquired;
    } catch (e) {
      if (e instanceof RemoteCommandError && e.exitCode === TIMEOUT_EXIT) {
        // Only names the holder in the message: the timeout is what is reported.
        const now = await EnvironmentLock.readHolder(host, stateDir, env).catch(ignored(log, `reading the ${env} lock holder after the timeout`));
        throw new LockTimeoutError(
          `the ${env} environment is locked by ${now ? describeHolder(now) : 'another run'}; gave up after ${waitSeconds}s (wait for it, or raise lock-timeout)`,
        );
      }
      throw e;
    }
    // We hold the flock. Remote work of a run that died may outlive it: wait for it to end first.
    // A holder file still present then means its run died while holding the lock.
    let stale: LockHolder | undefined;
    try {
      stale = await EnvironmentLock.claim({ host, stateDir, env, holder, deadline: started + waitSeconds * 1000, waitSeconds, log });
    } catch (e) {
      await proc.end().catch(ignored(log, `freeing the ${env} lock after the wait for earlier work failed`));
      throw e;
    }
    const lock = new EnvironmentLock({ host, process: proc, holderFile, env, stale, stateDir });
    // Cancelled from here on (a SIGTERM while the run only reads, or before an operation takes over),
    // the lock goes with its holder file: a holder file left behind would read as a run that died.
    lock.forgetCancel = onCancel(() => lock.release());
    if (stale) {
      log.warning(`Stale ${env} lock: ${describeHolder(stale)} died while holding it; its operation did not finish.`);
    }
    return lock;
  }

  /**
   * The caller frees the lock itself when the run is cancelled (an operation first stops its remote
   * work and records the cancel): the lock's own clean-up is dropped. Call it right after acquire.
   */
  leaveCancelToCaller(): void {
    this.forgetCancel();
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    this.forgetCancel();
    try {
      await this.host.run(sh`rm -f ${this.holderFile}`, { quiet: true, label: `releasing the ${this.env} lock`, timeoutSeconds: 60 });
    } finally {
      await this.process.end();
    }
  }
}

export function describeHolder(h: LockHolder): string {
  if (h.problem) return `an unknown run (${h.problem})`;
  return `${h.action} run ${h.run} (actor ${h.actor}, sha ${h.sha ? short(h.sha) : '?'}, since ${h.since})`;
}

/** busy-work.sh's answer (lock-claim.sh's, up to its holder): IDLE or BUSY, then the live process groups. */
function parseBusy(lines: string[], entriesDir: string): { busy: boolean; entries: BusyEntry[] } {
  const entries: BusyEntry[] = [];
  for (const line of lines.slice(1)) {
    if (!line.includes('\t')) continue;
    try {
      entries.push(parseBusyEntry(line, entriesDir));
    } catch (e) {
      // The process group is alive whatever its entry says: it is waited for, named by the problem.
      entries.push({ pgid: Number(line.slice(0, line.indexOf('\t'))), op: '', run: '', label: `unknown (${errorMessage(e)})`, since: '' });
    }
  }
  return { busy: lines[0]?.trim() === 'BUSY', entries };
}
