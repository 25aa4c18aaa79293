/**
 * promote's decisions, against a fake host: every outcome (promoted, unchanged, refused,
 * rolled-back, rollback-failed) and the refusals before prod is touched, each asserted on the
 * commands that ran (in order) and on what the fake host runs afterwards. That the migration, the
 * swap and the rollback work on a real host is proven in test/e2e (flip, promote-rollback).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { promoteAction } from '../../src/actions/promote/promote';
import type { FakeVps } from '../support/fake-vps';
import { FakeVps as Vps, SERVICES, imageId, sha } from '../support/fake-vps';
import { RUN, runOnFake, type ActionRun } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');
const OLD_RELEASE = 'r20260101T000000Z-aaaaaaa';
const idsOf = (commit: string) => Object.fromEntries(SERVICES.map((s) => [s.service, imageId(`${s.service}@${commit}`)]));

const PROD_UP = /^docker-compose .* -p makapix-prod up -d --no-build --remove-orphans$/;
const MIGRATE = /-p makapix-prod run .*--name makapix-prod-twinstack-migrate .* api alembic upgrade head$/;
const BACKUP = /pg_dump .*-Fc .*db\.dump\.partial/s;
const RESTORE = /^PENDING_DIR=.*pg_restore .*--single-transaction/s;
const OLD_IMAGES_BACK = new RegExp(`^set -- twinstack/makapix-prod-api:${OLD_RELEASE} makapix-api:local`);
const GATED_TAGGED = /^set -- sha256:\S+ makapix-api:local/;
const REHEARSE = /-p makapix-prod run .*--name makapix-prod-twinstack-rehearse .* api alembic upgrade head$/;
/** The fixture's env file names its database in DB_DATABASE: the rehearsal points it at the copy. */
const REHEARSED = 'promote: { database-env: DB_DATABASE }\n';

/** prod runs OLD (a deploy); dev runs NEW, deployed by bob and gated with the images it runs. */
function scene(extra = ''): FakeVps {
  const vps = new Vps(extra);
  vps.runRelease('prod', OLD, OLD_RELEASE);
  vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb', { actor: 'bob' });
  vps.gate(NEW, idsOf(NEW));
  return vps;
}

const BACKUP_ID = 'b20260101T000000Z-prod';

/** A new release whose migration moves the schema from r1 to r2. */
function withMigration(vps: FakeVps): FakeVps {
  vps.newHeads = ['r2'];
  return vps;
}

/** The api container of the new images turns unhealthy on prod. */
function newApiUnhealthy(vps: FakeVps): FakeVps {
  vps.health = (env, service, id) =>
    env === 'prod' && service === 'api' && id === idsOf(NEW).api
      ? { status: 'running', health: 'unhealthy', exitCode: 0 }
      : { status: 'running', health: 'healthy', exitCode: 0 };
  return vps;
}

async function promote(vps: FakeVps, inputs: Record<string, string> = {}, run = RUN): Promise<ActionRun> {
  const r = await runOnFake(promoteAction, vps, inputs, run);
  vps.host.assertAllScripted();
  return r;
}

function lastFinished(vps: FakeVps, env: 'prod' | 'dev') {
  return vps
    .records(env)
    .filter((r) => r.event === 'finished' && r.action === 'promote')
    .at(-1);
}

describe('promote: forward', () => {
  it('promotes: the gated images run on prod, the checkout is at the commit, the release is recorded', async () => {
    const vps = scene();
    const r = await promote(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    assert.deepEqual(vps.running('prod'), idsOf(NEW), 'prod runs exactly the image ids the gate tested');
    assert.equal(vps.env.prod.head, NEW);
    const h = vps.host;
    // The order of the runbook: backup → gated images tagged → up; no migration was pending.
    const backup = h.indexOf(BACKUP);
    const tagged = h.indexOf(GATED_TAGGED);
    const up = h.indexOf(PROD_UP);
    assert.ok(backup >= 0 && backup < tagged && tagged < up, `backup ${backup}, tag ${tagged}, up ${up}`);
    assert.equal(h.indexOf(MIGRATE), -1, 'no migration ran: the schema was at the new head');
    assert.equal(h.indexOf(RESTORE), -1);
    const release = vps
      .records('prod')
      .filter((x) => x.event === 'release')
      .at(-1);
    assert.equal(release?.event === 'release' && release.kind, 'promote');
    assert.equal(release?.event === 'release' && release.previous, OLD_RELEASE);
    assert.equal(r.outputs['release-id'], release?.event === 'release' ? release.release : '?');
    assert.equal(lastFinished(vps, 'prod')?.event === 'finished' && lastFinished(vps, 'prod')?.outcome, 'success');
    // Every command from the backup to the swap ran inside the operation's fence (its lease on prod).
    assert.ok(h.calls.slice(backup, up + 1).every((c) => c.fencedBy || c.rule === 'writeFile'));
  });

  it('promotes with a migration: upgrade head runs in a one-off container before the swap, old containers serving', async () => {
    const vps = withMigration(scene('promote: { rehearse: never }\n'));
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'promoted', r.failure);
    const h = vps.host;
    const migrate = h.indexOf(MIGRATE);
    const checkout = h.indexOf(/checkout --quiet --detach b{40}$/);
    const up = h.indexOf(PROD_UP);
    assert.ok(migrate > 0 && migrate < checkout && checkout < up, `migrate ${migrate}, checkout ${checkout}, up ${up}`);
    assert.equal(h.calls[migrate].env?.PGOPTIONS, `-c lock_timeout=${vps.config.promote['lock-timeout-ms']}`);
    assert.equal(vps.schema.revision, 'r2');
    assert.match(r.summary, /prod migrated r1 → r2/);
  });

  it('rehearses a pending migration on a copy of prod first (promote.rehearse: auto), then migrates prod', async () => {
    const vps = withMigration(scene(REHEARSED));
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'promoted', r.failure);
    const h = vps.host;
    const restoreCopy = h.indexOf(/pg_restore .*-d makapix_twinstack_rehearse/);
    const rehearsal = h.indexOf(REHEARSE);
    const dropCopy = h.calls.findIndex((c, i) => i > rehearsal && /DROP DATABASE IF EXISTS "?makapix_twinstack_rehearse"?;/.test(c.stdin ?? ''));
    const migrate = h.indexOf(MIGRATE);
    assert.ok(
      h.indexOf(BACKUP) < restoreCopy && restoreCopy < rehearsal && rehearsal < dropCopy && dropCopy < migrate,
      `${restoreCopy} ${rehearsal} ${dropCopy} ${migrate}`,
    );
    // The copy's migration reaches the copy through the app's database variable, passed by name only.
    assert.match(h.calls[rehearsal].script, / -e DB_DATABASE api alembic upgrade head$/);
    assert.equal(h.calls[rehearsal].env?.DB_DATABASE, 'makapix_twinstack_rehearse');
    assert.ok(!vps.databases.prod.has('makapix_twinstack_rehearse'));
    assert.match(r.summary, /rehearsal on a full copy of prod/);
  });

  it('migrates in the new api container after the swap when compose v1 cannot start a one-off container', async () => {
    const vps = withMigration(scene());
    vps.host.on('one-off refused', /-p makapix-prod run .*--name makapix-prod-twinstack-heads /, {
      exitCode: 1,
      stderr: "ERROR: host type networking can't be used with links",
    });
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'promoted', r.failure);
    const h = vps.host;
    assert.equal(h.indexOf(REHEARSE), -1, 'not rehearsed: no one-off container can run it');
    assert.equal(h.indexOf(MIGRATE), -1);
    const inPlace = h.indexOf(/sh alembic upgrade head <\/dev\/null/);
    assert.ok(inPlace > h.indexOf(PROD_UP), 'the migration ran in the new api container, after the swap');
    assert.equal(vps.schema.revision, 'r2');
    assert.match(r.summary, /in the new api container, after the swap/);
  });

  it('keeps a write freeze from the backup to the end of a promotion', async () => {
    const vps = scene('promote: { write-freeze: [worker] }\n');
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'promoted', r.failure);
    const stop = vps.host.indexOf(/-p makapix-prod stop worker$/);
    assert.ok(stop >= 0 && stop < vps.host.indexOf(BACKUP));
    // The swap's up starts every service, the frozen one too: no separate start is needed.
    assert.equal(vps.host.indexOf(/-p makapix-prod start worker$/), -1);
    assert.equal(vps.env.prod.containers.find((c) => c.service === 'worker')?.status, 'running');
    assert.match(r.summary, /write freeze \(promote\.write-freeze\): worker was stopped/);
  });

  it('uses a named backup instead of taking one, after checking it on disk', async () => {
    const vps = scene();
    vps.putBackup(BACKUP_ID, new Date(Date.now() - 10 * 60_000));
    const r = await promote(vps, { 'backup-id': BACKUP_ID });
    assert.equal(r.outputs.outcome, 'promoted', r.failure);
    assert.equal(r.outputs['backup-id'], BACKUP_ID);
    assert.equal(vps.host.indexOf(BACKUP), -1, 'no new backup was taken');
    assert.ok(vps.host.indexOf(/^sha256sum \S+\/b20260101T000000Z-prod\/db\.dump$/) >= 0, 'its dump was checked');
  });

  it('changes nothing when prod already runs the commit: no backup, no image tagged, no up', async () => {
    const vps = new Vps();
    vps.runRelease('prod', NEW, 'r20260102T000000Z-bbbbbbb', { kind: 'promote' });
    vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbc');
    vps.gate(NEW, idsOf(NEW));
    const r = await promote(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'unchanged');
    assert.equal(r.outputs['release-id'], 'r20260102T000000Z-bbbbbbb');
    for (const re of [BACKUP, /docker tag "\$1"/, PROD_UP, /git fetch/]) assert.equal(vps.host.indexOf(re), -1, `${re} ran`);
  });
});

describe('promote: refused before prod changes', () => {
  /** A refusal leaves prod on its containers and its image names on its release, and records why. */
  function assertUntouched(vps: FakeVps, r: ActionRun, stage: string) {
    assert.equal(r.outputs.outcome, 'refused', r.failure);
    assert.match(r.failure, new RegExp(`refused during ${stage}`));
    assert.equal(vps.host.indexOf(PROD_UP), -1, 'prod was never brought up');
    assert.equal(vps.host.indexOf(MIGRATE), -1, 'no migration ran');
    assert.equal(vps.host.indexOf(/checkout --quiet --detach/), -1, "prod's checkout never moved");
    assert.deepEqual(vps.running('prod'), idsOf(OLD));
    assert.equal(vps.env.prod.head, OLD);
    const refused = vps.records('prod').find((x) => x.event === 'refused');
    assert.equal(refused?.event === 'refused' && refused.stage, stage);
    assert.equal(lastFinished(vps, 'prod')?.event === 'finished' && lastFinished(vps, 'prod')?.outcome, 'failure');
  }

  it('refuses when the isolation checks fail on the new commit, before any image is tagged', async () => {
    const vps = scene();
    vps.host.files.delete('/opt/makapix-dev/deploy/stack/.env.dev');
    const r = await promote(vps);
    assertUntouched(vps, r, 'isolation');
    assert.match(r.failure, /the isolation checks refuse prod at bbbbbbbbbbbb: .*env-file \(dev\)/);
    assert.equal(vps.host.indexOf(GATED_TAGGED), -1, 'no gated image was tagged');
  });

  it('refuses when a gated image is gone from the host, and points the names back at what prod runs', async () => {
    const vps = scene();
    vps.images.delete(idsOf(NEW).web);
    const r = await promote(vps);
    assertUntouched(vps, r, 'images');
    assert.match(r.failure, /web \S+ is no longer on the host/);
    assert.ok(vps.host.indexOf(OLD_IMAGES_BACK) > vps.host.indexOf(BACKUP), "prod's image names went back to its release");
    assert.equal(vps.images.get('makapix-api:local'), idsOf(OLD).api);
  });

  it('refuses when the rehearsal cannot run: the real migration never starts', async () => {
    const vps = withMigration(scene(REHEARSED));
    const scratch = (sql: RegExp) => (s: string, c: { stdin?: string }) => / -d postgres .*-f -/.test(s) && sql.test(c.stdin ?? '');
    vps.host.on('drop rehearsal copy', scratch(/makapix_twinstack_rehearse/), {});
    vps.host.on('create rehearsal copy', scratch(/CREATE DATABASE \W?makapix_twinstack_rehearse/), {
      exitCode: 1,
      stderr: 'ERROR:  permission denied to create database',
    });
    const r = await promote(vps);
    assertUntouched(vps, r, 'rehearsal');
    assert.match(r.failure, /may not create the copy the rehearsal needs/);
    assert.equal(vps.schema.revision, 'r1');
  });

  it('refuses when the migration fails on the copy of prod: the real migration never starts', async () => {
    const vps = withMigration(scene(REHEARSED));
    vps.host.on('rehearsal fails', REHEARSE, {
      exitCode: 1,
      stderr: 'Traceback (most recent call last):\npsycopg.errors.NotNullViolation: column "name" contains null values\n',
    });
    const r = await promote(vps);
    assertUntouched(vps, r, 'rehearsal');
    assert.match(r.failure, /the migration failed when rehearsed on a copy of prod: psycopg\.errors\.NotNullViolation/);
    assert.ok(!vps.databases.prod.has('makapix_twinstack_rehearse'), 'the copy was dropped');
  });

  it('refuses when the rehearsal holds a table ACCESS EXCLUSIVE longer than promote.max-exclusive-lock-ms', async () => {
    const vps = withMigration(scene('promote: { database-env: DB_DATABASE, max-exclusive-lock-ms: 150 }\n'));
    vps.lockSamples = ['1000', '1100|public.users', '1200|public.users', '1300|public.users', '1400'].join('\n') + '\n';
    const r = await promote(vps);
    assertUntouched(vps, r, 'rehearsal');
    assert.match(r.failure, /held table public\.users ACCESS EXCLUSIVE for 300 ms when rehearsed, more than promote\.max-exclusive-lock-ms \(150\)/);
  });

  it('refuses when too little time is left before the deadline to roll back', async () => {
    const vps = scene();
    vps.host.deadline = Date.now() + 20 * 60_000;
    const r = await promote(vps);
    assertUntouched(vps, r, 'images');
    assert.match(r.failure, /too little time is left before the run's deadline/);
  });

  it('ends a write freeze it started when it refuses', async () => {
    const vps = scene('promote: { write-freeze: [worker] }\n');
    vps.images.delete(idsOf(NEW).web);
    const r = await promote(vps);
    assertUntouched(vps, r, 'images');
    const stop = vps.host.indexOf(/-p makapix-prod stop worker$/);
    const start = vps.host.indexOf(/-p makapix-prod start worker$/);
    assert.ok(stop >= 0 && stop < vps.host.indexOf(BACKUP) && start > stop, `stop ${stop}, start ${start}`);
    assert.equal(vps.env.prod.containers.find((c) => c.service === 'worker')?.status, 'running');
  });
});

describe('promote: refused before the prod lock', () => {
  /** Nothing on prod was even locked. */
  function assertProdNeverLocked(vps: FakeVps) {
    assert.equal(vps.host.indexOf(/\/prod\/lock bash -c/), -1, 'the prod lock was never taken');
    assert.equal(vps.records('prod').filter((x) => x.action === 'promote').length, 0);
  }

  it('refuses a commit without a passing gate', async () => {
    const vps = new Vps();
    vps.runRelease('prod', OLD, OLD_RELEASE);
    vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb');
    vps.gate(NEW, idsOf(NEW), false);
    const r = await promote(vps);
    assert.match(r.failure, /has no passing gate on dev \(its last gate failed/);
    assert.equal(r.outputs.outcome, undefined);
    assertProdNeverLocked(vps);
  });

  it('refuses when dev no longer runs what the gate tested', async () => {
    const vps = scene();
    vps.env.dev.containers.find((c) => c.service === 'api')!.imageId = imageId('hand-built');
    const r = await promote(vps);
    assert.match(r.failure, /does not run its recorded release|no longer runs what passed the gate/);
    assertProdNeverLocked(vps);
  });

  it('refuses the person who deployed the commit to dev (promote.require-different-actor)', async () => {
    const vps = scene('promote: { require-different-actor: true }\n');
    const r = await promote(vps, {}, { ...RUN, actor: 'bob' });
    assert.match(r.failure, /bob deployed bbbbbbbbbbbb to dev and may not also promote it/);
    assertProdNeverLocked(vps);
  });
});

describe('promote: refused under the prod lock, before anything changes', () => {
  it('refuses a named backup older than backup-max-age-minutes', async () => {
    const vps = scene();
    vps.putBackup(BACKUP_ID, new Date(Date.now() - 3 * 3600_000));
    const r = await promote(vps, { 'backup-id': BACKUP_ID });
    assert.match(r.failure, /backup b20260101T000000Z-prod is 180 minutes old, more than backup-max-age-minutes \(60\); take a new one/);
    assert.equal(r.outputs.outcome, undefined);
    assert.equal(vps.host.indexOf(GATED_TAGGED), -1);
    assert.equal(vps.host.indexOf(PROD_UP), -1);
  });

  it('refuses when prod does not run its recorded release: no rollback point', async () => {
    const vps = scene();
    vps.env.prod.head = sha('c');
    const r = await promote(vps);
    assert.match(r.failure, /prod does not run its recorded release .* the checkout is at cccccccccccc.*nothing was changed/);
    assert.equal(vps.host.indexOf(BACKUP), -1);
    assert.equal(vps.host.indexOf(/git fetch/), -1);
  });

  it('refuses a commit that is not on promote.branch', async () => {
    const vps = scene();
    vps.onBranch.delete(NEW);
    const r = await promote(vps);
    assert.match(r.failure, /bbbbbbbbbbbb is not on origin\/main \(promote\.branch\)/);
    assert.equal(vps.host.indexOf(/worktree add/), -1, 'no scratch checkout was made');
    assert.equal(vps.host.indexOf(BACKUP), -1);
  });
});

describe('promote: past the point of no return', () => {
  it('rolls back when the new api turns unhealthy: the old images again, no restore (the schema never moved)', async () => {
    const vps = newApiUnhealthy(scene());
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rolled-back', r.failure);
    assert.match(r.failure, /failed during health .*service api is unhealthy.*rolled back to r20260101T000000Z-aaaaaaa/);
    const h = vps.host;
    const firstUp = h.indexOf(PROD_UP);
    const unhealthyLogs = h.indexOf(/^docker logs --tail/, firstUp);
    const back = h.indexOf(OLD_IMAGES_BACK, unhealthyLogs);
    const secondUp = h.indexOf(PROD_UP, back);
    assert.ok(firstUp >= 0 && unhealthyLogs > firstUp && back > unhealthyLogs && secondUp > back, `${firstUp} ${unhealthyLogs} ${back} ${secondUp}`);
    assert.equal(h.indexOf(RESTORE), -1, 'the database was not restored');
    assert.deepEqual(vps.running('prod'), idsOf(OLD));
    assert.equal(vps.env.prod.head, OLD);
    const rollback = vps.records('prod').find((x) => x.event === 'rollback');
    assert.equal(rollback?.event === 'rollback' && rollback.release, OLD_RELEASE);
    assert.equal(rollback?.event === 'rollback' && rollback.schemaMoved, false);
    assert.match(r.summary, /data: nothing lost/);
  });

  it('rolls back and restores the backup when the schema had moved', async () => {
    const vps = newApiUnhealthy(withMigration(scene('promote: { rehearse: never }\n')));
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rolled-back', r.failure);
    const h = vps.host;
    const migrate = h.indexOf(MIGRATE);
    const restore = h.indexOf(RESTORE);
    const secondUp = h.lastIndexOf(PROD_UP);
    assert.ok(migrate >= 0 && migrate < restore && restore < secondUp, `${migrate} ${restore} ${secondUp}`);
    assert.equal(vps.schema.revision, 'r1', 'the database is back at the backup');
    assert.deepEqual(vps.running('prod'), idsOf(OLD));
    assert.equal(r.outputs['backup-id'], vps.records('prod').find((x) => x.event === 'backup')?.backup);
    const rollback = vps.records('prod').find((x) => x.event === 'rollback');
    assert.equal(rollback?.event === 'rollback' && rollback.restoredBackup, r.outputs['backup-id']);
    assert.match(r.summary, /the schema had moved, so the database was restored/);
  });

  it('rolls back when the migration fails: the new containers never start, no restore', async () => {
    const vps = withMigration(scene('promote: { rehearse: never }\n'));
    vps.host.on('migration fails', MIGRATE, {
      exitCode: 1,
      stderr: 'Traceback (most recent call last):\nsqlalchemy.exc.ProgrammingError: column "name" already exists\n',
    });
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rolled-back', r.failure);
    assert.match(r.failure, /failed during migration \(alembic upgrade head failed: sqlalchemy\.exc\.ProgrammingError/);
    const h = vps.host;
    assert.equal(h.indexOf(/checkout --quiet --detach b{40}$/), -1, "prod's checkout never moved to the new commit");
    // The only up is the rollback's, after the failed migration.
    assert.equal(h.scripts(PROD_UP).length, 1);
    assert.ok(h.indexOf(PROD_UP) > h.indexOf(MIGRATE));
    assert.equal(h.indexOf(RESTORE), -1);
    assert.equal(vps.schema.revision, 'r1');
  });

  it('says rollback-failed when the previous release cannot start again', async () => {
    const vps = newApiUnhealthy(scene());
    for (const s of SERVICES) vps.images.delete(`twinstack/makapix-prod-${s.service}:${OLD_RELEASE}`);
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rollback-failed', r.failure);
    assert.match(r.failure, /AND the rollback failed \(release r20260101T000000Z-aaaaaaa's images are gone from the host.*prod needs a person now/);
    assert.equal(r.outputs['release-id'], '');
    assert.equal(vps.host.scripts(PROD_UP).length, 1, 'no second up: the rollback stopped before it');
    assert.equal(
      vps.records('prod').find((x) => x.event === 'rollback'),
      undefined,
    );
    assert.match(r.summary, /the rollback did not complete/);
  });

  it('says rollback-failed when prod had no release to return to', async () => {
    const vps = newApiUnhealthy(new Vps());
    vps.commit(NEW);
    vps.runRelease('dev', NEW, 'r20260102T000000Z-bbbbbbb');
    vps.gate(NEW, idsOf(NEW));
    vps.env.prod.head = OLD;
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rollback-failed', r.failure);
    assert.match(r.failure, /prod had no release recorded by twinstack to return to/);
  });
});
