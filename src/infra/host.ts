/**
 * The host: the one VPS both environments live on. Core modules speak to it through this
 * interface only; src/infra/ssh.ts is the SSH implementation.
 */

export interface RunOptions {
  /** What the step is called in logs and errors ("git fetch", "compose up"). */
  label?: string;
  /** Kills the remote process group after this many seconds (default: the host's default). */
  timeoutSeconds?: number;
  /** Data for the command's standard input. */
  stdin?: string | Buffer;
  /** Throw a RemoteCommandError on a non-zero exit (default true). */
  check?: boolean;
  /** Do not stream output into the log (it is still captured). */
  quiet?: boolean;
  /** Environment variables for the command (values are quoted, and may be secrets: they are not logged). */
  env?: Record<string, string>;
  /** Run in this directory; the command does not run at all if `cd` fails. */
  cwd?: string;
  /** Called with each chunk of standard output as it arrives. */
  onStdout?: (chunk: Buffer) => void;
  /**
   * Standard output piped into this stream, with backpressure, instead of being kept (the result's
   * stdout is then ''): output of any size, such as a file read off the host. A sink that fails or
   * closes early stops the command.
   */
  stdoutTo?: NodeJS.WritableStream;
  /** Standard input read from this stream, with backpressure, until it ends (instead of `stdin`). */
  stdinFrom?: NodeJS.ReadableStream;
}

export interface CommandResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
  /**
   * Set when a stream passed MAX_CAPTURE_BYTES: the command was stopped there and what was captured
   * is not its whole output (run() throws a CaptureLimitError instead of returning it).
   */
  overflow?: { stream: 'stdout' | 'stderr'; bytes: number };
}

/** The most of one command's stdout (and of its stderr) kept in memory; more is an error, never a silent cut. */
export const MAX_CAPTURE_BYTES = 32 * 1024 * 1024;

/** A long-running remote command whose standard input stays open until `end()`. */
export interface RemoteProcess {
  /** Resolves with the first line of standard output equal to the marker (or matching it), from now on. */
  waitForLine(marker: string | RegExp): Promise<string>;
  /** Writes to the process's standard input. */
  write(data: string | Buffer): Promise<void>;
  /** Closes standard input; resolves when the process has exited. */
  end(): Promise<CommandResult>;
  /** Resolves when the process has exited on its own. */
  readonly exited: Promise<CommandResult>;
}

export interface Forward {
  /** The local 127.0.0.1 port that reaches the remote address through the SSH connection. */
  port: number;
  close(): Promise<void>;
}

export interface Traffic {
  /** Bytes the host sent us over the connection (command output, forwarded data, file reads). */
  received: number;
  /** Bytes we sent the host (command input, forwarded data, file writes). */
  sent: number;
}

import { AsyncLocalStorage } from 'node:async_hooks';

/** Set while the cancel clean-ups run: their commands still go to a halted host. */
export const cleanupScope = new AsyncLocalStorage<boolean>();

/**
 * The lease of an operation: while it is set on a Host, every command runs under a shared `flock` of
 * the environment's busy file (inherited by every process the command starts, so the kernel frees it
 * only when the last of them exits), and writes its process group to the entries directory.
 */
export interface Fence {
  env: string;
  busyFile: string;
  entriesDir: string;
  op: string;
  run: string;
}

export interface Host {
  readonly name: string;
  /**
   * Refuses every new command from now on, except those of the cancel clean-ups (run inside
   * `cleanupScope`): a cancelled run starts nothing new while its remote work is being stopped.
   */
  halt(): void;
  /**
   * The run's deadline (epoch ms): every command's time limit is cut to end by then, so no remote
   * work outlives the job that started it. undefined: no deadline.
   */
  deadline?: number;
  /** Fences every command from now on (see Fence); returns the function that lifts the fence. */
  addFence(fence: Fence): () => void;
  run(script: string, options?: RunOptions): Promise<CommandResult>;
  spawn(script: string, options?: Omit<RunOptions, 'stdin' | 'check'>): RemoteProcess;
  /** Writes a file atomically (temporary name, then rename) with the given mode. */
  writeFile(path: string, content: string | Buffer, mode?: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  forward(remoteHost: string, remotePort: number): Promise<Forward>;
  traffic(): Traffic;
  close(): Promise<void>;
}
