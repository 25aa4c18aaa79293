import { MemoryLogger, type Logger } from '../../src/infra/logger';
import { SshHost, type SshTarget } from '../../src/infra/ssh';
import type { TestSshd } from './sshd';

export function target(sshd: TestSshd, over: Partial<SshTarget> = {}): SshTarget {
  return { host: '127.0.0.1', port: sshd.port, user: sshd.user, privateKey: sshd.privateKey, knownHosts: sshd.knownHosts, connectTimeoutSeconds: 10, ...over };
}

/** How long a connection may go without a new command or line before the watchdog says so. */
const STALL_MS = Number(process.env.TWINSTACK_TEST_STALL_MS ?? 180_000);

/**
 * The logger of a test connection, watched: when nothing is logged for three minutes (no command
 * sent, no line read), it writes the last lines to stderr, which the test runner shows. A file the
 * runner ends for running too long then says what it was waiting for.
 */
function watched(log: Logger, name: string): Logger {
  const recent: string[] = [];
  let last = Date.now();
  let said = false;
  const note = (line: string) => {
    last = Date.now();
    said = false;
    recent.push(line.replace(/\s+/g, ' ').slice(0, 300));
    if (recent.length > 6) recent.shift();
  };
  const timer = setInterval(
    () => {
      if (said || Date.now() - last < STALL_MS) return;
      said = true;
      process.stderr.write(
        `[watchdog] ${name}: nothing logged for ${Math.round((Date.now() - last) / 1000)} s; the last lines:\n${recent.map((l) => `  ${l}\n`).join('')}`,
      );
    },
    Math.min(10_000, STALL_MS),
  );
  timer.unref();
  return new Proxy(log, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (typeof args[0] === 'string' && prop !== 'secret' && prop !== 'redact') note(`${String(prop)}: ${target.redact(args[0])}`);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

export async function connect(sshd: TestSshd, over: Partial<SshTarget> = {}, log: Logger = new MemoryLogger()): Promise<SshHost> {
  return SshHost.connect(target(sshd, over), watched(log, `ssh ${sshd.user}@127.0.0.1:${sshd.port}`));
}
