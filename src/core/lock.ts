/**
 * The per-environment lock on the host. A `flock` held by a process inside our SSH session: if the
 * run dies or loses its connection, sshd ends the session, the process exits and the kernel drops
 * the lock, so a dead run can never block the host for ever. The holder file beside it says who
 * holds the lock; a holder file found by the next run that takes the lock is the trace of a run
 * that died holding it (a stale lock), and is reported.
 */
import { LockTimeoutError, RemoteCommandError } from './errors';
import type { Host, RemoteProcess } from './host';
import { stateDirOf } from './host-log';
import type { Logger } from './logger';
import { argv, sh } from './shell';

export interface LockHolder {
  run: string;
  actor: string;
  sha: string;
  action: string;
  op: string;
  since: string;
}

const ACQUIRED = 'twinstack-lock-acquired';
const TIMEOUT_EXIT = 75;

export class EnvironmentLock {
  private released = false;

  private constructor(
    private readonly host: Host,
    private readonly process: RemoteProcess,
    private readonly holderFile: string,
    readonly env: string,
    /** The holder of a lock whose run died without releasing it, if this acquisition found one. */
    readonly stale: LockHolder | undefined,
  ) {}

  static paths(stateDir: string, env: string) {
    const dir = stateDirOf(stateDir, env);
    return { dir, lockFile: `${dir}/lock`, holderFile: `${dir}/lock-holder.json` };
  }

  static async readHolder(host: Host, stateDir: string, env: string): Promise<LockHolder | undefined> {
    const { holderFile } = EnvironmentLock.paths(stateDir, env);
    const r = await host.run(sh`if [ -f ${holderFile} ]; then cat ${holderFile}; fi`, { quiet: true, label: 'reading the lock holder', timeoutSeconds: 60 });
    if (!r.stdout.trim()) return undefined;
    try {
      return JSON.parse(r.stdout) as LockHolder;
    } catch {
      return { run: 'unknown', actor: 'unknown', sha: '', action: 'unknown', op: '', since: '' };
    }
  }

  static async acquire(
    host: Host,
    stateDir: string,
    env: string,
    holder: LockHolder,
    waitSeconds: number,
    log: Logger,
  ): Promise<EnvironmentLock> {
    const { dir, lockFile, holderFile } = EnvironmentLock.paths(stateDir, env);
    await host.run(sh`mkdir -p -m 700 ${dir}`, { quiet: true, label: `creating ${dir}`, timeoutSeconds: 60 });
    const current = await EnvironmentLock.readHolder(host, stateDir, env);
    if (current) log.info(`The ${env} lock is held or was left by ${describeHolder(current)}; waiting up to ${waitSeconds}s.`);
    const proc = host.spawn(
      argv('flock', '-w', String(waitSeconds), '-E', String(TIMEOUT_EXIT), lockFile, 'bash', '-c', `echo ${ACQUIRED}; exec cat >/dev/null`),
      { quiet: true, label: `taking the ${env} lock` },
    );
    try {
      await proc.waitForLine(ACQUIRED);
    } catch (e) {
      if (e instanceof RemoteCommandError && e.exitCode === TIMEOUT_EXIT) {
        const now = await EnvironmentLock.readHolder(host, stateDir, env).catch(() => undefined);
        throw new LockTimeoutError(
          `the ${env} environment is locked by ${now ? describeHolder(now) : 'another run'}; gave up after ${waitSeconds}s (wait for it, or raise lock-timeout)`,
        );
      }
      throw e;
    }
    // We hold the flock. A holder file still present means its run died while holding the lock.
    const stale = await EnvironmentLock.readHolder(host, stateDir, env);
    await host.writeFile(holderFile, `${JSON.stringify(holder)}\n`, 0o600);
    if (stale) {
      log.warning(`Stale ${env} lock: ${describeHolder(stale)} died while holding it; its operation did not finish.`);
    }
    return new EnvironmentLock(host, proc, holderFile, env, stale);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    try {
      await this.host.run(sh`rm -f ${this.holderFile}`, { quiet: true, label: `releasing the ${this.env} lock`, timeoutSeconds: 60 });
    } finally {
      await this.process.end();
    }
  }
}

export function describeHolder(h: LockHolder): string {
  return `${h.action} run ${h.run} (actor ${h.actor}, sha ${h.sha ? h.sha.slice(0, 12) : '?'}, since ${h.since})`;
}
