/**
 * promote with backup.wal: a base backup of prod after the dump and before anything ships; one that
 * fails refuses the promotion with prod untouched; without wal-password the action refuses in one
 * line before the host is touched. That pg_basebackup itself works is proven against a real
 * PostgreSQL in test/integration/wal.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { promoteAction } from '../../src/actions/promote/promote';
import { FakeVps, SERVICES, imageId, sha } from '../support/fake-vps';
import { runOnFake } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');
const idsOf = (commit: string) => Object.fromEntries(SERVICES.map((s) => [s.service, imageId(`${s.service}@${commit}`)]));

const WAL = 'backup:\n  wal: { enabled: true, admin-user: postgres }\n';
const PASSWORD = 'replication-secret-never-logged';
const PROD_UP = /^docker-compose .* -p makapix-prod up -d --no-build --remove-orphans$/;
const DUMP = /pg_dump .*-Fc .*db\.dump\.partial/s;
const BASE_BACKUP = /^docker run --rm --name makapix-prod-twinstack-basebackup .* --entrypoint pg_basebackup /;
const GATED_TAGGED = /^set -- sha256:\S+ makapix-api:local/;

/** prod runs OLD, dev runs NEW gated; the host answers the base backup's commands (`exitCode` for pg_basebackup). */
function scene(baseBackup: { exitCode: number; stderr?: string } = { exitCode: 0 }): FakeVps {
  const vps = new FakeVps(WAL);
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
