/**
 * promote's decisions when prod's target is swarm, against a fake host that models a one-node swarm
 * running both stacks (test/support/fake-swarm.ts): prod gets exactly dev's gated digests, a service
 * whose build differs for prod is built and pushed, a dev release without digests is refused, a
 * failed rehearsal refuses with prod's stack untouched, and a failure past the point of no return
 * (the engine rolling the update back, a failed migration) rolls prod back. Asserted on the
 * commands the host received, the digest overlay, the stack the engine keeps and the host logs.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { promoteAction } from '../../src/actions/promote/promote';
import { ConfigurationError } from '../../src/infra/errors';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { imageId, sha } from '../support/fake-vps';
import { parseConfig } from '../../src/domain/config';
import { FakeVps, SERVICES } from '../support/fake-vps';
import { FakeSwarm, PROD_STACK, REGISTRY, type Outcome, type SwarmOptions } from '../support/fake-swarm';
import { runOnFake, type ActionRun } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');
const PROD_RELEASE = 'r20260101T000000Z-aaaaaaa';
const DEV_RELEASE = 'r20260102T000000Z-bbbbbbb';
const PROD_OVERLAY = '/opt/makapix/deploy/stack/.twinstack-digests.yml';

const PROD_STACK_DEPLOY = new RegExp(`^DIR=/opt/makapix; set -- docker stack deploy .* ${PROD_STACK}\\n`);
const BACKUP = /pg_dump .*-Fc .*db\.dump\.partial/s;
const RESTORE = /^PENDING_DIR=.*pg_restore .*--single-transaction/s;
const MIGRATE = /^docker service create .*--name makapix-prod_twinstack-migrate .* alembic upgrade head$/;
const REHEARSE = /^docker service create .*--name makapix-prod_twinstack-rehearse .* alembic upgrade head$/;
const PROD_BUILD = /^docker-compose .* -p makapix-prod build/;
const PUSH = /^docker push /;

interface Scene {
  vps: FakeSwarm;
  /** prod's digests before the promotion (its release PROD_RELEASE of OLD). */
  old: Record<string, string>;
  /** dev's digests of NEW, which its gate tested. */
  gated: Record<string, string>;
}

/** prod's stack runs OLD; dev's runs NEW, deployed by bob and gated; both on the one-node swarm. */
function scene(o: SwarmOptions & { outcome?: Partial<Record<string, Outcome>>; promote?: string } = {}): Scene {
  const vps = new FakeSwarm({ prodOnSwarm: true, ...o, extra: `promote: ${o.promote ?? '{ rehearse: never }'}\n` });
  const old = vps.runSwarmRelease(OLD, PROD_RELEASE, 'prod');
  const gated = vps.runSwarmRelease(NEW, DEV_RELEASE, 'dev');
  const tested = { api: imageId(`api@${NEW}`), db: imageId(`db@${NEW}`), worker: imageId('worker-base') };
  vps.log('dev', { event: 'gate', action: 'gate', sha: NEW, release: DEV_RELEASE, passed: true, images: tested });
  vps.outcome = (service, _image, stack) => (stack === PROD_STACK ? (o.outcome?.[service] ?? 'converge') : 'converge');
  return { vps, old, gated };
}

async function promote(vps: FakeSwarm, inputs: Record<string, string> = {}): Promise<ActionRun> {
  const r = await runOnFake(promoteAction, vps, inputs);
  vps.host.assertAllScripted();
  return r;
}

/** What the digest overlay of prod's last stack deploy pinned. */
function overlay(vps: FakeSwarm): Record<string, string> {
  const parsed = JSON.parse(vps.host.files.get(PROD_OVERLAY)?.toString() ?? '{"services":{}}') as { services: Record<string, { image: string }> };
  return Object.fromEntries(Object.entries(parsed.services).map(([s, v]) => [s, v.image]));
}

/** What prod's stack runs: each service's spec and running task. */
function prodRuns(vps: FakeSwarm): Record<string, string[]> {
  return Object.fromEntries(['api', 'db', 'worker'].map((s) => [s, [vps.specImage(s, 'prod') ?? '', ...vps.runningImages(s, 'prod')]]));
}
const runs = (digests: Record<string, string>) => Object.fromEntries(Object.entries(digests).map(([s, d]) => [s, [d, d]]));

describe('promote on a swarm prod', () => {
  it("deploys prod's stack pinned to exactly the digests dev's gate tested, and records them", async () => {
    const { vps, old, gated } = scene();
    const r = await promote(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    const h = vps.host;
    assert.deepEqual(overlay(vps), gated, "the overlay pins dev's gated digests");
    assert.deepEqual(prodRuns(vps), runs(gated), "prod's stack runs them");
    assert.notDeepEqual(gated, old);
    // Nothing was built or pushed for prod: every build is the same as dev's.
    assert.equal(h.indexOf(PROD_BUILD), -1);
    assert.equal(h.indexOf(PUSH), -1);
    // The runbook's order: the backup, then the stack deploy; prod's checkout at the commit.
    const backup = h.indexOf(BACKUP);
    const deploy = h.indexOf(PROD_STACK_DEPLOY);
    assert.ok(backup >= 0 && backup < deploy, `backup ${backup}, deploy ${deploy}`);
    assert.equal(vps.env.prod.head, NEW);
    const release = vps.last('prod', 'release');
    assert.equal(release?.kind, 'promote');
    assert.equal(release?.previous, PROD_RELEASE);
    assert.equal(release?.devRelease, DEV_RELEASE);
    assert.deepEqual(release?.digests, gated);
    assert.equal(release?.images.api.id, imageId(`api@${NEW}`));
    assert.equal(r.outputs['release-id'], release?.release);
    for (const [service, ref] of Object.entries(gated)) assert.ok(r.summary.includes(`\`${service}\`: \`${ref}\``), `${service}'s digest in the summary`);
    // The heads were read in a one-off task of the new api image, by digest.
    assert.deepEqual(
      vps.jobs.map((j) => [j.name, j.image]),
      [['makapix-prod_twinstack-heads', gated.api]],
    );
  });

  it("builds and pushes, with prod's files at the commit, only the service whose build differs for prod; ships the others as gated", async () => {
    const { vps, gated } = scene({ prodApiBuildArgs: { NEXT_PUBLIC_API_BASE_URL: 'https://makapix.club' } });
    const r = await promote(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs.outcome, 'promoted');
    const h = vps.host;
    // One build, of api alone, in the scratch checkout of the commit (prod's files), then its push.
    assert.deepEqual(
      h.scripts(PROD_BUILD).map((x) => x.replace(/^.* build/, 'build')),
      ['build api'],
    );
    assert.equal(h.calls[h.indexOf(PROD_BUILD)].cwd, '/var/lib/twinstack/prod/work/promote');
    const release = vps.last('prod', 'release');
    assert.ok(release);
    const pushedTag = `${REGISTRY}/makapix-api:${release.release}`;
    assert.deepEqual(h.scripts(PUSH), [`docker push ${pushedTag}`]);
    const rebuilt = vps.digestName(pushedTag);
    assert.ok(rebuilt);
    assert.equal(vps.images.get(rebuilt), vps.prodBuilt.get('api'), "the digest pushed is prod's own build");
    const expected = { ...gated, api: rebuilt };
    assert.notEqual(rebuilt, gated.api);
    assert.deepEqual(overlay(vps), expected);
    assert.deepEqual(prodRuns(vps), runs(expected));
    assert.deepEqual(release.digests, expected);
    assert.deepEqual(release.rebuilt, ['api']);
    assert.deepEqual(release.shipped, ['db', 'worker']);
    assert.equal(release.images.api.tag, pushedTag);
  });

  it('refuses, before prod is touched, a dev release that records no digests', async () => {
    // prod on a swarm, dev still on compose: its release has image ids, no digests.
    const yaml = fs
      .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
      .replace('compose-command: docker compose', 'compose-command: docker-compose')
      .replace('vault: /mnt/vault-1', 'vault: /mnt/vault-1\n    target: swarm');
    const vps = new FakeVps(parseConfig(`${yaml}\nswarm:\n  registry: ${REGISTRY}\npreflight:\n  dev-paths: [/var/log/caddy]\n`, 'makapix.yml'));
    vps.runRelease('dev', NEW, DEV_RELEASE);
    vps.gate(NEW, Object.fromEntries(SERVICES.map((s) => [s.service, imageId(`${s.service}@${NEW}`)])));
    const prodLog = vps.host.files.get(vps.env.prod.logFile);
    const r = await promote(vps as unknown as FakeSwarm);
    assert.match(r.failure, /records no image digests to ship: deploy dev on a swarm/);
    // prod's lock was never taken, nothing of prod's ran, its host log is as it was.
    assert.deepEqual(vps.host.scripts(/makapix-prod|\/prod\/|\/opt\/makapix(\/|$|\s)/), []);
    assert.equal(vps.host.files.get(vps.env.prod.logFile), prodLog);
  });

  it('refuses promote.write-freeze with a swarm prod in one line, before the host is touched', async () => {
    const { vps } = scene({ promote: '{ rehearse: never, write-freeze: [worker] }' });
    const r = await promote(vps);
    assert.ok(r.error instanceof ConfigurationError, r.failure);
    assert.match(r.failure, /promote\.write-freeze is not supported when environments\.prod\.target is swarm/);
    assert.deepEqual(vps.host.calls, []);
  });

  it("refuses when the rehearsal fails: prod's stack, checkout and schema untouched", async () => {
    const { vps, old } = scene({ promote: '{ rehearse: always, database-env: DB_NAME }' });
    vps.newHeads = ['r2'];
    vps.jobOutcome.set('rehearse', () => ({
      exitCode: 1,
      output: 'Traceback (most recent call last):\nsqlalchemy.exc.ProgrammingError: column "name" already exists\n',
    }));
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'refused', r.failure);
    const h = vps.host;
    assert.ok(h.indexOf(REHEARSE) > h.indexOf(BACKUP));
    assert.equal(h.indexOf(PROD_STACK_DEPLOY), -1, "prod's stack was not deployed");
    assert.equal(h.indexOf(MIGRATE), -1);
    assert.deepEqual(prodRuns(vps), runs(old));
    assert.equal(vps.env.prod.head, OLD);
    assert.equal(vps.schema.revision, 'r1');
    assert.equal(vps.last('prod', 'refused')?.stage, 'rehearsal');
    assert.equal(vps.last('prod', 'release')?.release, PROD_RELEASE);
  });

  // Until startRelease deploys a swarm release's digests (src/domain/rollback.ts, being changed apart from this).
  const UNTIL_SWARM_START = {};

  it("rolls back when the engine rolls the update back during the swap: prod's stack back on every previous digest", UNTIL_SWARM_START, async () => {
    const { vps, old, gated } = scene({ outcome: { api: 'rollback' } });
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rolled-back', r.failure);
    const h = vps.host;
    // Deployed twice: the new digests (api rolled back by the engine, db updated), then the previous release's.
    const deploys = h.indexOf(PROD_STACK_DEPLOY);
    assert.ok(deploys >= 0 && h.indexOf(PROD_STACK_DEPLOY, deploys + 1) > deploys);
    assert.deepEqual(vps.stack.get('db')?.reported.length, 0, "dev's stack was not touched");
    assert.ok(vps.stacks.get(PROD_STACK)?.get('api')?.reported.includes('rollback_completed'));
    assert.deepEqual(overlay(vps), old, "the last overlay pins the previous release's digests");
    assert.deepEqual(prodRuns(vps), runs(old));
    assert.notEqual(old.db, gated.db);
    assert.equal(h.indexOf(RESTORE), -1, 'no restore: the schema did not move');
    const rollback = vps.last('prod', 'release');
    assert.equal(rollback?.kind, 'rollback');
    assert.equal(rollback?.release, PROD_RELEASE);
    assert.deepEqual(rollback?.digests, old);
    assert.equal(vps.last('prod', 'rollback')?.stage, 'health');
    assert.match(r.summary, /`api`: update rollback_completed, 1\/1 running/);
  });

  it('rolls back with a restore when the migration fails after moving the schema', UNTIL_SWARM_START, async () => {
    const { vps, old } = scene();
    vps.newHeads = ['r2'];
    vps.jobOutcome.set('migrate', () => {
      vps.schema = { revision: 'r1', tables: 'CREATE TABLE users (id int, half text);' };
      return { exitCode: 1, output: 'Traceback (most recent call last):\npsycopg.errors.UniqueViolation: could not create unique index\n' };
    });
    const r = await promote(vps);
    assert.equal(r.outputs.outcome, 'rolled-back', r.failure);
    const h = vps.host;
    const restore = h.indexOf(RESTORE);
    assert.ok(restore > h.indexOf(MIGRATE), 'the database was restored after the failed migration');
    assert.deepEqual(vps.schema, { revision: 'r1', tables: 'CREATE TABLE users (id int);' }, 'prod has the schema of the backup again');
    assert.deepEqual(prodRuns(vps), runs(old));
    const rollback = vps.last('prod', 'rollback');
    assert.equal(rollback?.stage, 'migration');
    assert.equal(rollback?.schemaMoved, true);
    assert.ok(rollback?.restoredBackup);
    assert.deepEqual(vps.last('prod', 'release')?.digests, old);
  });
});
