/**
 * The host: the one VPS both environments live on. Core modules speak to it through this
 * interface only; src/core/ssh.ts is the SSH implementation.
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
}

export interface CommandResult {
  command: string;
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  durationMs: number;
}

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
  /** Bytes the host sent us over the connection (command output, forwarded data, SFTP reads). */
  received: number;
  /** Bytes we sent the host (command input, forwarded data, SFTP writes). */
  sent: number;
}

export interface Host {
  readonly name: string;
  run(script: string, options?: RunOptions): Promise<CommandResult>;
  spawn(script: string, options?: Omit<RunOptions, 'stdin' | 'check'>): RemoteProcess;
  /** Writes a file atomically (temporary name, then rename) with the given mode. */
  writeFile(path: string, content: string | Buffer, mode?: number): Promise<void>;
  readFile(path: string): Promise<Buffer>;
  forward(remoteHost: string, remotePort: number): Promise<Forward>;
  traffic(): Traffic;
  close(): Promise<void>;
}
