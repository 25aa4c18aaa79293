/**
 * The host is the source of truth, end to end on the fixture host through the bundles. Each case
 * is a way the promise "prod runs exactly what passed on dev" broke when twinstack trusted its own
 * log over the host, and each asserts on the host: checkouts, image ids, processes, timestamps.
 *
 *   1. a failed gate overwritten by a pass for a commit it never tested, then promoted
 *   2. a checkout and containers changed by hand: status, gate and promote see it
 *   3. a second rollback that returned to the release the first one left
 *   4. the lock freed while a dead run's build went on (runner SIGKILLed during compose build)
 *   5. a cancel (GitHub's SIGINT, SIGTERM, SIGKILL) during compose up that let compose carry on after `cancelled`
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { currentRelease } from '../../src/domain/release';
import { composeCommands, startFixtureHost, type FixtureHost } from './support/fixture-host';
import type { BundleRun, RunningBundle } from '../harness/bundle';

function errors(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith('::error'));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 180_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Inspected {
  Id: string;
  Name: string;
  Image: string;
  State: { Status: string };
  Config: { Labels: Record<string, string> };
}

describe(`the host is the source of truth, with ${composeCommands()[0]}`, () => {
  let fx: FixtureHost;

  const head = (env: 'prod' | 'dev') => fx.sh('git rev-parse HEAD', fx.checkout(env)).trim();
  const containers = (env: 'prod' | 'dev'): Inspected[] => {
    const ids = fx.sh(`docker ps -aq --filter label=com.docker.compose.project=${fx.project(env)}`).trim();
    return ids ? (JSON.parse(fx.sh(`docker inspect ${ids.split('\n').join(' ')}`)) as Inspected[]) : [];
  };
  /** service → image id, as docker reports it. */
  const images = (env: 'prod' | 'dev') => Object.fromEntries(containers(env).map((c) => [c.Config.Labels['com.docker.compose.service'], c.Image]));
  /** container id → image id, to see whether anything was recreated. */
  const snapshot = (env: 'prod' | 'dev') =>
    containers(env)
      .map((c) => `${c.Name} ${c.Id} ${c.Image} ${c.State.Status}`)
      .sort();
  /** The pids of compose processes working on an environment's project right now. */
  const composePids = (env: 'prod' | 'dev', verb = 'build|up'): number[] =>
    fx
      .sh('ps -eo pid=,args=')
      .split('\n')
      // The compose process itself (v1 runs as python3 /usr/bin/docker-compose), not the shells around it.
      .filter((l) => new RegExp(`^\\s*\\d+ (\\S*python3 )?\\S*docker(-| )compose .*-p ${fx.project(env)} (${verb})\\b`).test(l))
      .map((l) => Number(l.trim().split(/\s+/)[0]));
  const lockState = (env: 'prod' | 'dev') => {
    const dir = path.join(fx.dir, 'state', env);
    const held = fx.sh(`flock -n ${dir}/lock true && echo free || echo held`).trim() === 'held';
    const busy = fx.sh(`[ -e ${dir}/busy ] || exit 0; flock -n ${dir}/busy true && echo free || echo busy`).trim() === 'busy';
    return { holderFile: fs.existsSync(path.join(dir, 'lock-holder.json')), held, busy };
  };
  /** Every release image of the recorded release runs, and the checkout is on its commit. */
  function assertRunsRecordedRelease(env: 'prod' | 'dev'): void {
    const release = currentRelease(fx.hostLog(env));
    assert.ok(release, `${env} has no release recorded`);
    assert.equal(head(env), release.sha, `${env}'s checkout is not on its release's commit`);
    const running = images(env);
    for (const [service, image] of Object.entries(release.images))
      assert.equal(running[service], image.id, `${env} ${service} does not run release ${release.release}'s image`);
  }
  async function ok(action: string, inputs: Record<string, string> = {}) {
    const r = await fx.run(action, inputs);
    assert.equal(r.code, 0, `${action} ${JSON.stringify(inputs)}: ${r.visible}`);
    return r;
  }

  before(async () => {
    fx = await startFixtureHost(composeCommands()[0]);
  });
  after(async () => {
    await fx?.stop();
  });

  it('a failing commit is never passed by a gate that tested another one, and is not promoted', async () => {
    await ok('deploy', { environment: 'prod', ref: 'main' });
    const prodBefore = { head: head('prod'), snapshot: snapshot('prod'), releases: fx.hostLog('prod').filter((r) => r.event === 'release').length };

    await ok('deploy', { environment: 'dev', ref: 'failing-test' });
    const failedGate = await fx.run('gate');
    assert.equal(failedGate.code, 1, failedGate.why);

    // A deploy whose api never gets healthy: dev now runs bad-health's containers.
    const broken = await fx.run('deploy', { environment: 'dev', ref: 'bad-health' });
    assert.equal(broken.code, 1, broken.why);
    assert.equal(head('dev'), fx.branches['bad-health']);
    const failedRecord = fx
      .hostLog('dev')
      .filter((r) => r.event === 'release-failed')
      .at(-1);
    assert.equal(failedRecord?.sha, fx.branches['bad-health'], 'the failed deploy is not recorded with its commit');
    assert.equal((failedRecord?.images as Record<string, string>)?.api, images('dev').api, 'the failed deploy does not record the api image that runs');

    const status = await ok('status', { environments: 'dev' });
    assert.match(status.summary, /drift/);
    assert.match(status.summary, /last deploy FAILED/);
    const state = JSON.parse(status.outputs.json) as Array<{ drift: string[] }>;
    assert.ok(
      state[0].drift.some((d) => d.includes(fx.branches['bad-health'].slice(0, 12))),
      JSON.stringify(state[0].drift),
    );

    // The gate without sha would have tested bad-health's container and recorded a pass for failing-test.
    const gatesBefore = fx.hostLog('dev').filter((r) => r.event === 'gate');
    const gate = await fx.run('gate');
    assert.equal(gate.code, 1, gate.why);
    assert.equal(errors(gate.stdout).length, 1, gate.visible);
    assert.match(errors(gate.stdout)[0], /dev does not run its recorded release .*Settle it with a deploy of dev/);
    const gates = fx.hostLog('dev').filter((r) => r.event === 'gate');
    assert.equal(gates.length, gatesBefore.length, 'a gate result was recorded although nothing was tested');
    assert.ok(!gates.some((g) => g.sha === fx.branches['failing-test'] && g.passed === true), 'failing-test has a passing gate');

    const promote = await fx.run('promote');
    assert.equal(promote.code, 1, promote.why);
    assert.match(errors(promote.stdout)[0], /dev does not run its recorded release/);
    // prod is exactly as it was.
    assert.equal(head('prod'), prodBefore.head);
    assert.deepEqual(snapshot('prod'), prodBefore.snapshot);
    assert.equal(fx.hostLog('prod').filter((r) => r.event === 'release').length, prodBefore.releases);
  });

  it('a checkout and containers changed by hand: status shows the drift; gate and promote refuse; a deploy settles it', async () => {
    await ok('deploy', { environment: 'dev', ref: 'second' });
    await ok('gate');
    assertRunsRecordedRelease('dev');
    const prodBefore = snapshot('prod');

    // Behind twinstack's back: another commit checked out and its containers started.
    fx.sh(`git -c advice.detachedHead=false checkout -q --detach ${fx.branches.third}`, fx.checkout('dev'));
    fx.compose('dev', 'up -d --build');
    await waitFor('the hand-made api container to run', () => images('dev').api !== currentRelease(fx.hostLog('dev'))?.images.api?.id, 60_000, 500);

    const status = await ok('status', { environments: 'dev' });
    assert.match(status.summary, /drift/);
    const state = JSON.parse(status.outputs.json) as Array<{ drift: string[]; head: string }>;
    assert.equal(state[0].head, fx.branches.third);
    assert.ok(
      state[0].drift.some((d) => /checkout is at/.test(d)),
      JSON.stringify(state[0].drift),
    );
    assert.ok(
      state[0].drift.some((d) => /service api runs image/.test(d)),
      JSON.stringify(state[0].drift),
    );

    const gate = await fx.run('gate');
    assert.equal(gate.code, 1, gate.why);
    assert.match(errors(gate.stdout)[0], /does not run its recorded release/);
    const promote = await fx.run('promote');
    assert.equal(promote.code, 1, promote.why);
    assert.match(errors(promote.stdout)[0], /does not run its recorded release/);
    assert.deepEqual(snapshot('prod'), prodBefore, 'prod changed');

    await ok('deploy', { environment: 'dev', ref: 'second' });
    assertRunsRecordedRelease('dev');
    const settled = await ok('status', { environments: 'dev' });
    assert.deepEqual((JSON.parse(settled.outputs.json) as Array<{ drift: string[] }>)[0].drift, []);
    // The schema as the api container's alembic reads it, beside the record.
    const revision =
      fx
        .sh(`docker exec ${fx.project('dev')}-api alembic current`)
        .trim()
        .split(/\s/)[0] ?? '';
    assert.equal((JSON.parse(settled.outputs.json) as Array<{ alembic?: string }>)[0].alembic, revision);
    assert.match(settled.summary, new RegExp(`database schema at alembic revision \`${revision || 'none'}\``));
  });

  it('a gate binds to the image ids it tested: an api rebuilt from the same commit is not the one that passed', async () => {
    // dev runs second, gated. The api image is replaced by another build of the same commit.
    const gated = images('dev').api;
    fx.sh(`docker build -q -t ${fx.project('dev')}-api:local --label rebuilt=1 -f api/Dockerfile .`, fx.checkout('dev'));
    fx.compose('dev', 'up -d --no-build');
    await waitFor('the rebuilt api to run', () => images('dev').api !== gated, 60_000, 500);
    const promote = await fx.run('promote');
    assert.equal(promote.code, 1, promote.why);
    assert.match(errors(promote.stdout)[0], /dev does not run its recorded release .*service api runs image/);
    await ok('deploy', { environment: 'dev', ref: 'second' });
  });

  it('a second rollback goes further back, never to the release the first one left', async () => {
    const r1 = await ok('deploy', { environment: 'dev', ref: 'main' });
    const r2 = await ok('deploy', { environment: 'dev', ref: 'second' });
    const r3 = await ok('deploy', { environment: 'dev', ref: 'third' });
    const release = (id: string) =>
      fx.hostLog('dev').find((r) => r.event === 'release' && r.release === id) as unknown as { images: Record<string, { id: string }>; sha: string };

    const first = await ok('rollback', { environment: 'dev' });
    assert.equal(first.outputs['release-id'], r2.outputs['release-id']);
    assert.equal(head('dev'), fx.branches.second);
    assert.equal(images('dev').api, release(r2.outputs['release-id']).images.api.id);

    const second = await ok('rollback', { environment: 'dev' });
    assert.equal(
      second.outputs['release-id'],
      r1.outputs['release-id'],
      `the second rollback went to ${second.outputs['release-id']}, not to the release before ${r2.outputs['release-id']}`,
    );
    assert.notEqual(second.outputs['release-id'], r3.outputs['release-id']);
    assert.equal(head('dev'), fx.branches.main);
    assert.equal(images('dev').api, release(r1.outputs['release-id']).images.api.id);
    assert.match(second.summary, new RegExp(`passed over \`${r2.outputs['release-id']}\`|runs release \`${r1.outputs['release-id']}\``));

    // Named explicitly, a release that was rolled back from is still reachable.
    const named = await ok('rollback', { environment: 'dev', 'release-id': r3.outputs['release-id'] });
    assert.equal(named.outputs['release-id'], r3.outputs['release-id']);
    assert.equal(head('dev'), fx.branches.third);
  });

  it('the runner SIGKILLed during compose build: the next deploy waits for the orphaned build and never overlaps it', async () => {
    // A fresh build-arg value, so the 20 s build step is never served from the engine's cache.
    fs.appendFileSync(fx.envFile('dev'), `SLOW_BUILD_KEY=${process.pid}-${Date.now()}\n`);
    const dying = fx.start('deploy', { environment: 'dev', ref: 'slow-build' });
    // Cut while the api's 20 s step runs: a build that is writing output can die of the closed pipe by itself.
    await waitFor('the api build to reach its slow step', () => composePids('dev', 'build').length > 0 && /^sleep 20$/m.test(fx.sh('ps -eo args=')));
    const orphans = composePids('dev', 'build');
    dying.kill('SIGKILL');
    assert.equal((await dying.done).code, null);
    await waitFor('the dead run to release the flock', () => !lockState('dev').held, 30_000);
    assert.ok(
      orphans.some((p) => fs.existsSync(`/proc/${p}`)),
      'the build died with the runner: this case needs it to outlive the run',
    );
    assert.equal(lockState('dev').busy, true, 'the orphaned build does not hold the busy lease');

    const next = fx.start('deploy', { environment: 'dev', ref: 'main', 'lock-timeout': '300' });
    let orphanEnded = 0;
    let nextStarted = 0;
    await waitFor(
      'the next deploy to start compose',
      () => {
        const now = Date.now();
        if (!orphanEnded && orphans.every((p) => !fs.existsSync(`/proc/${p}`))) orphanEnded = now;
        if (!nextStarted && composePids('dev').some((p) => !orphans.includes(p))) nextStarted = now;
        return nextStarted > 0;
      },
      240_000,
      50,
    );
    const r = await next.done;
    assert.equal(r.code, 0, r.why);
    assert.ok(
      orphanEnded > 0 && orphanEnded <= nextStarted,
      `the next deploy started compose at ${nextStarted}, the orphaned build ended at ${orphanEnded || 'never'}`,
    );
    assert.match(r.visible, /remote work of an earlier run is still running: .*compose build/);
    assertRunsRecordedRelease('dev');
    assert.equal(head('dev'), fx.branches.main);
    assert.deepEqual(lockState('dev'), { holderFile: false, held: false, busy: false });
  });

  it('a cancel as GitHub sends it (SIGINT, SIGTERM 7.5 s later, SIGKILL 2.5 s after) during compose up stops the remote work and records cancelled; nothing changes afterwards', async () => {
    assert.equal(head('dev'), fx.branches.main);
    const cancelled = fx.start('deploy', { environment: 'dev', ref: 'second' });
    await waitFor('the deploy to run compose up on the host', () => composePids('dev', 'up').length > 0, 180_000, 20);
    const { run: r, sent } = await cancelAsGitHubDoes(cancelled);
    assert.equal(r.code, sent.includes('SIGKILL') ? null : 1, `${sent.join(', ')}\n${r.visible}`);
    // When the run has exited, none of its remote work is left, and the host log says cancelled.
    assert.deepEqual(composePids('dev'), [], 'compose still runs after the run was cancelled');
    const last = fx
      .hostLog('dev')
      .filter((x) => x.event === 'finished')
      .at(-1);
    assert.equal(last?.outcome, 'cancelled');
    assert.deepEqual(lockState('dev'), { holderFile: false, held: false, busy: false });
    const atExit = snapshot('dev');
    await new Promise((res) => setTimeout(res, 8000));
    assert.deepEqual(snapshot('dev'), atExit, 'containers changed after the run recorded cancelled');

    // Whatever compose managed before it was stopped, status tells the truth about it.
    const release = currentRelease(fx.hostLog('dev'));
    const running = images('dev');
    const differs = head('dev') !== release?.sha || Object.entries(release?.images ?? {}).some(([s, i]) => running[s] !== i.id);
    const status = await ok('status', { environments: 'dev' });
    const reported = (JSON.parse(status.outputs.json) as Array<{ drift: string[] }>)[0].drift;
    assert.equal(reported.length > 0, differs, `status reports drift ${JSON.stringify(reported)}; the host differs from the record: ${differs}`);
    await ok('deploy', { environment: 'dev', ref: 'main' });
    assertRunsRecordedRelease('dev');
  });
  it('a dev overlay that hands a container the host is refused by deploy before anything starts; the checkout goes back', async () => {
    assertRunsRecordedRelease('dev');
    const headBefore = head('dev');
    const before = snapshot('dev');
    const r = await fx.run('deploy', { environment: 'dev', ref: 'dev-escape' });
    assert.equal(r.code, 1, r.why);
    assert.match(
      errors(r.stdout).at(-1) ?? '',
      new RegExp(`isolation checks refuse dev at ${fx.branches['dev-escape'].slice(0, 12)}: 2 errors; first: dev-escape \\(dev\\): dev service worker`),
    );
    assert.ok(errors(r.stdout).some((l) => /dev service worker: volumes\[\d+\] binds \/var\/run\/docker\.sock \(resolved [^)]+\): the Docker socket/.test(l)));
    assert.match(r.summary, /Nothing was started/);
    // On the host: nothing was recreated, no container runs privileged, the checkout is where it was.
    assert.deepEqual(snapshot('dev'), before);
    assert.equal(head('dev'), headBefore);
    assert.deepEqual(
      containers('dev')
        .filter((c) => (JSON.parse(fx.sh(`docker inspect --format '{{json .HostConfig.Privileged}}' ${c.Id}`)) as boolean) === true)
        .map((c) => c.Name),
      [],
    );
    assert.equal(
      fx
        .hostLog('dev')
        .filter((x) => x.event === 'release-failed')
        .at(-1)?.stage,
      'isolation',
    );
    assertRunsRecordedRelease('dev');
  });
});

/**
 * Cancels a run the way GitHub's runner does: SIGINT, then SIGTERM 7.5 s later if it still runs,
 * then SIGKILL 2.5 s after that. Returns the run and the signals sent.
 */
async function cancelAsGitHubDoes(running: RunningBundle): Promise<{ run: BundleRun; sent: NodeJS.Signals[] }> {
  const exitedWithin = (ms: number) => Promise.race([running.done.then(() => true), new Promise<boolean>((res) => setTimeout(() => res(false), ms))]);
  const sent: NodeJS.Signals[] = [];
  for (const [signal, wait] of [
    ['SIGINT', 7500],
    ['SIGTERM', 2500],
    ['SIGKILL', 0],
  ] as const) {
    running.kill(signal);
    sent.push(signal);
    if (await exitedWithin(wait || 60_000)) break;
  }
  return { run: await running.done, sent };
}
