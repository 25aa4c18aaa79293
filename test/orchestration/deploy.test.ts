/**
 * deploy's decisions, against a fake host: success, the refusals (prod without allow-prod, an
 * unknown ref, the isolation checks) and the failures (build, up, health), each asserted on the
 * commands that ran and on what the fake host runs afterwards. That a deploy really builds, starts
 * and checks a stack is proven in test/e2e/deploy-gate.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { deployAction } from '../../src/actions/deploy/deploy';
import { ConfigurationError } from '../../src/infra/errors';
import { HealthError } from '../../src/domain/release';
import { IsolationRefused } from '../../src/safety/preflight';
import { FakeVps, SERVICES, imageId, sha } from '../support/fake-vps';
import { runOnFake, type ActionRun } from '../support/run-action';

const OLD = sha('a');
const NEW = sha('b');
const DEV_RELEASE = 'r20260101T000000Z-aaaaaaa';
const idsOf = (commit: string) => Object.fromEntries(SERVICES.map((s) => [s.service, imageId(`${s.service}@${commit}`)]));
/** What dev runs after a build of a commit: its own images of the built services, the pulled ones unchanged. */
const builtIds = (vps: FakeVps, commit: string) =>
  Object.fromEntries(SERVICES.map((s) => [s.service, s.image.endsWith(':local') ? vps.built(commit, s.service) : idsOf(OLD)[s.service]]));

const DEV = (sub: string) => new RegExp(`^docker-compose .* -p makapix-dev ${sub}$`);
const BUILD = DEV('build');
const UP = DEV('up -d --remove-orphans');
const CHECKOUT_NEW = /checkout --quiet --detach b{40}$/;
const CHECKOUT_OLD = /checkout --quiet --detach a{40}$/;

/** prod and dev both run OLD; NEW is pushed. */
function scene(extra = ''): FakeVps {
  const vps = new FakeVps(extra);
  vps.runRelease('prod', OLD, 'r20260101T000000Z-aaaaaab');
  vps.runRelease('dev', OLD, DEV_RELEASE);
  vps.commit(NEW);
  return vps;
}

async function deploy(vps: FakeVps, inputs: Record<string, string> = { environment: 'dev', ref: NEW }): Promise<ActionRun> {
  const r = await runOnFake(deployAction, vps, inputs);
  vps.host.assertAllScripted();
  return r;
}

const releaseFailed = (vps: FakeVps) => vps.records('dev').find((x) => x.event === 'release-failed');

describe('deploy', () => {
  it('deploys: checkout, isolation checks, build, up, health, then the release is tagged and recorded', async () => {
    const vps = scene();
    const r = await deploy(vps);
    assert.equal(r.error, undefined, r.failure);
    const h = vps.host;
    const order = [CHECKOUT_NEW, DEV('config'), BUILD, UP, /^curl .*development\.makapix\.club/, /^set -- sha256:\S+ twinstack\/makapix-dev-api:r/].map((re) =>
      h.indexOf(re),
    );
    assert.deepEqual(
      [...order].sort((a, b) => a - b),
      order,
      `the runbook's order: ${order.join(' ')}`,
    );
    assert.ok(order[0] >= 0);
    assert.equal(vps.env.dev.head, NEW);
    assert.deepEqual(vps.running('dev'), builtIds(vps, NEW));
    const release = vps.last('dev', 'release');
    assert.equal(release?.kind, 'deploy');
    assert.equal(release?.previous, DEV_RELEASE);
    assert.equal(r.outputs['release-id'], release?.release);
    assert.equal(r.outputs['previous-release-id'], DEV_RELEASE);
    // prod is only read (its merged configuration, for the isolation checks), never locked or changed.
    assert.deepEqual(
      h.scripts(/-p makapix-prod|\/prod\/lock/).filter((x) => !/-p makapix-prod config$/.test(x)),
      [],
    );
  });

  it('with build: false starts the images as they are (up --no-build, no build)', async () => {
    const vps = scene();
    const r = await deploy(vps, { environment: 'dev', ref: NEW, build: 'false' });
    assert.equal(r.error, undefined, r.failure);
    assert.equal(vps.host.indexOf(BUILD), -1);
    assert.ok(vps.host.indexOf(DEV('up -d --remove-orphans --no-build')) >= 0);
  });

  it('settles a drifted environment and records what it settled', async () => {
    const vps = scene();
    vps.env.dev.containers.find((c) => c.service === 'web')!.imageId = imageId('hand-built');
    const r = await deploy(vps);
    assert.equal(r.error, undefined, r.failure);
    const release = vps.last('dev', 'release');
    assert.match(JSON.stringify(release), /"settled":\["service web runs image/);
    assert.match(r.summary, /had drifted from its record/);
  });

  it('refuses prod unless deploy.allow-prod: nothing runs on the host', async () => {
    const vps = scene();
    const r = await deploy(vps, { environment: 'prod', ref: NEW });
    assert.ok(r.error instanceof ConfigurationError);
    assert.match(r.failure, /deploy refuses environment prod/);
    assert.equal(vps.host.calls.length, 0);
  });

  it('refuses a ref the remote does not have: nothing checked out, nothing started', async () => {
    const vps = scene();
    const r = await deploy(vps, { environment: 'dev', ref: sha('c') });
    assert.match(r.failure, /ref c{40} is not a branch, tag or commit of origin/);
    assert.equal(vps.host.indexOf(/checkout --quiet --detach/), -1);
    assert.equal(vps.host.indexOf(UP), -1);
    assert.equal(releaseFailed(vps)?.event === 'release-failed' && releaseFailed(vps)?.stage, 'checkout');
  });

  it('refuses a checkout with local changes to tracked files, naming the fix: nothing started', async () => {
    const vps = scene();
    vps.host.on('local changes', CHECKOUT_NEW, {
      exitCode: 1,
      stderr: 'error: Your local changes to the following files would be overwritten by checkout:\n\tapi/app.py',
    });
    const r = await deploy(vps);
    assert.ok(r.error instanceof ConfigurationError, r.failure);
    assert.match(r.failure, /\/opt\/makapix-dev has local changes to tracked files: commit or discard them on the host/);
    assert.equal(vps.host.indexOf(BUILD), -1);
    assert.equal(vps.host.indexOf(UP), -1);
    assert.equal(vps.last('dev', 'release-failed')?.stage, 'checkout');
  });

  it('refused by the isolation checks: nothing starts and the checkout goes back to what runs', async () => {
    const vps = scene();
    vps.host.files.delete('/opt/makapix/deploy/stack/.env.prod');
    const r = await deploy(vps);
    assert.ok(r.error instanceof IsolationRefused, r.failure);
    const h = vps.host;
    assert.equal(h.indexOf(BUILD), -1);
    assert.equal(h.indexOf(UP), -1);
    assert.ok(h.indexOf(CHECKOUT_OLD) > h.indexOf(CHECKOUT_NEW), 'the checkout went back');
    assert.equal(vps.env.dev.head, OLD);
    assert.deepEqual(vps.running('dev'), idsOf(OLD));
    assert.equal(releaseFailed(vps)?.event === 'release-failed' && releaseFailed(vps)?.stage, 'isolation');
    assert.match(r.summary, /Nothing was started/);
  });

  it('fails when the build fails: nothing starts, and the record says the checkout moved', async () => {
    const vps = scene();
    vps.host.on('build fails', BUILD, { exitCode: 1, stderr: 'ERROR: Service api failed to build' });
    const r = await deploy(vps);
    assert.match(r.failure, /dev compose build exited with code 1: ERROR: Service api failed to build/);
    assert.equal(vps.host.indexOf(UP), -1);
    assert.deepEqual(vps.running('dev'), idsOf(OLD));
    const failed = releaseFailed(vps);
    assert.equal(failed?.event === 'release-failed' && failed.stage, 'build and up');
    assert.equal(failed?.event === 'release-failed' && failed.head, NEW);
    assert.match(r.summary, /no longer runs its recorded release: the checkout is at bbbbbbbbbbbb/);
  });

  it('fails when compose up gives up on a service: names it with its last log lines', async () => {
    const vps = scene();
    vps.host.on('up gives up', UP, () => {
      vps.env.dev.containers = vps.env.dev.containers.map((c) => (c.service === 'db' ? { ...c, status: 'exited', exitCode: 1 } : c));
      return { exitCode: 1, stderr: 'dependency failed to start: container makapix-dev-db-1 exited (1)' };
    });
    const r = await deploy(vps);
    assert.ok(r.error instanceof HealthError, r.failure);
    assert.match(r.failure, /dev: compose up failed: service db is exited with code 1/);
    assert.equal(releaseFailed(vps)?.event === 'release-failed' && releaseFailed(vps)?.stage, 'build and up');
    assert.match(r.summary, /RuntimeError: the fake says no/);
  });

  it('fails when a service turns unhealthy: the new containers stay, nothing is tagged, the rollback is named', async () => {
    const vps = scene();
    vps.health = (env, service, id) =>
      env === 'dev' && service === 'api' && id === vps.built(NEW, 'api')
        ? { status: 'running', health: 'unhealthy', exitCode: 0 }
        : { status: 'running', health: 'healthy', exitCode: 0 };
    const r = await deploy(vps);
    assert.ok(r.error instanceof HealthError, r.failure);
    assert.match(r.failure, /service api is unhealthy/);
    const h = vps.host;
    assert.ok(h.indexOf(/^docker logs --tail 30 /) > h.indexOf(UP));
    assert.equal(h.indexOf(/^curl /), -1, 'the health URL is not probed once a service failed');
    assert.equal(h.indexOf(/twinstack\/makapix-dev-api:r2026120/), -1, 'no release tag');
    assert.equal(vps.records('dev').filter((x) => x.event === 'release').length, 1, 'no new release is recorded');
    const failed = releaseFailed(vps);
    assert.equal(failed?.event === 'release-failed' && failed.stage, 'health');
    assert.equal(failed?.event === 'release-failed' && failed.images?.api, vps.built(NEW, 'api'));
    assert.match(r.summary, /now runs the new containers of `bbbbbbbbbbbb`, which are not healthy[\s\S]*run the rollback workflow/);
  });
});
