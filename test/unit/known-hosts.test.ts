import { strict as assert } from 'node:assert';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ConfigurationError } from '../../src/infra/errors';
import { hostKeyAlgorithms, hostKeyPolicy, hostMatches, parseKnownHosts } from '../../src/infra/known-hosts';

// Real public keys (ssh-keygen output), for parsing only.
const ED = 'AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ';
const ED2 = 'AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl';

function keyBlob(b64: string): Buffer {
  return Buffer.from(b64, 'base64');
}

describe('known_hosts lines', () => {
  it('matches plain names, [host]:port, wildcards and negations', () => {
    assert.ok(hostMatches('vps.example.com,203.0.113.7', 'vps.example.com', 22));
    assert.ok(!hostMatches('vps.example.com', 'vps.example.com', 2222));
    assert.ok(hostMatches('[vps.example.com]:2222', 'vps.example.com', 2222));
    assert.ok(hostMatches('*.example.com', 'vps.example.com', 22));
    assert.ok(!hostMatches('*.example.com,!vps.example.com', 'vps.example.com', 22));
  });

  it('matches hashed host names', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update('[10.0.0.1]:2200').digest('base64');
    const hashed = `|1|${salt.toString('base64')}|${hash}`;
    assert.ok(hostMatches(hashed, '10.0.0.1', 2200));
    assert.ok(!hostMatches(hashed, '10.0.0.1', 22));
  });

  it('accepts only the pinned key, and explains a mismatch with fingerprints', () => {
    const policy = hostKeyPolicy(`vps ssh-ed25519 ${ED}\n`, 'vps', 22);
    assert.deepEqual(policy.verify(keyBlob(ED)), { ok: true });
    const v = policy.verify(keyBlob(ED2));
    assert.equal(v.ok, false);
    assert.match(
      (v as { reason: string }).reason,
      /host key mismatch for vps: the server offered ssh-ed25519 SHA256:\S+, known-hosts pins ssh-ed25519 SHA256:\S+/,
    );
  });

  it('says which line to add when the host has no key', () => {
    assert.throws(
      () => hostKeyPolicy(`other ssh-ed25519 ${ED}`, 'vps', 2222),
      (e: Error) => {
        assert.ok(e instanceof ConfigurationError);
        assert.match(e.message, /known-hosts has no key for \[vps\]:2222: add the line from the host's \/etc\/ssh\/ssh_host_\*_key\.pub/);
        return true;
      },
    );
  });

  it('reports a malformed line by number', () => {
    assert.throws(() => parseKnownHosts(`# comment\nvps ssh-ed25519\n`), /known-hosts line 2: expected "host key-type base64-key"/);
    assert.throws(() => parseKnownHosts(`vps ssh-rsa ${ED}`), /line 1: the key is of type ssh-ed25519, not ssh-rsa/);
  });

  it('offers the server only the key types that are pinned (all rsa-sha2 variants for RSA keys)', () => {
    const rsaBlob = Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), randomBytes(64)]).toString('base64');
    const entries = parseKnownHosts(`vps ssh-ed25519 ${ED}\nvps ssh-rsa ${rsaBlob}`);
    assert.deepEqual(hostKeyAlgorithms(entries), ['ssh-ed25519', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
  });
});
