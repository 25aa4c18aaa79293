/**
 * rsync over ssh, run on the VPS toward another host: the one builder of those command lines. The
 * ssh under rsync reads no user or system config, uses only the key it is given, and trusts only
 * the host keys in the known_hosts file it is given (StrictHostKeyChecking=yes): no trust on first use.
 */
import { argv } from './shell';

export interface SshTransport {
  /** The private key's file on the VPS (0600). */
  keyFile: string;
  /** A known_hosts file holding only the other host's pinned keys. */
  knownHostsFile: string;
  port: number;
  connectTimeoutSeconds?: number;
}

/** The `-e` command rsync runs to reach the other host. */
export function sshTransport(t: SshTransport): string {
  return argv(
    'ssh',
    '-F',
    '/dev/null',
    '-p',
    String(t.port),
    '-i',
    t.keyFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'IdentityAgent=none',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${t.knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'UpdateHostKeys=no',
    '-o',
    `ConnectTimeout=${t.connectTimeoutSeconds ?? 20}`,
    '-o',
    'ServerAliveInterval=15',
  );
}

/** `user@host:path` as rsync reads it (an IPv6 address in brackets). */
export function remoteSpec(user: string, host: string, path: string): string {
  const h = host.includes(':') ? `[${host.replace(/^\[|\]$/g, '')}]` : host;
  return `${user}@${h}:${path}`;
}

export interface RsyncPush {
  /** Local sources on the VPS; a directory without a trailing slash is copied as itself. */
  sources: readonly string[];
  /** `remoteSpec(...)`. */
  destination: string;
  transport: SshTransport;
  /** rsync's I/O timeout: a stalled transfer ends instead of hanging. */
  ioTimeoutSeconds?: number;
}

/**
 * Adds files to the other host and never changes one already there: no --delete, and
 * --ignore-existing (the backup host's rrsync -no-overwrite enforces the same on its side).
 */
export function rsyncAddOnly(p: RsyncPush): string {
  return argv(
    'rsync',
    '--recursive',
    '--times',
    '--ignore-existing',
    `--timeout=${p.ioTimeoutSeconds ?? 120}`,
    '-e',
    sshTransport(p.transport),
    '--',
    p.sources,
    p.destination,
  );
}

/** Lists a remote path (a read): used to prove the key cannot read, so it must fail. */
export function rsyncList(source: string, transport: SshTransport): string {
  return argv('rsync', '--list-only', '--timeout=60', '-e', sshTransport(transport), '--', source);
}

/** A known_hosts file's content: the given lines, one per line, nothing else. */
export function knownHostsFile(lines: string): string {
  return (
    lines
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'))
      .join('\n') + '\n'
  );
}
