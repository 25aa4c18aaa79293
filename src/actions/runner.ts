/**
 * The one wrapper every action runs through: read and check inputs (nothing touches the host yet),
 * connect once, do the work, and turn any error into one clear failure line. Cancellation (SIGINT,
 * SIGTERM from the runner) runs the registered clean-ups, so locks are released and the host log
 * says the run was cancelled.
 */
import { ActionIO, ActionsLogger, runInfo, type RunInfo } from '../infra/actions-io';
import { loadConfig, type Config } from '../domain/config';
import { sqlParserReady } from '../infra/pg-parser';
import { ConfigurationError, LockTimeoutError, OperationFailed, RemoteCommandError, errorMessage } from '../infra/errors';
import type { Host } from '../infra/host';
import { runCancelCleanups } from '../infra/cancel';
import type { Logger } from '../infra/logger';
import { SshHost } from '../infra/ssh';
import type { CONNECTION_INPUTS } from './connection-inputs';
import { positiveInt, printable } from '../infra/validate';

/** Inputs every action takes to reach the host; their names, descriptions and defaults are in connection-inputs.ts. */
export type ConnectionInputs = { [K in keyof typeof CONNECTION_INPUTS]: string };

export interface Prepared<I, O> {
  io: ActionIO<I, O>;
  log: Logger;
  config: Config;
  run: RunInfo;
  lockTimeoutSeconds: number;
}

export interface ActionContext<I, O, P> extends Prepared<I, O> {
  host: Host;
  plan: P;
}

export interface ActionDefinition<I extends ConnectionInputs, O, P> {
  name: string;
  /** Reads and checks this action's own inputs. Runs before any connection; throw ConfigurationError on bad input. */
  prepare(ctx: Prepared<I, O>): P | Promise<P>;
  /** The work on the host. Return false to skip connecting (e.g. nothing to do). */
  connect?(plan: P): boolean;
  execute(ctx: ActionContext<I, O, P>): Promise<void>;
}

function installSignalHandlers(log: Logger): void {
  let cancelling = false;
  const handler = (signal: string) => {
    if (cancelling) return;
    cancelling = true;
    log.warning(`Received ${signal}: cancelling, releasing locks.`);
    const deadline = new Promise((r) => setTimeout(r, 20_000));
    void Promise.race([runCancelCleanups(), deadline]).finally(() => process.exit(1));
  };
  process.once('SIGINT', () => handler('SIGINT'));
  process.once('SIGTERM', () => handler('SIGTERM'));
}

const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9.-]*$|^\[?[0-9A-Fa-f:.]+\]?$/;

function connectionTarget<I extends ConnectionInputs, O>(io: ActionIO<I, O>, config: Config) {
  const host = io.required('host', 'the VPS address, e.g. from a repository secret');
  if (!HOST_RE.test(host) || host.length > 253) throw new ConfigurationError(`input host "${printable(host)}" is not a host name or IP address`);
  const port = positiveInt(io.defaulted('port'), 'input port', 65535);
  const user = io.defaulted('user');
  if (!/^[a-z_][a-z0-9_.-]{0,31}$/i.test(user)) throw new ConfigurationError(`input user "${printable(user)}" is not a valid user name`);
  const privateKey = io.secret('ssh-key', true, 'the private key twinstack logs in with (a repository secret)');
  const passphrase = io.secret('ssh-passphrase') || undefined;
  const knownHosts = io.required('known-hosts', "the host's public key line(s) as in ~/.ssh/known_hosts; twinstack never trusts an unknown host key");
  return {
    host: host.replace(/^\[|\]$/g, ''),
    port,
    user,
    privateKey: privateKey.replace(/\r\n/g, '\n').trim() + '\n',
    passphrase,
    knownHosts,
    commandTimeoutSeconds: config['command-timeout-seconds'],
  };
}

export function runAction<I extends ConnectionInputs, O, P>(def: ActionDefinition<I, O, P>): void {
  const log = new ActionsLogger();
  const io = new ActionIO<I, O>(log);
  installSignalHandlers(log);
  void main(def, io, log).then((code) => {
    process.exitCode = code;
  });
}

async function main<I extends ConnectionInputs, O, P>(def: ActionDefinition<I, O, P>, io: ActionIO<I, O>, log: Logger): Promise<number> {
  let host: Host | undefined;
  try {
    await sqlParserReady; // the config's SQL is checked by PostgreSQL's parser as it is read
    const config = loadConfig(io.defaulted('config'));
    const target = connectionTarget(io, config);
    const lockTimeoutSeconds = positiveInt(io.defaulted('lock-timeout'), 'input lock-timeout', 86400);
    const prepared: Prepared<I, O> = { io, log, config, run: runInfo(), lockTimeoutSeconds };
    const plan = await def.prepare(prepared);
    if (def.connect && !def.connect(plan)) {
      await def.execute({ ...prepared, plan, host: undefined as unknown as Host });
      return 0;
    }
    host = await SshHost.connect(target, log);
    host.deadline = runDeadline();
    await def.execute({ ...prepared, plan, host });
    return 0;
  } catch (e) {
    io.fail(failureLine(def.name, e));
    if (!(e instanceof ConfigurationError) && !(e instanceof OperationFailed) && e instanceof Error && e.stack) log.debug(e.stack);
    return 1;
  } finally {
    await host?.close();
  }
}

export function failureLine(action: string, e: unknown): string {
  if (e instanceof ConfigurationError) return e.message;
  if (e instanceof LockTimeoutError || e instanceof OperationFailed) return `${action}: ${e.message}`;
  if (e instanceof RemoteCommandError) return `${action}: ${e.message}`;
  return `${action} failed: ${errorMessage(e)}`;
}

/**
 * The run's deadline: TWINSTACK_DEADLINE, in seconds since the epoch, which each workflow job sets
 * in its first step to a few minutes before its timeout-minutes. Every remote command's time limit
 * is cut to end by then, so GitHub never cancels a job whose remote work still runs (a unit test
 * checks every workflow job).
 */
export function runDeadline(value = process.env.TWINSTACK_DEADLINE): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (!Number.isInteger(seconds) || seconds <= 0)
    throw new ConfigurationError(`TWINSTACK_DEADLINE "${printable(value)}" must be a time in seconds since the epoch`);
  return seconds * 1000;
}
