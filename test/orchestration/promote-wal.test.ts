/**
 * promote with backup.wal: a base backup of prod after the dump and before anything ships; one that
 * fails refuses the promotion with prod untouched; without wal-password the action refuses in one
 * line before the host is touched. That pg_basebackup itself works is proven against a real
 * PostgreSQL in test/integration/wal.test.ts.
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

const WAL = 'backup:\n  wal: { enabled: true, admin-user: postgres }\n';
const HOST_KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIHtRQP8nZ8VGtfOFAZuY6D8z2rVmYwK1Bb+s27Yr41ZQ';
const OFFSITE = `  offsite: ${JSON.stringify({
  host: 'backups.example.net',
  user: 'twinstack',
  path: '/srv/backups/makapix',
  'known-hosts': `backups.example.net ssh-ed25519 ${HOST_KEY}`,
  recipients: ['age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p'],
})}\n`;
const keys = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-promote-wal-'));
after(() => fs.rmSync(keys, { recursive: true, force: true }));
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'write-only', '-f', path.join(keys, 'w')], { stdio: 'ignore' });
const WRITE_KEY = fs.readFileSync(path.join(keys, 'w'), 'utf8');
const PASSWORD = 'replication-secret-never-logged';
const PROD_UP = /^docker-compose .* -p makapix-prod up -d --no-build --remove-orphans$/;
const DUMP = /pg_dump .*-Fc .*db\.dump\.partial/s;
const BASE_BACKUP = /^docker run --rm --name makapix-prod-twinstack-basebackup .* --entrypoint pg_basebackup /;
const GATED_TAGGED = /^set -- sha256:\S+ makapix-api:local/;

/** prod runs OLD, dev runs NEW gated; the host answers the base backup's commands (`exitCode` for pg_basebackup). */
function scene(baseBackup: { exitCode: number; stderr?: string } = { exitCode: 0 }, extra = ''): FakeVps {
  const vps = new FakeVps(WAL + extra);
  vps.runRelease('prod', OLD, 'r20260101T000000Z-aaaaaaa');
  vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb', { actor: 'bob' });
  vps.gate(NEW, idsOf(NEW));
  const h = vps.host;
  h.on('wal dir and .pgpass', /^DIR=\S+\/prod\/wal\n.*\.pgpass\.new/s, {});
  h.on('base backup dir', /^install -d -m 700 \S+\/prod\/base$/, {});
  h.on('inspect prod db', /^docker inspect --type container \S+$/, (c) => ({
    stdout: JSON.stringify([
      {
        Id: c.script.split(' ').at(-1),
        Name: '/makapix-prod-db-1',
        Image: 'sha256:db',
        HostConfig: { NetworkMode: 'makapix-prod_default' },
        NetworkSettings: { Networks: { 'makapix-prod_default': {} } },
      },
    ]),
  }));
  h.on('pg_basebackup', BASE_BACKUP, baseBackup);
  h.on('base backup clean-up', /^rm -rf \S+\/prod\/base\/\d{8}T\d{6}Z$/, {});
  h.on('base backup files', /^find \S+\/prod\/base\/\d{8}T\d{6}Z -mindepth 1 /, { stdout: '8000000 base.tar\n180000 backup_manifest\n' });
  return vps;
}

describe('promote with backup.wal', () => {
  it('takes a base backup after the dump and before anything ships, and records it', async () => {
    const vps = scene();
    const r = await runOnFake(promoteAction, vps, { 'wal-password': PASSWORD });
    vps.host.assertAllScripted();
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    const h = vps.host;
    const [dump, base, tagged, up] = [h.indexOf(DUMP), h.indexOf(BASE_BACKUP), h.indexOf(GATED_TAGGED), h.indexOf(PROD_UP)];
    assert.ok(dump >= 0 && base > dump && tagged > base && up > tagged, `order: dump ${dump}, base ${base}, images ${tagged}, up ${up}`);
    // The replication role's password reaches the host on standard input only, never a command line.
    assert.ok(!h.calls.some((c) => c.script.includes(PASSWORD)), 'the password is on a command line');
    const record = vps
      .records('prod')
      .filter((x) => x.event === 'base-backup')
      .at(-1);
    assert.equal(record?.status, 'done');
    assert.match(String(record?.stamp), /^\d{8}T\d{6}Z$/);
  });

  it('a failed base backup refuses the promotion: prod keeps its release, containers and checkout', async () => {
    const vps = scene({ exitCode: 1, stderr: 'pg_basebackup: error: FATAL:  no pg_hba.conf entry for replication connection' });
    const before = vps.running('prod');
    const r = await runOnFake(promoteAction, vps, { 'wal-password': PASSWORD });
    vps.host.assertAllScripted();
    assert.equal(r.outputs.outcome, 'refused');
    assert.match(r.failure, /refused during base-backup \(the base backup of prod \(backup\.wal\) failed: .*no pg_hba\.conf entry/);
    assert.deepEqual(vps.running('prod'), before);
    assert.equal(vps.env.prod.head, OLD);
    assert.equal(vps.host.indexOf(GATED_TAGGED), -1, 'images were tagged for prod after the base backup failed');
    assert.equal(vps.host.indexOf(PROD_UP), -1);
    // The half-written backup directory was removed.
    assert.ok(vps.host.indexOf(/^rm -rf \S+\/prod\/base\/\d{8}T\d{6}Z$/) > vps.host.indexOf(BASE_BACKUP));
    const events = vps.records('prod').map((x) => x.event);
    const promotion = events.slice(events.lastIndexOf('started'));
    assert.deepEqual(promotion, ['started', 'backup', 'base-backup', 'refused', 'finished']);
  });

  it('without wal-password, refuses in one line before touching the host', async () => {
    const vps = scene();
    const r = await runOnFake(promoteAction, vps, {});
    assert.match(r.failure, /^input wal-password is required: backup\.wal is enabled.*replication role twinstack_wal/);
    assert.ok(!r.failure.includes('\n'));
    assert.equal(vps.host.calls.length, 0);
  });

  it('with backup.offsite, the base backup and the WAL not yet pushed go off the host after prod settled', async () => {
    const vps = scene({ exitCode: 0 }, OFFSITE);
    const h = vps.host;
    h.on('offsite tools', /command -v "\$t"/, { stdout: '' });
    h.on('offsite staging', /^DIR=\S+\/\.offsite-[^\n]+\n.*mkdir -p "\$DIR"$/s, {});
    h.on('offsite seal', /\bage --encrypt\b/, (c) => {
      const [, plain, sealed] = /\bPLAIN='?([^\s';]+)'?; SEALED='?([^\s';]+)'?/.exec(c.script) ?? [];
      const plainHash = plain.endsWith('db.dump') ? 'd'.repeat(64) : plain.endsWith('globals.sql') ? 'e'.repeat(64) : 'f'.repeat(64);
      return { stdout: `${plainHash}  ${plain}\n${'a'.repeat(64)}  ${sealed}\n1024\n1200\n` };
    });
    h.on('offsite key dir', /^mktemp -d -t twinstack-offsite\.X+$/, { stdout: '/tmp/twinstack-offsite.k3y\n' });
    h.on('offsite push', /^rsync --recursive\b/, {});
    h.on('offsite read refused', /^rsync --list-only\b/, { exitCode: 23, stderr: 'rrsync: reading is disabled' });
    h.on('offsite clean-up', /^rm -rf \S+$/, {});
    h.on('list the WAL archive', /^find \S+\/prod\/wal -mindepth 1 -maxdepth 1 -type f -printf /, {
      stdout: ['000000010000000000000004', '000000010000000000000003', '000000010000000000000005.partial', '.pgpass'].join('\n'),
    });
    h.on('no segment pushed yet', /^cat -- \S+\/prod\/wal\/\.offsite-pushed$/, { exitCode: 1, stderr: 'No such file or directory' });
    h.on('where the base backup starts', /^tar --occurrence=1 -xOf \S+\/base\.tar backup_label$/, {
      stdout: 'START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\n',
    });
    h.on('when the newest pushed segment was completed', /^FILE=\S+\/prod\/wal\/000000010000000000000004\n/, { stdout: '1000 940\n' });
    const r = await runOnFake(promoteAction, vps, { 'wal-password': PASSWORD, 'offsite-ssh-key': WRITE_KEY });
    h.assertAllScripted();
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    const sealed = h.scripts(/\bage --encrypt\b/).map((c) => /PLAIN='?([^\s';]+)/.exec(c)?.[1] ?? '');
    const up = h.indexOf(PROD_UP);
    const baseSeal = h.indexOf(/PLAIN='?\S+\/prod\/base\/\d{8}T\d{6}Z\/base\.tar/);
    assert.ok(up >= 0 && baseSeal > up, `the base backup was sealed after the swap (up ${up}, seal ${baseSeal})`);
    assert.deepEqual(
      sealed.filter((f) => /\/prod\/wal\//.test(f)).map((f) => f.split('/').at(-1)),
      ['000000010000000000000003', '000000010000000000000004'],
    );
    assert.equal(h.files.get(`${vps.config.backup.dir}/prod/wal/.offsite-pushed`)?.toString(), '000000010000000000000004\n');
    // The base backup's record says, in the clear, which segment it starts from: the off-host retention reads it.
    const baseRecord = [...h.files.entries()].find(([f]) => /\/\.offsite-\d{8}T\d{6}Z\/prod\/base\/\d{8}T\d{6}Z\/upload\.json$/.test(f));
    assert.match(baseRecord?.[1].toString() ?? '', /"walStart": "000000010000000000000003"/);
    const copies = vps.records('prod').filter((x) => x.event === 'offsite');
    assert.deepEqual(
      copies.map((x) => [String(x.backup).replace(/^base\/\d{8}T\d{6}Z$/, 'base/STAMP'), x.status]),
      [
        [r.outputs['backup-id'], 'copied'],
        ['base/STAMP', 'copied'],
        ['wal', 'copied'],
      ],
    );
    assert.match(r.summary, /Off the host \(WAL archiving\)/);
  });

  it('without backup.wal, takes no base backup and ignores a wal-password the workflow passes', async () => {
    const vps = new FakeVps();
    vps.runRelease('prod', OLD, 'r20260101T000000Z-aaaaaaa');
    vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb', { actor: 'bob' });
    vps.gate(NEW, idsOf(NEW));
    const r = await runOnFake(promoteAction, vps, { 'wal-password': PASSWORD });
    vps.host.assertAllScripted();
    assert.equal(r.outputs.outcome, 'promoted', r.failure);
    assert.equal(vps.host.indexOf(/pg_basebackup/), -1);
  });
});
