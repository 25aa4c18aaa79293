/**
 * Flip the switch, end to end: backups, promotion of the exact commit that passed on dev, the
 * automatic rollback when a promotion fails, and the manual rollback. Prod must always end on a
 * whole release, and say which.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackupManifest } from '../../src/domain/backup';
import { composeCommands, startFixtureHost, type FixtureHost, lastError } from './support/fixture-host';

const composeCommand = composeCommands()[0];

describe(`promote, backup and rollback with ${composeCommand}`, () => {
  let fx: FixtureHost;
  let firstProdRelease = '';
  let secondProdRelease = '';

  const prodHead = () => fx.sh('git rev-parse HEAD', fx.checkout('prod')).trim();
  const prodItems = () => fx.psql('prod', 'select name from items order by id').trim().split('\n');
  const prodRevision = () => fx.psql('prod', 'select version_num from alembic_version').trim();
  const tableExists = (t: string) => fx.psql('prod', `select to_regclass('public.${t}') is not null`).trim() === 't';
  /** prod's containers as the engine sees them: name, id, image id, when it started; and the checkout's HEAD. */
  const prodOnHost = () => ({
    head: prodHead(),
    containers: fx
      .sh(
        `docker ps -aq --no-trunc --filter label=com.docker.compose.project=${fx.project('prod')} | xargs -r docker inspect -f '{{.Name}} {{.Id}} {{.Image}} {{.State.StartedAt}}' | sort`,
      )
      .trim(),
  });
  const imageOf = (service: string) => fx.sh(`docker inspect -f {{.Image}} ${fx.project('prod')}-${service}`).trim();
  const healthy = (env: 'prod' | 'dev') => fx.sh(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${fx.apiPort(env)}/api/health`) === '200';

  async function devReady(branch: string, gate: 'pass' | 'fail' | 'skip'): Promise<void> {
    const d = await fx.run('deploy', { environment: 'dev', ref: branch });
    assert.equal(d.code, 0, d.why);
    if (gate === 'skip') return;
    const g = await fx.run('gate');
    assert.equal(g.code, gate === 'pass' ? 0 : 1, g.visible);
  }

  before(async () => {
    fx = await startFixtureHost(composeCommand);
    // Production as it stands before twinstack promotes anything: main, migrated, with real data.
    const d = await fx.run('deploy', { environment: 'prod', ref: 'main' });
    assert.equal(d.code, 0, d.why);
    firstProdRelease = d.outputs['release-id'];
    fx.sh(`docker exec ${fx.project('prod')}-api alembic upgrade head`);
    fx.psql('prod', "insert into items (name) values ('written before any promotion')");
  });
  after(async () => {
    await fx?.stop();
  });

  it('refuses a commit without a passing gate on dev, before any change', async () => {
    await devReady('failing-test', 'fail');
    const before = prodOnHost();
    const r = await fx.run('promote');
    assert.equal(r.code, 1);
    assert.match(
      lastError(r.stdout),
      new RegExp(`commit ${fx.branches['failing-test']} \\(dev release r\\S+\\) has no passing gate on dev .*Nothing was changed`),
    );
    assert.deepEqual(prodOnHost(), before, 'prod was touched');
    assert.equal(prodHead(), fx.branches.main);
  });

  it('refuses a migration that fails halfway when rehearsed on a copy of prod: prod untouched, earlier rows kept', async () => {
    await devReady('bad-migration', 'skip');
    const apiImageBefore = fx.sh(`docker inspect -f {{.Image}} ${fx.project('prod')}-api`).trim();
    const apiContainerBefore = fx.sh(`docker inspect -f {{.Id}} ${fx.project('prod')}-api`).trim();
    const r = await fx.run('promote', { 'require-gate': 'false' });
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'refused');
    assert.equal(r.outputs['release-id'], firstProdRelease);
    assert.match(
      lastError(r.stdout),
      /refused during rehearsal \(the migration failed when rehearsed on a copy of prod: .*no_such_column.*\); prod was not changed/,
    );
    assert.equal(prodHead(), fx.branches.main);
    assert.equal(fx.sh(`docker inspect -f {{.Image}} ${fx.project('prod')}-api`).trim(), apiImageBefore, 'prod does not run the old api image');
    assert.equal(fx.sh(`docker inspect -f {{.Id}} ${fx.project('prod')}-api`).trim(), apiContainerBefore, "prod's api was restarted");
    assert.equal(prodRevision(), '0001');
    assert.equal(tableExists('half_done'), false, 'the rehearsal touched prod');
    assert.deepEqual(prodItems(), ['written before any promotion']);
    assert.ok(healthy('prod'));
    const log = fx.hostLog('prod');
    assert.deepEqual(
      log.slice(-3).map((x) => x.event),
      ['backup', 'refused', 'finished'],
    );
    assert.equal(log.at(-1)?.outcome, 'failure');
  });

  it('promotes the exact commit that passed on dev: migrated, data kept, backup verified', async () => {
    await devReady('second', 'pass');
    const r = await fx.run('promote');
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.outcome, 'promoted');
    assert.equal(r.outputs.sha, fx.branches.second);
    secondProdRelease = r.outputs['release-id'];
    assert.equal(prodHead(), fx.branches.second);
    assert.equal(prodRevision(), '0002');
    assert.deepEqual(prodItems(), ['written before any promotion']);
    assert.ok(healthy('prod'));
    const manifest = JSON.parse(fs.readFileSync(path.join(fx.dir, 'backups', 'prod', r.outputs['backup-id'], 'manifest.json'), 'utf8')) as BackupManifest;
    assert.equal(manifest.status, 'verified');
    assert.equal(manifest.alembicRevision, '0001');
    assert.equal(manifest.release, firstProdRelease);
    assert.match(r.summary, /prod now runs `\w{12}`/);
  });

  it('changes nothing when prod already runs the commit', async () => {
    const before = prodOnHost();
    const r = await fx.run('promote');
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.outcome, 'unchanged');
    assert.equal(r.outputs['release-id'], secondProdRelease);
    assert.deepEqual(prodOnHost(), before, 'prod was touched');
    assert.equal(before.head, fx.branches.second);
  });

  it('rolls back a promotion whose prod healthcheck fails, without a database restore', async () => {
    await devReady('prod-bad-health', 'pass');
    fx.psql('prod', "insert into items (name, description) values ('written after the promotion', 'kept')");
    const imagesBefore = ['api', 'db', 'worker'].map(imageOf);
    const r = await fx.run('promote');
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'rolled-back');
    assert.equal(r.outputs['release-id'], secondProdRelease);
    assert.match(lastError(r.stdout), /failed during health \(prod: service api is unhealthy/);
    assert.match(r.summary, /\*\*data: nothing lost\.\*\* The schema is unchanged/);
    assert.equal(prodHead(), fx.branches.second);
    assert.deepEqual(['api', 'db', 'worker'].map(imageOf), imagesBefore, 'prod does not run the images it ran before the promotion');
    assert.deepEqual(prodItems(), ['written before any promotion', 'written after the promotion']);
    assert.ok(healthy('prod'));
  });

  it('detects a corrupted backup, and promote refuses to go on without a good one', async () => {
    const b = await fx.run('backup');
    assert.equal(b.code, 0, b.why);
    const file = b.outputs.path;
    assert.equal(fx.sh(`sha256sum ${file}`).split(' ')[0], b.outputs.sha256);
    fs.appendFileSync(file, 'corruption');
    const r = await fx.run('promote', { 'backup-id': b.outputs['backup-id'] });
    assert.equal(r.code, 1);
    assert.match(
      lastError(r.stdout),
      new RegExp(`backup ${b.outputs['backup-id']} cannot be used: db\\.dump is corrupted: its sha256 is \\w+, the manifest says ${b.outputs.sha256}`),
    );
    assert.equal(prodHead(), fx.branches.second);
  });

  it('verifies a backup by restoring it into a scratch database and comparing row counts', async () => {
    const b = await fx.run('backup', { verify: 'restore' });
    assert.equal(b.code, 0, b.why);
    assert.match(b.summary, /restored into a scratch database; \d+ tables match/);
    assert.equal(fx.psql('prod', "select count(*) from pg_database where datname like '%twinstack_verify%'").trim(), '0');
  });

  it('rolls back by hand to a named release, leaving the database alone', async () => {
    const r = await fx.run('rollback', { 'release-id': firstProdRelease });
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs['release-id'], firstProdRelease);
    assert.equal(r.outputs['restored-backup-id'], '');
    assert.equal(prodHead(), fx.branches.main);
    assert.equal(prodRevision(), '0002');
    assert.ok(healthy('prod'));
  });

  it('rolls back by hand with a database restore, stating the writes lost', async () => {
    const b = await fx.run('backup');
    assert.equal(b.code, 0, b.why);
    fx.psql('prod', "insert into items (name) values ('written after the backup')");
    const r = await fx.run('rollback', { 'release-id': secondProdRelease, 'restore-database': 'true', 'backup-id': b.outputs['backup-id'] });
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs['restored-backup-id'], b.outputs['backup-id']);
    assert.equal(prodHead(), fx.branches.second);
    assert.ok(!prodItems().includes('written after the backup'));
    assert.ok(prodItems().includes('written after the promotion'));
    assert.match(r.visible, /every write since then will be lost/);
    assert.match(r.summary, /writes between .* are lost/);
  });

  it('refuses a restore without a named backup, and a hostile release id, in one line', async () => {
    const a = await fx.run('rollback', { 'restore-database': 'true' });
    assert.equal(a.code, 1);
    assert.match(lastError(a.stdout), /restore-database is true but no backup-id was given/);
    const h = await fx.run('rollback', { 'release-id': 'r1;reboot' });
    assert.equal(h.code, 1);
    assert.match(lastError(h.stdout), /release-id "r1;reboot" is not valid/);
  });

  it('after the SSH connection dies mid-promote, the next run reports the stale lock and the unfinished promotion, and refuses until prod is settled', async () => {
    await devReady('third', 'pass');
    const recorded = fx
      .hostLog('prod')
      .filter((x) => x.event === 'release')
      .at(-1)?.release as string;
    assert.ok(recorded, 'prod has a release on record');
    const status0 = new Date().toISOString();
    const running = fx.start('promote');
    // Wait until the promotion is past its backup and has moved prod's checkout, then cut the
    // connection by killing the runner.
    const deadline = Date.now() + 120_000;
    for (;;) {
      const backedUp = fx.hostLog('prod').some((x) => x.event === 'backup' && x.action === 'promote' && x.time > status0);
      if (backedUp && prodHead() === fx.branches.third) break;
      if (Date.now() > deadline) throw new Error('the promotion never reached its backup');
      await new Promise((res) => setTimeout(res, 200));
    }
    running.kill('SIGKILL');
    await running.done;
    const status = await fx.run('status');
    assert.equal(status.code, 0, status.why);
    assert.match(status.summary, /unfinished promote/);
    // The cut run moved prod's checkout: prod no longer runs its release on record, so a new promotion
    // refuses (its rollback point would be a guess) and names the rollback that settles prod.
    const releasesBefore = fx.hostLog('prod').filter((x) => x.event === 'release').length;
    const hostBefore = prodOnHost();
    const refused = await fx.run('promote');
    assert.match(refused.visible, /Stale prod lock: promote run .* died while holding it|Unfinished operation on prod: promote/);
    assert.equal(refused.code, 1, refused.why);
    assert.match(lastError(refused.stdout), new RegExp(`prod does not run its recorded release ${recorded}.*rollback workflow with release-id ${recorded}`));
    assert.equal(fx.hostLog('prod').filter((x) => x.event === 'release').length, releasesBefore);
    assert.deepEqual(prodOnHost(), hostBefore, 'the refused promotion touched prod');
    const settled = await fx.run('rollback', { 'release-id': recorded });
    assert.equal(settled.code, 0, settled.why);
    assert.notEqual(prodHead(), fx.branches.third);
    const r = await fx.run('promote');
    assert.equal(r.outputs.outcome, 'promoted', r.visible);
    assert.equal(prodHead(), fx.branches.third);
    const interrupted = fx.hostLog('prod').filter((x) => x.event === 'interrupted');
    assert.equal(interrupted.length, 1);
    assert.ok(healthy('prod'));
  });
});
