/**
 * Host key pinning from known_hosts lines (the format of ~/.ssh/known_hosts): plain and hashed
 * host names, [host]:port, wildcards, negations, @revoked. No trust on first use.
 */
import { createHash, createHmac } from 'node:crypto';
import { ConfigurationError } from './errors';

export interface KnownHostEntry {
  line: number;
  marker: '' | '@revoked' | '@cert-authority';
  hosts: string;
  keyType: string;
  key: Buffer;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((rawLine, i) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry['marker'] = '';
    if (fields[0].startsWith('@')) {
      const m = fields.shift() as string;
      if (m !== '@revoked' && m !== '@cert-authority') {
        throw new ConfigurationError(`known-hosts line ${i + 1}: unknown marker ${m}; use @revoked, @cert-authority or none`);
      }
      marker = m;
    }
    if (fields.length < 3) {
      throw new ConfigurationError(`known-hosts line ${i + 1}: expected "host key-type base64-key", as in ~/.ssh/known_hosts`);
    }
    const [hosts, keyType, b64] = fields;
    const key = Buffer.from(b64, 'base64');
    if (key.length < 16 || key.toString('base64').replace(/=+$/, '') !== b64.replace(/=+$/, '')) {
      throw new ConfigurationError(`known-hosts line ${i + 1}: the key is not valid base64`);
    }
    const embeddedType = readKeyType(key);
    if (embeddedType !== keyType) {
      throw new ConfigurationError(`known-hosts line ${i + 1}: the key is of type ${embeddedType ?? 'unknown'}, not ${keyType}`);
    }
    entries.push({ line: i + 1, marker, hosts, keyType, key });
  });
  return entries;
}

/** The type name stored at the start of an SSH public key blob. */
function readKeyType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const len = blob.readUInt32BE(0);
  if (len <= 0 || len > 64 || 4 + len > blob.length) return undefined;
  return blob.subarray(4, 4 + len).toString('latin1');
}

function hostString(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function wildcardMatch(pattern: string, text: string): boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
  return re.test(text);
}

export function hostMatches(hosts: string, host: string, port: number): boolean {
  const target = hostString(host, port);
  if (hosts.startsWith('|1|')) {
    const [, , salt, hash] = hosts.split('|');
    if (!salt || !hash) return false;
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(target).digest('base64');
    return digest === hash;
  }
  let matched = false;
  for (const pattern of hosts.split(',')) {
    const negated = pattern.startsWith('!');
    const p = negated ? pattern.slice(1) : pattern;
    if (wildcardMatch(p, target)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** The host-key algorithms to offer the server, so it presents a key type we can check. */
export function hostKeyAlgorithms(entries: KnownHostEntry[]): string[] {
  const algos: string[] = [];
  for (const e of entries) {
    const list = e.keyType === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [e.keyType];
    for (const a of list) if (!algos.includes(a)) algos.push(a);
  }
  return algos;
}

export interface HostKeyPolicy {
  /** The pinned (non-revoked) entries for this host. */
  pinned: KnownHostEntry[];
  verify(key: Buffer): { ok: true } | { ok: false; reason: string };
}

export function hostKeyPolicy(knownHosts: string, host: string, port: number): HostKeyPolicy {
  const all = parseKnownHosts(knownHosts);
  const forHost = all.filter((e) => e.marker !== '@revoked' && hostMatches(e.hosts, host, port));
  const revoked = all.filter((e) => e.marker === '@revoked');
  if (forHost.some((e) => e.marker === '@cert-authority')) {
    throw new ConfigurationError('known-hosts: @cert-authority lines are not supported; pin the host keys themselves');
  }
  if (forHost.length === 0) {
    throw new ConfigurationError(
      `known-hosts has no key for ${hostString(host, port)}: add the line from the host's /etc/ssh/ssh_host_*_key.pub (as "${hostString(host, port)} <type> <key>")`,
    );
  }
  return {
    pinned: forHost,
    verify(key: Buffer) {
      if (revoked.some((e) => e.key.equals(key))) {
        return { ok: false, reason: `the host key ${fingerprint(key)} of ${hostString(host, port)} is marked @revoked in known-hosts` };
      }
      if (forHost.some((e) => e.key.equals(key))) return { ok: true };
      const pinnedPrints = forHost.map((e) => `${e.keyType} ${fingerprint(e.key)}`).join(', ');
      return {
        ok: false,
        reason:
          `host key mismatch for ${hostString(host, port)}: the server offered ${readKeyType(key) ?? 'a key'} ${fingerprint(key)}, ` +
          `known-hosts pins ${pinnedPrints}; if the host was reinstalled update known-hosts, otherwise do not connect`,
      };
    },
  };
}
