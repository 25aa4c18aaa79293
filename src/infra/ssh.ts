/**
 * The SSH implementation of Host: the one adapter for node-ssh (and ssh2 beneath it).
 * One connection per action run, pinned host keys, commands run under bash with a remote
 * `timeout` so that a time limit kills the remote process group, not only our wait.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { NodeSSH } from 'node-ssh';
import { utils as ssh2Utils, type ClientChannel, type ParsedKey } from 'ssh2';
import { CaptureLimitError, ConfigurationError, RemoteCommandError, errorMessage } from './errors';
import {
  MAX_CAPTURE_BYTES,
  cleanupScope,
  type CommandResult,
  type Fence,
  type Forward,
  type Host,
  type RemoteProcess,
  type RunOptions,
  type Traffic,
} from './host';
import { hostKeyAlgorithms, hostKeyPolicy } from './known-hosts';
import { ignored, type Logger } from './logger';
import { argv, hostScript, quote, sh } from './shell';

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  passphrase?: string;
  knownHosts: string;
  connectTimeoutSeconds?: number;
  /** Default time limit for a command, in seconds. */
  commandTimeoutSeconds?: number;
}

/** The in-band exit status line: its nonce is new for every command, so the command cannot fake it. */
const EXIT_MARKER = '@twinstack-exit-';
const exitTrailer = (nonce: string) => new RegExp(`\\n${EXIT_MARKER}${nonce}:(\\d+)\\n$`);
const KILL_GRACE_SECONDS = 10;
const FENCE_REGISTER = fs.readFileSync(__dirname + '/fence-register.sh', 'utf8');
const WRITE_FILE = fs.readFileSync(__dirname + '/write-file.sh', 'utf8');

/**
 * A stream's bytes, up to `max`: past that it keeps counting but stores nothing more (memory stays
 * bounded) and says it overflowed, so the command's output is never taken for whole when it was cut.
 */
class Capture {
  private chunks: Buffer[] = [];
  private size = 0;
  total = 0;
  overflowed = false;
  constructor(private readonly max = MAX_CAPTURE_BYTES) {}
  /** False once the stream has passed `max`. */
  push(chunk: Buffer): boolean {
    this.total += chunk.length;
    if (this.overflowed || this.size + chunk.length > this.max) {
      this.overflowed = true;
      return false;
    }
    this.chunks.push(chunk);
    this.size += chunk.length;
    return true;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Splits chunks into lines for the log; keeps the incomplete tail until it is complete. */
class LineSplitter {
  // The unfinished line's chunks, joined once its newline arrives: a long line (32 MiB without a
  // newline) costs its length, not its length squared. Split on the byte 0x0a, which never occurs
  // inside a UTF-8 sequence, so a character cut between chunks decodes whole.
  private rest: Buffer[] = [];
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: Buffer): void {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      const line = this.rest.length ? Buffer.concat([...this.rest, piece]) : piece;
      this.rest = [];
      this.onLine(line.toString('utf8').replace(/\r$/, ''));
      start = nl + 1;
    }
    if (start < chunk.length) this.rest.push(chunk.subarray(start));
  }
  flush(): void {
    if (this.rest.length) this.onLine(Buffer.concat(this.rest).toString('utf8'));
    this.rest = [];
  }
}

/** The captured streams of one command, its output lines to the log, and the waiters for marker lines. */
class CommandStreams {
  readonly out = new Capture();
  readonly err = new Capture();
  readonly outLines: LineSplitter;
  readonly errLines: LineSplitter;
  readonly lineWaiters: Array<{ marker: string | RegExp; resolve: (line: string) => void }> = [];
  readonly markerLines = new LineSplitter((l) => {
    for (const w of this.lineWaiters.filter((x) => (typeof x.marker === 'string' ? x.marker === l : x.marker.test(l)))) {
      this.lineWaiters.splice(this.lineWaiters.indexOf(w), 1);
      w.resolve(l);
    }
  });

  constructor(log: Logger, nonce: string) {
    this.outLines = new LineSplitter((l) => log.output(l));
    this.errLines = new LineSplitter((l) => {
      if (!l.startsWith(`${EXIT_MARKER}${nonce}:`) && l !== '') log.output(l);
    });
  }
}

interface ChannelRun {
  script: string;
  options: RunOptions;
  keepStdinOpen: boolean;
  timeoutSeconds: number;
  nonce: string;
  started: number;
  streams: CommandStreams;
  finish: (r: CommandResult) => void;
}

/** What the command line sent to the host is built from. */
type WrapOptions = Pick<ChannelRun, 'script' | 'options' | 'timeoutSeconds' | 'nonce'> & { label: string };

/** A closed channel's result: the exit status (from the channel, else the in-band trailer), timed out or overflowed. */
function closedResult(run: ChannelRun, exitStatus: number | null, signal: string | null): CommandResult {
  const { out, err } = run.streams;
  const elapsed = Date.now() - run.started;
  let exitCode = exitStatus;
  let stderr = err.text();
  const trailer = exitTrailer(run.nonce).exec(stderr);
  if (trailer) {
    stderr = stderr.slice(0, trailer.index);
    if (exitCode === null && signal === null) exitCode = Number(trailer[1]);
  }
  // `timeout` exits 124 (or 137 after its KILL); a channel closed with no status at all counts as
  // timed out only once the time limit has passed (else sshd or the link ended it).
  const overdue = elapsed >= run.timeoutSeconds * 1000;
  const timedOut = run.timeoutSeconds > 0 && (exitCode === 124 || ((exitCode === 137 || (exitCode === null && signal === null)) && overdue));
  const overflow = out.overflowed
    ? { stream: 'stdout' as const, bytes: out.total }
    : err.overflowed
      ? { stream: 'stderr' as const, bytes: err.total }
      : undefined;
  return { command: run.script, exitCode, signal, stdout: out.text(), stderr, timedOut: timedOut && !overflow, durationMs: elapsed, overflow };
}

export class SshHost implements Host {
  private readonly traffics: Traffic = { received: 0, sent: 0 };
  private readonly forwards = new Set<net.Server>();
  private fences: Fence[] = [];
  private halted = false;
  deadline?: number;

  private constructor(
    private readonly ssh: NodeSSH,
    readonly name: string,
    private readonly log: Logger,
    private readonly defaultTimeout: number,
  ) {}

  static async connect(target: SshTarget, log: Logger): Promise<SshHost> {
    const policy = hostKeyPolicy(target.knownHosts, target.host, target.port);
    let refusal: string | undefined;
    const ssh = new NodeSSH();
    const name = `${target.user}@${target.host}:${target.port}`;
    log.debug(`connecting to ${name}`);
    try {
      await ssh.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey: target.privateKey,
        passphrase: target.passphrase,
        readyTimeout: (target.connectTimeoutSeconds ?? 20) * 1000,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        algorithms: { serverHostKey: hostKeyAlgorithms(policy.pinned) as never },
        hostVerifier: (key: Buffer) => {
          const verdict = policy.verify(key);
          if (!verdict.ok) refusal = verdict.reason;
          return verdict.ok;
        },
      });
    } catch (err) {
      ssh.dispose();
      if (refusal) throw new ConfigurationError(`SSH refused: ${refusal}`);
      const msg = errorMessage(err);
      if (/no matching host key format|handshake failed/i.test(msg)) {
        throw new ConfigurationError(
          `SSH refused: ${name} offers none of the host key types pinned in known-hosts (${hostKeyAlgorithms(policy.pinned).join(', ')}): ${msg}`,
        );
      }
      if (/authentication methods failed/i.test(msg)) {
        throw new ConfigurationError(`SSH login as ${target.user} on ${target.host}:${target.port} was refused: check ssh-key and user`);
      }
      if (/Cannot parse privateKey|privateKey value does not contain a \(valid\) private key|Encrypted private OpenSSH key/i.test(msg)) {
        throw new ConfigurationError(`ssh-key is not a usable private key (${msg}); give the whole OpenSSH private key, and ssh-passphrase if it is encrypted`);
      }
      throw new ConfigurationError(`cannot connect to ${target.host}:${target.port}: ${msg}`);
    }
    // Commands are many small request/response exchanges: without this, Nagle's algorithm and
    // delayed ACKs add tens of milliseconds to every one.
    ssh.connection?.setNoDelay(true);
    log.debug(`connected to ${name}`);
    return new SshHost(ssh, name, log, target.commandTimeoutSeconds ?? 1800);
  }

  private connection() {
    const c = this.ssh.connection;
    if (!c) throw new Error('the SSH connection is closed');
    return c;
  }

  halt(): void {
    this.halted = true;
  }

  addFence(fence: Fence): () => void {
    this.fences = [...this.fences, fence];
    return () => {
      this.fences = this.fences.filter((f) => f !== fence);
    };
  }

  /** The full command line sent to the host for a script and its options. */
  private wrap({ script, options, timeoutSeconds, label, nonce }: WrapOptions): string {
    const body = options.cwd ? sh`cd ${options.cwd}` + ` && { ${script}\n}` : script;
    const env: Record<string, string> = { ...(options.env ?? {}) };
    let register = '';
    let fenced = '';
    if (this.fences.length) {
      // Each command's process group (its `timeout`'s, or the session's) is written where the next
      // run looks when it finds the busy file still held; it is what a cancel kills.
      env.TWINSTACK_OP = this.fences[this.fences.length - 1].op;
      register = hostScript(FENCE_REGISTER, {}) + '\n';
      for (const f of this.fences) {
        const entry = JSON.stringify({ op: f.op, run: f.run, label: label.slice(0, 120), since: new Date().toISOString() });
        register += argv('__twinstack_register', f.entriesDir, entry) + '\n';
      }
      fenced = this.fences.map((f) => argv('flock', '-s', f.busyFile)).join(' ') + ' ';
    }
    const envWords = Object.entries(env).map(([k, v]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad environment variable name ${k}`);
      return `${k}=${quote(v)}`;
    });
    const inner = argv('bash', '-c', `set -o pipefail\n${register}${body}`);
    const timed = fenced + (timeoutSeconds > 0 ? `timeout -k ${KILL_GRACE_SECONDS} ${Math.ceil(timeoutSeconds)} ${inner}` : inner);
    const command = envWords.length ? `env ${envWords.join(' ')} ${timed}` : timed;
    // The exit status is also written in-band at the end of stderr: under load OpenSSH sometimes
    // closes a channel without sending exit-status, and a command's result must never be a guess.
    return `${command}; s=$?; printf '\\n${EXIT_MARKER}${nonce}:%d\\n' "$s" >&2; exit "$s"`;
  }

  /** The command's time limit, cut to the run's deadline; throws when no new command may start. */
  private startable(script: string, options: RunOptions, label: string): number {
    let timeoutSeconds = options.timeoutSeconds ?? this.defaultTimeout;
    const cleanup = cleanupScope.getStore();
    if (this.deadline !== undefined && timeoutSeconds > 0) {
      const left = Math.floor((this.deadline - Date.now()) / 1000);
      if (left <= 0 && !cleanup) {
        throw new RemoteCommandError({
          command: script,
          exitCode: null,
          signal: null,
          stderr: 'the run reached its deadline (TWINSTACK_DEADLINE): no new command is started',
          label,
        });
      }
      timeoutSeconds = Math.max(1, Math.min(timeoutSeconds, left));
    }
    if (this.halted && !cleanup)
      throw new RemoteCommandError({ command: script, exitCode: null, signal: null, stderr: 'the run is being cancelled: no new command is started', label });
    return timeoutSeconds;
  }

  private exec(script: string, options: RunOptions, keepStdinOpen: boolean) {
    const label = options.label ?? script.split('\n')[0];
    const timeoutSeconds = this.startable(script, options, label);
    const nonce = randomBytes(8).toString('hex');
    const command = this.wrap({ script, options, timeoutSeconds, label, nonce });
    this.log.debug(`$ ${script}`);
    const streams = new CommandStreams(this.log, nonce);
    const started = Date.now();
    let finish!: (r: CommandResult) => void;
    const exited = new Promise<CommandResult>((resolve) => (finish = resolve));
    const run: ChannelRun = { script, options, keepStdinOpen, timeoutSeconds, nonce, started, streams, finish };
    const channelReady = new Promise<ClientChannel>((resolve, reject) => {
      // A command that cannot start (the connection is gone) ends at once, never waits forever.
      const fail = (e: unknown) => {
        finish({ command: script, exitCode: null, signal: null, stdout: '', stderr: errorMessage(e), timedOut: false, durationMs: Date.now() - started });
        reject(new RemoteCommandError({ command: label, exitCode: null, signal: null, stderr: errorMessage(e), label }));
      };
      try {
        this.connection().exec(command, (e, ch) => {
          if (e) return fail(e);
          this.attach(ch, run);
          resolve(ch);
        });
      } catch (e) {
        fail(e);
      }
    });
    // Callers that only wait for the exit never look at channelReady: its failure reaches them through exited.
    channelReady.catch(ignored(this.log, `opening a channel for ${label}`));
    return { exited, channelReady, lineWaiters: streams.lineWaiters, label };
  }

  /**
   * Every listener is attached inside exec's callback, in the same tick the channel opens: the exit
   * status can arrive in the same read as the channel confirmation, and a listener added a promise
   * tick later would miss it.
   */
  private attach(ch: ClientChannel, run: ChannelRun): void {
    const { options, streams } = run;
    const status: { exitCode: number | null; signal: string | null } = { exitCode: null, signal: null };
    let stopped = false;
    // The remote `timeout` kills the process; this only guards against a host that stops answering.
    const localTimer = run.timeoutSeconds > 0 ? setTimeout(() => ch.close(), (run.timeoutSeconds + KILL_GRACE_SECONDS + 20) * 1000) : undefined;
    // A stream past the limit stops the command: reading on would only cost time and transfer.
    const stop = () => {
      if (!stopped) ch.close();
      stopped = true;
    };
    if (options.stdoutTo) {
      const sink = options.stdoutTo;
      ch.on('data', (d: Buffer) => (this.traffics.received += d.length));
      ch.pipe(sink);
      // Nobody reads the rest once the sink has failed or closed: the command is stopped, and what
      // the channel still holds is read and dropped (a paused channel would never end nor close).
      const abandon = () => {
        if (ch.readableEnded) return;
        ch.unpipe(sink);
        ch.resume();
        stop();
      };
      sink.on('error', abandon);
      sink.on('close', abandon);
    } else {
      ch.on('data', (d: Buffer) => {
        this.traffics.received += d.length;
        if (!streams.out.push(d)) stop();
        streams.markerLines.push(d);
        options.onStdout?.(d);
        if (!options.quiet) streams.outLines.push(d);
      });
    }
    ch.stderr.on('data', (d: Buffer) => {
      this.traffics.received += d.length;
      if (!streams.err.push(d)) stop();
      if (!options.quiet) streams.errLines.push(d);
    });
    ch.on('exit', (code: number | null, sig?: string) => {
      status.exitCode = code ?? null;
      status.signal = sig ?? null;
    });
    ch.on('close', () => {
      if (localTimer) clearTimeout(localTimer);
      streams.outLines.flush();
      streams.errLines.flush();
      run.finish(closedResult(run, status.exitCode, status.signal));
    });
    if (options.stdinFrom) {
      const source = options.stdinFrom;
      source.on('data', (d: Buffer | string) => (this.traffics.sent += Buffer.byteLength(d)));
      // A source that fails ends the command's input: the caller sees the source's own error.
      source.on('error', () => ch.end());
      source.pipe(ch);
    } else if (options.stdin !== undefined) {
      const data = typeof options.stdin === 'string' ? Buffer.from(options.stdin) : options.stdin;
      this.traffics.sent += data.length;
      ch.end(data);
    } else if (!run.keepStdinOpen) {
      ch.end();
    }
  }

  async run(script: string, options: RunOptions = {}): Promise<CommandResult> {
    const { exited, label } = this.exec(script, options, false);
    const result = await exited;
    // Checked or not: a caller never gets output that was cut without knowing.
    if (result.overflow) throw new CaptureLimitError(options.label ?? label, result.overflow.stream, result.overflow.bytes, MAX_CAPTURE_BYTES);
    if (options.check !== false && (result.exitCode !== 0 || result.timedOut)) {
      throw new RemoteCommandError({ ...result, command: script, label: options.label ?? label });
    }
    return result;
  }

  spawn(script: string, options: Omit<RunOptions, 'stdin' | 'check'> = {}): RemoteProcess {
    const p = this.exec(script, { ...options, timeoutSeconds: options.timeoutSeconds ?? 0 }, true);
    return {
      exited: p.exited,
      waitForLine: (marker: string | RegExp) =>
        new Promise<string>((resolve, reject) => {
          p.lineWaiters.push({ marker, resolve });
          p.exited.then((r) => reject(new RemoteCommandError({ ...r, command: script, label: p.label })), reject);
        }),
      write: async (data: string | Buffer) => {
        const ch = await p.channelReady;
        this.traffics.sent += Buffer.byteLength(data);
        ch.write(data);
      },
      end: async () => {
        const ch = await p.channelReady;
        ch.end();
        return p.exited;
      },
    };
  }

  /**
   * Files go over the exec channel (no SFTP subsystem needed on the host): written to a temporary
   * name created with the mode (umask 077 first), then moved into place, so a reader sees the old
   * file or the whole new one. A missing parent directory is made (mode 0700).
   */
  async writeFile(path: string, content: string | Buffer, mode = 0o600): Promise<void> {
    const tmp = `${path}.twinstack-${randomBytes(6).toString('hex')}`;
    const dir = path.slice(0, path.lastIndexOf('/')) || '/';
    const octal = mode.toString(8);
    await this.run(hostScript(WRITE_FILE, { DIR: dir, TMP: tmp, MODE: octal, FILE: path }), {
      stdin: content,
      label: `writing ${path}`,
      quiet: true,
      timeoutSeconds: 120,
    });
  }

  /** A text file's content, read with cat over the exec channel; never streamed to the log. */
  async readFile(path: string): Promise<Buffer> {
    const r = await this.run(sh`cat -- ${path}`, { label: `reading ${path}`, quiet: true, timeoutSeconds: 120 });
    return Buffer.from(r.stdout, 'utf8');
  }

  async forward(remoteHost: string, remotePort: number): Promise<Forward> {
    const server = net.createServer((socket) => {
      this.ssh
        .forwardOut('127.0.0.1', 0, remoteHost, remotePort)
        .then((ch) => {
          socket.on('data', (d: Buffer) => (this.traffics.sent += d.length));
          ch.on('data', (d: Buffer) => (this.traffics.received += d.length));
          socket.pipe(ch).pipe(socket);
          const close = () => {
            socket.destroy();
            ch.close();
          };
          socket.on('error', close);
          ch.on('error', close);
          socket.on('close', () => ch.close());
        })
        .catch((e) => {
          this.log.warning(`port forward to ${remoteHost}:${remotePort} failed: ${errorMessage(e)}`);
          socket.destroy();
        });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.forwards.add(server);
    const port = (server.address() as net.AddressInfo).port;
    return {
      port,
      close: () =>
        new Promise<void>((resolve) => {
          this.forwards.delete(server);
          server.close(() => resolve());
        }),
    };
  }

  traffic(): Traffic {
    return { ...this.traffics };
  }

  close(): Promise<void> {
    for (const s of this.forwards) s.close();
    this.forwards.clear();
    this.ssh.dispose();
    return Promise.resolve();
  }
}

/**
 * A private key handed to another program (ssh on the VPS, which cannot ask for a passphrase):
 * it must be a whole, unencrypted private key. Returns the key with its line ends normalized and
 * its public half (to tell two keys apart); throws a ConfigurationError naming the input.
 */
export function unencryptedPrivateKey(text: string, input: string): { key: string; publicKey: string } {
  const key = text.replace(/\r\n/g, '\n').trim() + '\n';
  const parsed = ssh2Utils.parseKey(key);
  const first = Array.isArray(parsed) ? (parsed[0] as unknown) : parsed;
  if (first instanceof Error) {
    const why = /Encrypted/i.test(first.message) ? 'it is encrypted; give a key without a passphrase (ssh-keygen -p -N "" -f key)' : first.message;
    throw new ConfigurationError(`input ${input} is not a usable private key: ${why}`);
  }
  const k = first as ParsedKey;
  if (!k.isPrivateKey()) throw new ConfigurationError(`input ${input} is a public key: give the private key (the file without .pub)`);
  return { key, publicKey: `${k.type} ${k.getPublicSSH().toString('base64')}` };
}
