/**
 * Flip the switch as issue "without losing a write" asks, end to end on the real engine through the
 * bundles: the commit as an input, the gated images shipped (a differing build rebuilt and named),
 * a migration that fails only on prod's data refused by the rehearsal with prod untouched, the same
 * migration rolling back by itself with no restore and no write lost, a migration that commits part
 * of its work restored with the lost rows counted, and an app that migrates when it starts.
 * Every assertion is on the host: container and image ids, the schema, the rows.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { composeCommands, startFixtureHost, type FixtureHost, lastError } from './support/fixture-host';

const composeCommand = composeCommands()[0];

describe(`flip the switch without losing a write, with ${composeCommand}`, () => {
  let fx: FixtureHost;
  const configFile = () => path.join(fx.workspace, '.github', 'twinstack.yml');
  const original = { text: '' };

  /** Replaces the config's promote section (and sets a gate section) for the next runs. */
  function configure(promote: string, gate = ''): void {
    const text = original.text.replace(/^promote: .*$/m, `promote: { database-env: DB_NAME, ${promote} }`) + (gate ? `gate: { ${gate} }\n` : '');
    fs.writeFileSync(configFile(), text);
  }
  const prodIds = () => fx.sh(`docker ps -q --no-trunc --filter label=com.docker.compose.project=${fx.project('prod')} | sort`).trim();
  const imageOf = (env: 'prod' | 'dev', service: string) => fx.sh(`docker inspect -f '{{.Image}}' ${fx.project(env)}-${service}`).trim();
  const schemaHash = () =>
    fx
      .sh(
        `docker exec ${fx.project('prod')}-db pg_dump -s -U owner -p ${fx.dbPort('prod')} makapix | grep -v -e '^--' -e '^\\\\restrict' -e '^\\\\unrestrict' | sha256sum`,
      )
      .trim();
  const revision = () => fx.psql('prod', 'select version_num from alembic_version').trim();
  const items = () => fx.psql('prod', 'select name from items order by id').trim().split('\n');
  const lastGate = (sha: string) =>
    fx
      .hostLog('dev')
      .filter((r) => r.event === 'gate' && r.sha === sha)
      .at(-1) as { images: Record<string, string> } | undefined;
  const healthy = () => fx.sh(`curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:${fx.apiPort('prod')}/api/health`) === '200';

  async function devReady(branch: string, gate: boolean): Promise<void> {
    // The scenario branches reuse revision ids (each has its own 0002): dev starts each one afresh.
    if (fx.sh(`docker ps -q --filter name=${fx.project('dev')}-db`).trim()) fx.psql('dev', 'drop table if exists items, alembic_version, half_done cascade');
    const d = await fx.run('deploy', { environment: 'dev', ref: branch });
    assert.equal(d.code, 0, d.why);
    if (!gate) return;
    const g = await fx.run('gate');
    assert.equal(g.code, 0, g.why);
  }

  /** Waits until the running promote has recorded its backup. */
  async function backupRecorded(since: string): Promise<void> {
    const deadline = Date.now() + 180_000;
    while (!fx.hostLog('prod').some((x) => x.event === 'backup' && x.action === 'promote' && x.time > since)) {
      if (Date.now() > deadline) throw new Error('the promotion never recorded its backup');
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  before(async () => {
    fx = await startFixtureHost(composeCommand);
    original.text = fs.readFileSync(configFile(), 'utf8');
    const d = await fx.run('deploy', { environment: 'prod', ref: 'main' });
    assert.equal(d.code, 0, d.why);
    fx.sh(`docker exec ${fx.project('prod')}-api alembic upgrade head`);
    // Duplicate names exist only in prod's data.
    fx.psql('prod', "insert into items (name) values ('prod row'), ('duplicate'), ('duplicate')");
  });
  after(async () => {
    await fx?.stop();
  });

  it('refuses a commit not on promote.branch, a commit that never passed the gate, and a dispatcher who pushed it, before any change', async () => {
    await devReady('unique-names', true);
    const ids = prodIds();
    configure('branch: main');
    const off = await fx.run('promote', { sha: fx.branches['unique-names'] });
    assert.equal(off.code, 1);
    assert.match(lastError(off.stdout), /is not on origin\/main \(promote\.branch\)/);
    configure("branch: '*'");
    const ungated = await fx.run('promote', { sha: fx.branches.third });
    assert.equal(ungated.code, 1);
    assert.match(lastError(ungated.stdout), new RegExp(`commit ${fx.branches.third} has no passing gate on dev`));
    configure("branch: '*', require-different-actor: true");
    const same = await fx.run('promote', { sha: fx.branches['unique-names'] });
    assert.equal(same.code, 1);
    assert.match(lastError(same.stdout), /deployed \w{12} to dev and may not also promote it/);
    assert.equal(prodIds(), ids, "prod's containers changed");
    assert.equal(revision(), '0001');
  });

  it('refuses a migration that fails only on prod data in the rehearsal: same containers, same schema', async () => {
    configure("branch: '*'");
    const ids = prodIds();
    const schema = schemaHash();
    const r = await fx.run('promote', { sha: fx.branches['unique-names'] });
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'refused');
    assert.match(r.summary, /rehearsal on a full copy of prod: \*\*failed\*\*/);
    assert.match(r.summary, /could not create unique index/);
    assert.doesNotMatch(r.summary + r.stdout, /Key \(name\)=\(duplicate\)/, 'a row value reached the log');
    assert.doesNotMatch(r.summary, /Traceback/);
    assert.equal(prodIds(), ids, "prod's containers were restarted");
    assert.equal(schemaHash(), schema, "prod's schema changed");
    assert.equal(revision(), '0001');
    assert.equal(
      fx.psql('prod', "select count(*) from pg_database where datname like '%twinstack_rehearse%'").trim(),
      '0',
      'the rehearsal copy was left behind',
    );
    assert.equal(
      imageOf('prod', 'api'),
      fx.sh(`docker image inspect -f '{{.Id}}' ${fx.project('prod')}-api:local`).trim(),
      "prod's image name does not point at what it runs",
    );
  });

  it('with rehearsal off, the same migration fails transactionally: no restore, no write lost', async () => {
    configure("branch: '*', rehearse: never");
    const since = new Date().toISOString();
    const running = fx.start('promote', { sha: fx.branches['unique-names'] });
    await backupRecorded(since);
    fx.psql('prod', "insert into items (name) values ('written during the promote')");
    const r = await running.done;
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'rolled-back');
    assert.match(r.summary, /\*\*data: nothing lost\.\*\* The schema is unchanged/);
    assert.ok(items().includes('written during the promote'), 'a write made during the promote was lost');
    assert.equal(revision(), '0001');
    const rollback = fx
      .hostLog('prod')
      .filter((x) => x.event === 'rollback')
      .at(-1);
    assert.equal(rollback?.restoredBackup, undefined, 'the database was restored');
    assert.equal(rollback?.schemaMoved, false);
    assert.ok(healthy());
  });

  it("a migration that commits part of its work is restored; the rows lost are counted without the migration's own backfill, and kept aside", async () => {
    configure("branch: '*', rehearse: never");
    await devReady('slow-half-migration', false);
    // The backup first, then three writes of the app, then the promotion from that backup: the three come before the migration.
    const b = await fx.run('backup', { environment: 'prod' });
    assert.equal(b.code, 0, b.why);
    fx.psql('prod', "insert into items (name) values ('after backup 1'), ('after backup 2'), ('after backup 3')");
    const backfilled = Number(fx.psql('prod', 'select count(*) from items').trim());
    const r = await fx.run('promote', { sha: fx.branches['slow-half-migration'], 'require-gate': 'false', 'backup-id': b.outputs['backup-id'] });
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'rolled-back');
    assert.equal(fx.psql('prod', "select to_regclass('public.half_done') is null").trim(), 't', 'the half-applied migration was not undone');
    assert.ok(!items().includes('after backup 1'));
    // What the restore lost, on the host: the three rows, kept in the set-aside database.
    const aside = (sql: string) =>
      fx.sh(`docker exec ${fx.project('prod')}-db psql -X -A -t -U owner -p ${fx.dbPort('prod')} -d makapix_twinstack_pre_restore -c "${sql}"`).trim();
    assert.equal(aside("select count(*) from items where name like 'after backup %'"), '3', 'the lost rows are not in the set-aside database');
    // The count says those three: the migration's backfill of every item is not counted as lost.
    assert.match(r.summary, /\*\*3 row write\(s\)\*\* made since the backup are lost/);
    assert.match(r.summary, new RegExp(`${backfilled} more were made while the migration ran: its own, left out of that count`));
    assert.match(r.summary, /makapix_twinstack_pre_restore/);
    assert.equal(
      fx
        .hostLog('prod')
        .filter((x) => x.event === 'rollback')
        .at(-1)?.rowsLost,
      3,
    );
  });

  it('an app that migrates when it starts: the moved schema is detected and restored', async () => {
    configure("branch: '*'", 'alembic: false');
    await devReady('entrypoint-migrate', true);
    const r = await fx.run('promote', { sha: fx.branches['entrypoint-migrate'] });
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'rolled-back');
    assert.match(r.summary, /the schema had moved, so the database was restored/);
    assert.equal(revision(), '0001');
    assert.equal(fx.psql('prod', "select count(*) from information_schema.columns where table_name = 'items' and column_name = 'description'").trim(), '0');
    assert.ok(healthy());
  });

  it('ships the gated images, and rebuilds (naming it) a service whose prod build differs', async () => {
    configure("branch: '*'");
    await devReady('prod-build-arg', true);
    const gated = lastGate(fx.branches['prod-build-arg'])?.images ?? {};
    const r = await fx.run('promote', { sha: fx.branches['prod-build-arg'] });
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.outcome, 'promoted');
    assert.equal(imageOf('prod', 'db'), gated.db);
    assert.equal(imageOf('prod', 'worker'), gated.worker);
    assert.notEqual(imageOf('prod', 'api'), gated.api, 'the api was shipped although its prod build differs');
    assert.equal(fx.sh(`docker exec ${fx.project('prod')}-api cat /app/flavor`).trim(), 'prod');
    assert.match(r.summary, /\| api \| rebuilt from the same commit \| build arg API_FLAVOR differs \|/);
  });

  it('promotes a gated commit with a pending migration: rehearsed, migrated before the swap, the gated ids running', async () => {
    configure("branch: '*'");
    await devReady('second', true);
    const gated = lastGate(fx.branches.second)?.images ?? {};
    const r = await fx.run('promote', { sha: fx.branches.second });
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.outcome, 'promoted');
    for (const service of ['api', 'db', 'worker']) assert.equal(imageOf('prod', service), gated[service], `prod's ${service} is not the gated image`);
    assert.equal(revision(), '0002');
    assert.match(r.summary, /rehearsal on a full copy of prod \(restored in [\d.]+ m?s\): 0001 → 0002/);
    assert.match(r.summary, /prod migrated 0001 → 0002 in [\d.]+ m?s before the swap/);
    assert.ok(items().includes('prod row'));
    assert.ok(healthy());
    // The swap recreated each service with an `up` of its own (under v2); the containers' config hash is
    // still what a plain `up` computes, so an operator's next `up -d` recreates nothing.
    const ids = () => fx.sh(`docker ps -q --no-trunc --filter label=com.docker.compose.project=${fx.project('prod')} | sort`);
    const before = ids();
    fx.compose('prod', 'up -d --no-build');
    assert.equal(ids(), before, 'a plain up after the promotion recreated containers');
  });
  it('refuses a migration that holds a table ACCESS EXCLUSIVE longer than the budget when rehearsed, naming the table', async () => {
    configure("branch: '*', max-exclusive-lock-ms: 500");
    await devReady('slow-lock', true);
    const ids = prodIds();
    const r = await fx.run('promote', { sha: fx.branches['slow-lock'] });
    assert.equal(r.code, 1, r.why);
    assert.equal(r.outputs.outcome, 'refused');
    assert.match(lastError(r.stdout), /held table public\.items ACCESS EXCLUSIVE for \d+ ms when rehearsed, more than promote\.max-exclusive-lock-ms \(500\)/);
    assert.equal(prodIds(), ids);
    assert.equal(revision(), '0002');
  });

  it('retries the real migration when it only waited for a lock, with the write freeze stopping the worker from the backup to the end', async () => {
    configure("branch: '*', rehearse: never, lock-timeout-ms: 1000, migration-attempts: 3, write-freeze: [worker]");
    const db = `${fx.project('prod')}-db`;
    const workerStarted = fx.sh(`docker inspect -f '{{.State.StartedAt}}' ${fx.project('prod')}-worker`).trim();
    const since = new Date().toISOString();
    const running = fx.start('promote', { sha: fx.branches['slow-lock'] });
    await backupRecorded(since);
    // A long transaction of prod's traffic holds items; the migration's first attempt must give up on it.
    const holder = spawn('docker', ['exec', '-i', db, 'psql', '-X', '-q', '-U', 'owner', '-p', String(fx.dbPort('prod')), '-d', 'makapix'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    holder.stdin.write('BEGIN; LOCK TABLE items IN ACCESS SHARE MODE; SELECT pg_sleep(300) /* twinstack-test-holder */;\n');
    const waiting = () => fx.psql('prod', "select count(*) from pg_locks where relation = 'items'::regclass and not granted").trim() !== '0';
    const deadline = Date.now() + 120_000;
    while (!waiting()) {
      if (Date.now() > deadline) throw new Error('the migration never waited for the lock');
      await new Promise((r) => setTimeout(r, 100));
    }
    while (waiting()) await new Promise((r) => setTimeout(r, 100));
    fx.psql('prod', "select pg_terminate_backend(pid) from pg_stat_activity where query like '%twinstack-test-holder%' and pid <> pg_backend_pid()");
    holder.kill();
    const r = await running.done;
    assert.equal(r.code, 0, r.why);
    assert.equal(r.outputs.outcome, 'promoted');
    assert.match(r.summary, /prod migrated 0002 → 0003 in [\d.]+ m?s before the swap, old containers serving \([23] attempts\)/);
    assert.equal(revision(), '0003');
    assert.match(r.summary, /write freeze \(promote\.write-freeze\): worker was stopped from the backup to the end/);
    const workerNow = fx.sh(`docker inspect -f '{{.State.StartedAt}} {{.State.Status}}' ${fx.project('prod')}-worker`).trim();
    assert.notEqual(workerNow.split(' ')[0], workerStarted, 'the worker was not stopped');
    assert.equal(workerNow.split(' ')[1], 'running');
    assert.ok(healthy());
  });
});
