/**
 * A real OpenSSH server for tests: its own sshd on a free 127.0.0.1 port, with freshly generated
 * host keys (ed25519, ecdsa, rsa) and a client key. Logs in as the user running the tests. Several
 * can run side by side (a VPS and a backup host), each with its own keys and authorized_keys.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, waitForPort } from './ports';

export interface TestSshd {
  port: number;
  user: string;
  dir: string;
  privateKey: string;
  /** known_hosts lines for every host key, as "[127.0.0.1]:port type key". */
  knownHosts: string;
  knownHostsFor(type: 'ed25519' | 'ecdsa' | 'rsa'): string;
  /** Stops sshd's listener. */
  stop(): Promise<void>;
}

const SSHD = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((p) => fs.existsSync(p));

export function sshdAvailable(): string | undefined {
  return SSHD ? undefined : 'sshd is not installed: apt-get install openssh-server (or run .ci/install.sh)';
}

function keygen(file: string, type: string, extra: string[] = []): void {
  execFileSync('ssh-keygen', ['-q', '-t', type, ...extra, '-N', '', '-C', 'twinstack-test', '-f', file], { stdio: 'ignore' });
}

export interface SshdOptions {
  /** More authorized_keys lines after the client key's (e.g. a key confined by command="rrsync ..."). */
  authorizedKeys?: string[];
  /** More variables for every session (sshd's SetEnv), e.g. DOCKER_HOST of a private engine. */
  env?: Record<string, string>;
}

/** NAME=VALUE words for SetEnv; sshd reads only the first SetEnv line, so all go on one. */
function setEnv(env: Record<string, string>): string[] {
  return Object.entries(env).map(([k, v]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k) || !/^[^\s"'\\]*$/.test(v)) throw new Error(`SetEnv cannot carry ${k}=${v}`);
    return `${k}=${v}`;
  });
}

export async function startSshd(options: SshdOptions = {}): Promise<TestSshd> {
  if (!SSHD) throw new Error(sshdAvailable());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-sshd-'));
  fs.chmodSync(dir, 0o755);
  const types = { ed25519: [], ecdsa: ['-b', '256'], rsa: ['-b', '3072'] } as const;
  for (const [t, extra] of Object.entries(types)) keygen(path.join(dir, `host_${t}`), t, [...extra]);
  keygen(path.join(dir, 'client'), 'ed25519');
  fs.writeFileSync(
    path.join(dir, 'authorized_keys'),
    [fs.readFileSync(path.join(dir, 'client.pub'), 'utf8').trim(), ...(options.authorizedKeys ?? [])].join('\n') + '\n',
  );
  fs.chmodSync(path.join(dir, 'authorized_keys'), 0o600);
  fs.mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const port = await freePort();
  const user = os.userInfo().username;
  fs.writeFileSync(
    path.join(dir, 'sshd_config'),
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      ...Object.keys(types).map((t) => `HostKey ${dir}/host_${t}`),
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      'UsePAM no',
      'MaxSessions 64',
      'MaxStartups 64',
      // No sftp subsystem: twinstack moves files over the exec channel, as on a host without one.
      'LogLevel ERROR',
      // This machine's root .bashrc runs slow initialisations (pyenv) that bash sources for every
      // command sshd runs. SHLVL=1 makes bash skip it, as on a VPS with a plain .bashrc.
      // The test engine runs without a bridge network (dockerd --bridge=none), where compose v2's
      // BuildKit fails every RUN step; the classic builder works. A real VPS has its bridge.
      ['SetEnv SHLVL=1 DOCKER_BUILDKIT=0', ...setEnv(options.env ?? {})].join(' '),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += d));
  try {
    await waitForPort(port);
  } catch (e) {
    child.kill('SIGKILL');
    throw new Error(`sshd did not start: ${stderr || (e as Error).message}`, { cause: e });
  }
  const line = (t: string) => {
    const [type, key] = fs
      .readFileSync(path.join(dir, `host_${t}.pub`), 'utf8')
      .trim()
      .split(/\s+/);
    return `[127.0.0.1]:${port} ${type} ${key}`;
  };
  return {
    port,
    user,
    dir,
    privateKey: fs.readFileSync(path.join(dir, 'client'), 'utf8'),
    knownHosts: Object.keys(types).map(line).join('\n') + '\n',
    knownHostsFor: line,
    stop() {
      // Open sessions are separate processes and end when their clients disconnect.
      child.kill('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  };
}
