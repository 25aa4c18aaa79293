/**
 * deploy's decisions on a swarm target (environments.dev.target: swarm), against a fake host that
 * models the manager (test/support/fake-swarm.ts): success (built, pushed, deployed by digest,
 * recorded with the digests), the engine rolling the update back, a watch that runs out of time, a
 * push that fails, build: false refused, a service the manager has no digest of, drift settled and
 * the isolation checks refusing; each asserted on the commands the host received, its files, its
 * host log and what the stack runs afterwards. That the engine really does this is proven in
 * test/integration/swarm-release.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { deployAction } from '../../src/actions/deploy/deploy';
import { SwarmDeployFailed } from '../../src/domain/swarm-release';
import { ConfigurationError } from '../../src/infra/errors';
import { IsolationRefused } from '../../src/safety/preflight';
import { sha } from '../support/fake-vps';
import { BASE_IMAGE, FakeSwarm, REGISTRY, type Outcome } from '../support/fake-swarm';
import { runOnFake, type ActionRun } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');
const DEV_RELEASE = 'r20260101T000000Z-aaaaaaa';
const OVERLAY = '/opt/makapix-dev/deploy/stack/.twinstack-digests.yml';
const LOCK_HOLDER = '/var/lib/twinstack/dev/lock-holder.json';

const CHECKOUT_NEW = /checkout --quiet --detach b{40}$/;
const CHECKOUT_OLD = /checkout --quiet --detach a{40}$/;
const DEV_CONFIG = /^docker-compose .* -p makapix-dev config$/;
const BUILD = /^docker-compose .* -p makapix-dev build$/;
const PUSH = /^docker push /;
const STACK_DEPLOY = /^DIR=\/opt\/makapix-dev; set -- docker stack deploy /;
const RECORD = (event: string) => new RegExp(`^DIR=\\S+; LINE='\\{[^\\n]*"event":"${event}"`);

/** dev runs DEV_RELEASE of OLD on its stack, every service pinned; NEW is pushed. */
function scene(o: { healthTimeoutSeconds?: number; pulled?: boolean; outcome?: Partial<Record<string, Outcome>> } = {}): {
  vps: FakeSwarm;
  old: Record<string, string>;
} {
  const vps = new FakeSwarm({ healthTimeoutSeconds: o.healthTimeoutSeconds });
  vps.pulled = o.pulled ?? true;
  const old = vps.runSwarmRelease(OLD, DEV_RELEASE);
  vps.commit(NEW);
  vps.outcome = (service) => o.outcome?.[service] ?? 'converge';
  return { vps, old };
}

async function deploy(vps: FakeSwarm, inputs: Record<string, string> = { environment: 'dev', ref: NEW }): Promise<ActionRun> {
  const r = await runOnFake(deployAction, vps, inputs);
  vps.host.assertAllScripted();
  return r;
}

/** The digest name each built service was pushed with for a release. */
const pushedAs = (vps: FakeSwarm, service: 'api' | 'db', release: string) => vps.digestName(`${REGISTRY}/makapix-${service}:${release}`);

/** The lock is given back and the operation's end is recorded with its outcome. */
function assertLockReleased(vps: FakeSwarm, outcome: 'success' | 'failure'): void {
  assert.equal(vps.host.files.has(LOCK_HOLDER), false, 'the lock holder file is removed');
  assert.equal(vps.host.ran('release lock').length, 1);
  assert.equal(vps.last('dev', 'finished')?.outcome, outcome);
}

describe('deploy on a swarm', () => {
  it('builds, pushes, deploys the stack pinned by digest, watches it converge, and records the digests', async () => {
    const { vps, old } = scene();
    const r = await deploy(vps);
    assert.equal(r.error, undefined, r.failure);
    const h = vps.host;

    // The runbook's order: checkout, isolation (the merged configuration), build, push, the overlay, the stack, the record.
    const order = [CHECKOUT_NEW, DEV_CONFIG, BUILD, PUSH, /^# writeFile \S+\.twinstack-digests\.yml$/, STACK_DEPLOY, RECORD('release')].map((re) =>
      h.indexOf(re),
    );
    assert.ok(order[0] >= 0);
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      `the runbook's order: ${order.join(' ')}`,
    );

    // Recorded: the digest each service was pushed (or pulled) with, in the registry.
    const release = vps.last('dev', 'release');
    assert.ok(release);
    assert.equal(release.kind, 'deploy');
    assert.equal(release.sha, NEW);
    assert.equal(release.previous, DEV_RELEASE);
    const digests = { api: pushedAs(vps, 'api', release.release), db: pushedAs(vps, 'db', release.release), worker: vps.digestName(BASE_IMAGE) };
    assert.deepEqual(release.digests, digests);
    assert.equal(release.digests?.api, `${REGISTRY}/makapix-api@${vps.registry.get(`${REGISTRY}/makapix-api:${release.release}`)}`);
    assert.notEqual(release.digests?.api, old.api);
    assert.deepEqual(release.images.api, { name: digests.api, id: vps.built(NEW, 'api'), tag: `${REGISTRY}/makapix-api:${release.release}` });
    assert.equal(release.unpinned, undefined);
    assert.equal(release.settled, undefined);

    // On the host: the overlay pins every service; the stack's specs and running tasks are on those digests.
    assert.deepEqual(JSON.parse(h.files.get(OVERLAY)?.toString() ?? '{}'), {
      services: { api: { image: digests.api }, db: { image: digests.db }, worker: { image: digests.worker } },
    });
    assert.match(
      h.scripts(STACK_DEPLOY)[0],
      / -c deploy\/stack\/docker-compose\.yml -c deploy\/stack\/docker-compose\.dev\.yml -c deploy\/stack\/\.twinstack-digests\.yml /,
    );
    for (const s of ['api', 'db', 'worker'] as const) {
      assert.equal(vps.specImage(s), digests[s]);
      assert.deepEqual(vps.runningImages(s), [digests[s]]);
    }
    // The engine updated the changed services and the watch waited for the update to complete; the worker's digest did not change.
    assert.deepEqual(vps.stack.get('api')?.reported, ['updating', 'completed']);
    assert.deepEqual(vps.stack.get('worker')?.reported, []);

    // The env file's variables reach the stack on standard input, never in the command line.
    const stackDeploy = h.calls[h.indexOf(STACK_DEPLOY)];
    assert.ok(stackDeploy.stdin?.includes('DB_PASSWORD=dev-owner-pw-1d9a44\0'));
    assert.ok(stackDeploy.stdin?.includes('REGISTRY=127.0.0.1:5000\0'));
    assert.equal(h.indexOf(/dev-owner-pw-1d9a44/), -1, 'no secret in any command line');

    assert.equal(r.outputs['release-id'], release.release);
    assert.equal(r.outputs.sha, NEW);
    assert.equal(r.outputs['previous-release-id'], DEV_RELEASE);
    assert.match(r.summary, new RegExp(`dev runs release \`${release.release}\``));
    assert.match(r.summary, /\| api \| makapix-dev_api\.1\.\S+ \| running \|/);
    // The engine's verdict is the health check: the health URL is not probed, and the summary does not claim it answered.
    assert.equal(h.indexOf(/^curl /), -1);
    assert.doesNotMatch(r.summary, /answered 2xx/);
    assert.match(r.summary, /health: every service of the stack converged/);
    assertLockReleased(vps, 'success');
    // prod is only read (its merged configuration, for the isolation checks).
    assert.deepEqual(
      h.scripts(/makapix-prod|\/prod\//).filter((x) => !/-p makapix-prod config$/.test(x)),
      [],
    );
  });

  it('fails when the engine rolls the update back: the summary names the service, the task and its error; no release is recorded', async () => {
    const { vps, old } = scene({ outcome: { api: 'rollback' } });
    const r = await deploy(vps);
    assert.ok(r.error instanceof SwarmDeployFailed, r.failure);
    assert.match(r.failure, /dev: the swarm update failed and the engine rolled it back: api: update rollback_completed/);

    // The engine put api back on its old digest; db's update had completed and stays.
    assert.equal(vps.specImage('api'), old.api);
    assert.deepEqual(vps.runningImages('api'), [old.api]);
    assert.deepEqual(vps.stack.get('api')?.reported, ['updating', 'rollback_completed']);
    assert.notEqual(vps.specImage('db'), old.db);
    const failedTask = vps.tasks.find((t) => t.Error !== '');
    assert.ok(failedTask);

    const records = vps.records('dev');
    assert.equal(records.filter((x) => x.event === 'release').length, 1, 'no new release is recorded');
    const failed = vps.last('dev', 'release-failed');
    assert.equal(failed?.stage, 'health');
    assert.equal(failed?.sha, NEW);
    assert.equal(failed?.previous, DEV_RELEASE);
    assert.equal(failed?.head, NEW);
    assert.match(failed?.error ?? '', /rolled it back: api: update rollback_completed/);

    assert.match(
      r.summary,
      new RegExp(
        `\`api\`: update rollback_completed, 1/1 running, runs \`${old.api.replace(/[.]/g, '\\.')}\`; task ${failedTask.ID.slice(0, 12)} on vps Failed`,
      ),
    );
    assert.match(r.summary, /\(task: non-zero exit \(1\): dockerexec: unhealthy container\)/);
    assert.match(r.summary, /The engine rolled the failed services back to the images they ran before/);
    // What runs now differs from the record (the checkout moved, db runs the new digest): said, for gate and promote.
    assert.match(r.summary, /dev no longer runs its recorded release: the checkout is at bbbbbbbbbbbb[^\n]*service db runs/);
    assertLockReleased(vps, 'failure');
  });

  it('fails when the stack does not converge within health-timeout-seconds: the update is left as the engine has it', async () => {
    const { vps, old } = scene({ healthTimeoutSeconds: 5, outcome: { api: 'stuck' } });
    const r = await deploy(vps);
    assert.ok(r.error instanceof SwarmDeployFailed, r.failure);
    assert.match(r.failure, /dev: the stack did not converge in 5s: api: update updating \(update in progress\), 0\/1 running/);
    assert.notEqual(vps.specImage('api'), old.api, 'the engine keeps the new spec; nothing rolled it back');
    assert.deepEqual(vps.stack.get('api')?.reported, ['updating']);
    assert.equal(vps.records('dev').filter((x) => x.event === 'release').length, 1, 'no new release is recorded');
    assert.equal(vps.last('dev', 'release-failed')?.stage, 'health');
    assert.match(r.summary, /`api`: update updating, 0\/1 running/);
    assert.match(r.summary, /dev may run a mix of old and new tasks: the next deploy or a rollback settles it/);
    assertLockReleased(vps, 'failure');
  });

  it('fails when a push fails: nothing is deployed, the stack runs what it ran', async () => {
    const { vps, old } = scene();
    vps.host.on('push refused', /^docker push 127\.0\.0\.1:5000\/makapix-db:/, { exitCode: 1, stderr: 'denied: requested access to the resource is denied' });
    const r = await deploy(vps);
    assert.match(r.failure, /pushing 127\.0\.0\.1:5000\/makapix-db:r\S+ exited with code 1: denied: requested access to the resource is denied/);
    const h = vps.host;
    assert.ok(h.ran('push refused').length === 1);
    assert.equal(h.indexOf(STACK_DEPLOY), -1, 'no stack deploy');
    assert.equal(h.files.has(OVERLAY), false, 'no digest overlay');
    for (const s of ['api', 'db', 'worker'] as const) assert.deepEqual(vps.runningImages(s), [old[s]]);
    assert.equal(vps.records('dev').filter((x) => x.event === 'release').length, 1);
    const failed = vps.last('dev', 'release-failed');
    assert.equal(failed?.stage, 'build and up');
    assert.equal(failed?.head, NEW);
    assertLockReleased(vps, 'failure');
  });

  it('refuses build: false before connecting: a swarm runs only images deploy pushed', async () => {
    const { vps } = scene();
    const r = await deploy(vps, { environment: 'dev', ref: NEW, build: 'false' });
    assert.ok(r.error instanceof ConfigurationError, r.failure);
    assert.match(r.failure, /input build: false is not possible: dev's target is swarm[^\n]*set build: true/);
    assert.equal(vps.host.calls.length, 0);
  });

  it('deploys a service the manager has no digest of by name, with a warning, and records it as unpinned', async () => {
    const { vps } = scene({ pulled: false });
    const r = await deploy(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.match(
      r.log.text,
      /warning: dev: worker runs twinstack-fixture-base:latest, which the manager has no digest of \(never pushed or pulled\): it is deployed by name, not pinned/,
    );
    const release = vps.last('dev', 'release');
    assert.ok(release);
    assert.deepEqual(release.unpinned, ['worker']);
    assert.deepEqual(Object.keys(release.digests ?? {}).sort(), ['api', 'db']);
    assert.deepEqual(release.images.worker, { name: BASE_IMAGE, id: vps.images.get(BASE_IMAGE), tag: BASE_IMAGE });
    const overlay = JSON.parse(vps.host.files.get(OVERLAY)?.toString() ?? '{}') as { services: Record<string, unknown> };
    assert.deepEqual(Object.keys(overlay.services).sort(), ['api', 'db']);
    assert.equal(vps.specImage('worker'), BASE_IMAGE);
    // An unpinned service is part of the release: it is not drift.
    assert.equal(release.settled, undefined, `settled: ${JSON.stringify(release.settled)}`);
  });

  it('settles a stack changed by hand and records what it settled', async () => {
    const { vps, old } = scene();
    // Someone ran `docker service update --image` on db: its spec and task run another digest.
    const hand = `${REGISTRY}/makapix-db@sha256:${'f'.repeat(64)}`;
    vps.stack.get('db')!.image = hand;
    vps.tasks.find((t) => t.Image === old.db)!.Image = hand;
    const r = await deploy(vps);
    assert.equal(r.error, undefined, r.failure);
    const release = vps.last('dev', 'release');
    assert.deepEqual(release?.settled, [
      `service db runs ${REGISTRY}/makapix-db@sha256:ffffffffffff, not the release's ${REGISTRY}/makapix-db@${old.db.slice(-71, -52)}`,
    ]);
    assert.equal(vps.specImage('db'), release?.digests?.db);
    assert.deepEqual(vps.runningImages('db'), [release?.digests?.db]);
    assert.match(r.summary, /before this deploy, dev had drifted from its record \(service db runs/);
  });

  it('refused by the placement checks: nothing is built, pushed or deployed, and the checkout goes back', async () => {
    const { vps, old } = scene();
    // The swarm's one node no longer serves dev.
    vps.host.on('node without dev', /^ids=\$\(docker node ls -q\)/, {
      stdout: JSON.stringify([
        {
          ID: 'n0de0000000000000000000000',
          Spec: { Labels: { 'twinstack.env.prod': 'true' }, Role: 'manager', Availability: 'active' },
          Description: { Hostname: 'vps' },
          Status: { State: 'ready' },
        },
      ]),
    });
    const r = await deploy(vps);
    assert.ok(r.error instanceof IsolationRefused, r.failure);
    assert.match(r.failure, /placement \(dev\): no node of the swarm is labelled twinstack\.env\.dev=true/);
    const h = vps.host;
    for (const re of [BUILD, PUSH, STACK_DEPLOY]) assert.equal(h.indexOf(re), -1, `${re} ran`);
    assert.ok(h.indexOf(CHECKOUT_OLD) > h.indexOf(CHECKOUT_NEW), 'the checkout went back');
    assert.equal(vps.env.dev.head, OLD);
    for (const s of ['api', 'db', 'worker'] as const) assert.deepEqual(vps.runningImages(s), [old[s]]);
    assert.equal(vps.last('dev', 'release-failed')?.stage, 'isolation');
    assert.match(r.summary, /Nothing was started/);
    assertLockReleased(vps, 'failure');
  });
});
