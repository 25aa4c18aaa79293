/**
 * rollback's choices, against a fake host: which release it goes to (the one the current release
 * replaced, never one a rollback already left; a named one), when it refuses, when it restores the
 * database, and how it fails. Each is asserted on the commands that ran and on what the fake host
 * runs afterwards. That a rollback really starts the tagged images again is proven in
 * test/e2e/promote-rollback.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { rollbackAction } from '../../src/actions/rollback/rollback';
import { ConfigurationError } from '../../src/infra/errors';
import { HealthError } from '../../src/domain/release';
import { FakeVps, SERVICES, imageId, sha } from '../support/fake-vps';
import { runOnFake, type ActionRun } from '../support/run-action';

const [A, B, C] = [sha('a'), sha('b'), sha('c')];
const [R1, R2, R3] = ['r20260101T000000Z-aaaaaaa', 'r20260102T000000Z-bbbbbbb', 'r20260103T000000Z-ccccccc'];
const idsOf = (commit: string) => Object.fromEntries(SERVICES.map((s) => [s.service, imageId(`${s.service}@${commit}`)]));
const BACKUP_ID = 'b20260103T000000Z-prod';

const UP = /^docker-compose .* -p makapix-prod up -d --no-build --remove-orphans$/;
const RESTORE = /^PENDING_DIR=.*pg_restore .*--single-transaction/s;
const imagesBack = (release: string) => new RegExp(`^set -- twinstack/makapix-prod-api:${release} makapix-api:local`);

/** prod ran R1 (A), then R2 (B), then R3 (C): each replaced the one before. */
function scene(): FakeVps {
  const vps = new FakeVps();
  vps.runRelease('prod', A, R1);
  vps.runRelease('prod', B, R2, { kind: 'promote', previous: R1 });
  vps.runRelease('prod', C, R3, { kind: 'promote', previous: R2 });
  return vps;
}

async function rollback(vps: FakeVps, inputs: Record<string, string> = {}): Promise<ActionRun> {
  const r = await runOnFake(rollbackAction, vps, inputs);
  vps.host.assertAllScripted();
  return r;
}

/** A backup on disk, and what restoring it puts back. */
function withBackup(vps: FakeVps, status: 'verified' | 'failed' = 'verified'): FakeVps {
  vps.putBackup(BACKUP_ID, new Date('2026-01-03T00:00:00Z'), status);
  vps.backupSchema = { revision: 'r0', tables: 'CREATE TABLE users (id int);' };
  return vps;
}

const lastRelease = (vps: FakeVps) => vps.last('prod', 'release');

describe('rollback: where it goes', () => {
  it('goes back to the release the current one replaced: its tagged images, its commit, no rebuild, no restore', async () => {
    const vps = scene();
    const r = await rollback(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs['release-id'], R2);
    const h = vps.host;
    const back = h.indexOf(imagesBack(R2));
    const checkout = h.indexOf(/checkout --quiet --detach b{40}$/);
    const up = h.indexOf(UP);
    assert.ok(back >= 0 && back < checkout && checkout < up, `${back} ${checkout} ${up}`);
    assert.equal(h.indexOf(/ build/), -1, 'nothing was built');
    assert.equal(h.indexOf(RESTORE), -1, 'the database was not restored');
    assert.deepEqual(vps.running('prod'), idsOf(B));
    assert.equal(vps.env.prod.head, B);
    assert.equal(lastRelease(vps)?.kind, 'rollback');
    assert.equal(lastRelease(vps)?.rolledBackFrom, R3);
    assert.match(r.summary, /database not restored/);
  });

  it('a second rollback goes on down the stack (R3 → R2 → R1), never back to the release it left', async () => {
    const vps = scene();
    vps.runRelease('prod', B, R2, { kind: 'rollback', previous: R1, rolledBackFrom: R3 });
    const r = await rollback(vps);
    assert.equal(r.outputs['release-id'], R1, r.failure);
    assert.deepEqual(vps.running('prod'), idsOf(A));
    assert.equal(vps.host.indexOf(imagesBack(R3)), -1);
  });

  it('goes to a named release', async () => {
    const vps = scene();
    const r = await rollback(vps, { 'release-id': R1 });
    assert.equal(r.outputs['release-id'], R1, r.failure);
    assert.ok(vps.host.indexOf(imagesBack(R1)) >= 0);
    assert.deepEqual(vps.running('prod'), idsOf(A));
  });

  it('settles a drifted prod and records what it settled', async () => {
    const vps = scene();
    vps.env.prod.head = sha('d');
    const r = await rollback(vps);
    assert.equal(r.outputs['release-id'], R2, r.failure);
    assert.match(JSON.stringify(lastRelease(vps)), /"settled":\["the checkout is at dddddddddddd/);
    assert.match(r.log.text, /does not run its recorded release/);
  });
});

describe('rollback: refusals (nothing changes)', () => {
  function assertUnchanged(vps: FakeVps) {
    assert.equal(vps.host.indexOf(/docker tag "\$1"/), -1, 'no image name moved');
    assert.equal(vps.host.indexOf(/checkout --quiet --detach/), -1);
    assert.equal(vps.host.indexOf(UP), -1);
    assert.deepEqual(vps.running('prod'), idsOf(C));
    assert.equal(lastRelease(vps)?.release, R3);
  }

  it('refuses a release id prod never ran', async () => {
    const vps = scene();
    const r = await rollback(vps, { 'release-id': 'r20250101T000000Z-fffffff' });
    assert.match(r.failure, /prod has no release r20250101T000000Z-fffffff in its host log; known: r20260103T000000Z-ccccccc, r20260102/);
    assertUnchanged(vps);
  });

  it('refuses when the only earlier release is one a rollback left', async () => {
    const vps = new FakeVps();
    vps.runRelease('prod', A, R1);
    vps.runRelease('prod', B, R2, { previous: R1 });
    vps.runRelease('prod', C, R3, { previous: R2 });
    vps.runRelease('prod', A, R1, { kind: 'rollback', rolledBackFrom: R3 });
    vps.runRelease('prod', B, R2, { kind: 'rollback', rolledBackFrom: R1 });
    vps.env.prod.containers = vps.env.prod.containers.map((c) => ({ ...c, imageId: idsOf(B)[c.service] }));
    const r = await rollback(vps);
    assert.match(r.failure, /has no release to roll back to: .*passed over: r20260101T000000Z-aaaaaaa.*Nothing was changed/);
    assert.equal(vps.host.indexOf(UP), -1);
  });

  it('refuses a restore without a backup id, before connecting', async () => {
    const vps = scene();
    const r = await rollback(vps, { 'restore-database': 'true' });
    assert.ok(r.error instanceof ConfigurationError);
    assert.equal(vps.host.calls.length, 0);
  });

  it('refuses to restore a backup that failed when it was taken', async () => {
    const vps = withBackup(scene(), 'failed');
    const r = await rollback(vps, { 'restore-database': 'true', 'backup-id': BACKUP_ID });
    assert.match(r.failure, /backup b20260103T000000Z-prod failed when it was taken/);
    assertUnchanged(vps);
  });

  it('refuses to restore a backup whose dump no longer matches its checksum', async () => {
    const vps = withBackup(scene());
    vps.host.on('corrupted dump', /^sha256sum \S+db\.dump$/, { stdout: `${'0'.repeat(64)}  db.dump\n` });
    const r = await rollback(vps, { 'restore-database': 'true', 'backup-id': BACKUP_ID });
    assert.match(r.failure, /db\.dump is corrupted/);
    assertUnchanged(vps);
    assert.equal(vps.host.indexOf(RESTORE), -1);
  });
});

describe('rollback: with the database', () => {
  it('restores the named backup with the app services stopped, then starts the release', async () => {
    const vps = withBackup(scene());
    const r = await rollback(vps, { 'restore-database': 'true', 'backup-id': BACKUP_ID });
    assert.equal(r.error, undefined, r.failure);
    const h = vps.host;
    const stop = h.indexOf(/-p makapix-prod stop api cache caddy mqtt web worker$/);
    const restore = h.indexOf(RESTORE);
    const up = h.indexOf(UP);
    assert.ok(stop >= 0 && stop < restore && restore < up, `stop ${stop}, restore ${restore}, up ${up}`);
    assert.equal(vps.schema.revision, 'r0');
    assert.equal(r.outputs['restored-backup-id'], BACKUP_ID);
    assert.equal(lastRelease(vps)?.restoredBackup, BACKUP_ID);
    assert.match(r.summary, /database restored from `b20260103T000000Z-prod`/);
  });

  it('starts the release anyway when the restore fails, and fails naming the restore', async () => {
    const vps = withBackup(scene());
    vps.host.on('restore fails', RESTORE, { exitCode: 1, stderr: 'pg_restore: error: could not execute query' });
    const r = await rollback(vps, { 'restore-database': 'true', 'backup-id': BACKUP_ID });
    assert.match(r.failure, /restoring prod from backup b20260103T000000Z-prod exited with code 1/);
    assert.ok(vps.host.indexOf(UP) > vps.host.indexOf(RESTORE), 'the services were started again after the failed restore');
    assert.equal(lastRelease(vps)?.release, R3, 'no release is recorded');
  });
});

describe('rollback: failures', () => {
  it("fails when the target release's images are gone: nothing is started", async () => {
    const vps = scene();
    vps.images.delete(`twinstack/makapix-prod-web:${R2}`);
    const r = await rollback(vps);
    assert.match(r.failure, /release r20260102T000000Z-bbbbbbb's images are gone from the host/);
    assert.equal(vps.host.indexOf(UP), -1);
    assert.deepEqual(vps.running('prod'), idsOf(C));
    assert.match(r.summary, /target release: `r20260102T000000Z-bbbbbbb`/);
  });

  it('fails when the release it starts is unhealthy, and records no release', async () => {
    const vps = scene();
    vps.health = (_env, service, id) =>
      service === 'worker' && id === idsOf(B).worker
        ? { status: 'restarting', health: 'starting', exitCode: 1 }
        : { status: 'running', health: 'healthy', exitCode: 0 };
    const r = await rollback(vps);
    assert.ok(r.error instanceof HealthError, r.failure);
    assert.match(r.failure, /service worker is restarting/);
    assert.equal(lastRelease(vps)?.release, R3);
    assert.equal(vps.last('prod', 'finished')?.outcome, 'failure');
  });
});
