/**
 * promote with backup.offsite: the backup it takes goes off the host once prod has settled, under
 * prod's lock; a failed copy never undoes the promotion, and fails the step unless
 * backup.offsite.required is false; a named backup-id is not copied again. That the copy itself
 * works (age on the VPS, rrsync -wo on a second sshd, the check on arrival) is proven in
 * test/integration/offsite.test.ts.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { promoteAction } from '../../src/actions/promote/promote';
import { FakeVps, SERVICES, imageId, sha } from '../support/fake-vps';
import { runOnFake } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');
const idsOf = (commit: string) => Object.fromEntries(SERVICES.map((s) => [s.service, imageId(`${s.service}@${commit}`)]));

const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const HOST_KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIHtRQP8nZ8VGtfOFAZuY6D8z2rVmYwK1Bb+s27Yr41ZQ';
const offsite = (extra: Record<string, unknown> = {}) =>
  `backup:\n  offsite: ${JSON.stringify({
    host: 'backups.example.net',
    user: 'twinstack',
    path: '/srv/backups/makapix',
    'known-hosts': `backups.example.net ssh-ed25519 ${HOST_KEY}`,
    recipients: [RECIPIENT],
    ...extra,
  })}\n`;

const PROD_UP = /^docker-compose .* -p makapix-prod up -d --no-build --remove-orphans$/;
const SEAL = /\bage --encrypt\b/;
const PUSH = /^rsync --recursive\b/;
const KEY_DIR = '/tmp/twinstack-offsite.k3y';

const keys = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-promote-offsite-'));
after(() => fs.rmSync(keys, { recursive: true, force: true }));
function key(name: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', path.join(keys, name)], { stdio: 'ignore' });
  return fs.readFileSync(path.join(keys, name), 'utf8');
}
const INPUTS = { 'ssh-key': key('login'), 'offsite-ssh-key': key('write-only') };

/** prod runs OLD, dev runs NEW gated; the VPS has age and rsync, and the backup host takes the push. */
function scene(extra = '', push: { exitCode: number; stderr?: string } = { exitCode: 0 }): FakeVps {
  const vps = new FakeVps(offsite() + extra);
  vps.runRelease('prod', OLD, 'r20260101T000000Z-aaaaaaa');
  vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb', { actor: 'bob' });
  vps.gate(NEW, idsOf(NEW));
  const h = vps.host;
  h.on('offsite tools', /command -v "\$t"/, { stdout: '' });
  h.on('offsite staging', /^DIR='?\S+\/\.offsite-b[^\s']+'?\n.*mkdir -p "\$DIR"$/s, {});
  // The fake's backup answers d… for db.dump and e… for globals.sql: the sealed file's plain hash must match.
  h.on('offsite seal', SEAL, (c) => {
    const [, plain, sealed] = /\bPLAIN='?([^\s';]+)'?; SEALED='?([^\s';]+)'?/.exec(c.script) ?? [];
    const plainHash = plain.endsWith('db.dump') ? 'd'.repeat(64) : plain.endsWith('globals.sql') ? 'e'.repeat(64) : 'f'.repeat(64);
    return { stdout: `${plainHash}  ${plain}\n${'a'.repeat(64)}  ${sealed}\n1024\n1200\n` };
  });
  h.on('offsite key dir', /^mktemp -d -t twinstack-offsite\.X+$/, { stdout: `${KEY_DIR}\n` });
  h.on('offsite push', PUSH, push);
  // A write-only key may not read: the check that it is confined.
  h.on('offsite read refused', /^rsync --list-only\b/, { exitCode: 23, stderr: 'rrsync: reading is disabled' });
  h.on('offsite clean-up', /^rm -rf \S+$/, {});
  return vps;
}

describe('promote with backup.offsite', () => {
  it('copies the backup it took off the host after prod settled, under the lock, and records where', async () => {
    const vps = scene();
    const r = await runOnFake(promoteAction, vps, INPUTS);
    vps.host.assertAllScripted();
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    const id = r.outputs['backup-id'];
    assert.match(id, /^b\d{8}T\d{6}Z-prod$/);
    assert.equal(r.outputs.offsite, 'copied');
    assert.equal(r.outputs['offsite-path'], `twinstack@backups.example.net:/srv/backups/makapix/prod/${id}`);
    const h = vps.host;
    const up = h.indexOf(PROD_UP);
    const push = h.indexOf(PUSH);
    assert.ok(up >= 0 && push > up, `the copy ran after the swap (up ${up}, push ${push})`);
    // Before the lock was released, and the write-only key left the VPS again.
    const released = Math.max(...h.calls.map((c, n) => (/^rm -f \S+\/prod\/lock-holder\.json$/.test(c.script) ? n : -1)));
    assert.ok(push < released, `the copy ran after prod's lock was released (push ${push}, release ${released})`);
    assert.ok(h.calls.some((c) => c.rule === 'writeFile' && c.script.includes(`${KEY_DIR}/key`)));
    assert.ok(h.indexOf(new RegExp(`^rm -rf ${KEY_DIR}$`)) > push, 'the key file was not removed after the push');
    const copied = vps
      .records('prod')
      .filter((x) => x.event === 'offsite')
      .at(-1);
    assert.deepEqual(copied && { backup: copied.backup, status: copied.status }, { backup: id, status: 'copied' });
    const record = JSON.parse(h.files.get(`${vps.config.backup.dir}/prod/${id}/offsite.json`)?.toString() ?? '{}') as { status?: string };
    assert.equal(record.status, 'copied');
    assert.match(r.summary, /Encrypted copy on the backup host/);
  });

  it('a failed copy fails the step but leaves prod on the new release, saying so', async () => {
    const vps = scene('', { exitCode: 255, stderr: 'twinstack@backups.example.net: Permission denied (publickey).' });
    const r = await runOnFake(promoteAction, vps, INPUTS);
    vps.host.assertAllScripted();
    assert.equal(r.outputs.outcome, 'promoted');
    assert.deepEqual(vps.running('prod'), idsOf(NEW), 'the failed copy undid the promotion');
    assert.equal(vps.env.prod.head, NEW);
    assert.equal(r.outputs.offsite, 'failed');
    assert.match(
      r.failure,
      /prod runs release r\S+, but the off-host copy of backup b\S+ failed: the backup host backups\.example\.net:22 refused offsite-ssh-key/,
    );
    assert.match(r.summary, /The off-host copy failed/);
  });

  it('with backup.offsite.required false, a failed copy only warns', async () => {
    const relaxed = scene('', { exitCode: 255, stderr: 'Connection refused' });
    relaxed.config.backup.offsite = { ...relaxed.config.backup.offsite!, required: false };
    const r = await runOnFake(promoteAction, relaxed, INPUTS);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    assert.equal(r.outputs.offsite, 'failed');
    assert.ok(r.log.lines.some((l) => /off-host copy of backup b\S+ failed.*required is false/.test(l)));
  });

  it('does not copy a named backup again (the backup action copied it when it took it)', async () => {
    const vps = scene();
    vps.putBackup('b20260101T000000Z-prod', new Date(Date.now() - 10 * 60_000));
    const r = await runOnFake(promoteAction, vps, { ...INPUTS, 'backup-id': 'b20260101T000000Z-prod' });
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.offsite, 'off');
    assert.equal(vps.host.indexOf(SEAL), -1);
    assert.equal(vps.host.indexOf(PUSH), -1);
  });

  it('refuses offsite-ssh-key without backup.offsite in one line, before connecting', async () => {
    const vps = new FakeVps();
    vps.runRelease('prod', OLD, 'r20260101T000000Z-aaaaaaa');
    const r = await runOnFake(promoteAction, vps, INPUTS);
    assert.match(r.failure, /input offsite-ssh-key is given but the config has no backup\.offsite/);
    assert.equal(vps.host.calls.length, 0);
  });
});
