/**
 * rollback on a swarm target (environments.dev.target: swarm), against a fake host that models the
 * manager (test/support/fake-swarm.ts): back to the previous release or a named one by deploying
 * its recorded digests; a release without digests refused before anything changes; with
 * restore-database, the app services scaled to 0 before the restore and brought back by the stack
 * deploy; the engine rolling the rollback's own deploy back. Asserted on what the stack runs
 * afterwards, the commands' order and the host log. That the engine really does this is proven in
 * test/integration/swarm-rollback.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { rollbackAction } from '../../src/actions/rollback/rollback';
import { SwarmDeployFailed } from '../../src/domain/swarm-release';
import { ConfigurationError, OperationFailed } from '../../src/infra/errors';
import { sha } from '../support/fake-vps';
import { FakeSwarm, SWARM_SERVICES, type Outcome } from '../support/fake-swarm';
import { runOnFake, type ActionRun } from '../support/run-action';

const [A, B, C] = [sha('a'), sha('b'), sha('c')];
const [R1, R2, R3] = ['r20260101T000000Z-aaaaaaa', 'r20260102T000000Z-bbbbbbb', 'r20260103T000000Z-ccccccc'];
const BACKUP_ID = 'b20260102T120000Z-dev';
const STACK_DEPLOY = /^DIR=\/opt\/makapix-dev; set -- docker stack deploy /;
const SCALE = /^docker service scale /;
const RESTORE = /^PENDING_DIR=\S+\/dev\/pending; .*pg_restore .*--single-transaction/s;
const CHECKOUT = /checkout --quiet --detach [0-9a-f]{40}$/;
const SERVICES = SWARM_SERVICES.map((s) => s.service);

/** dev ran swarm releases of A, B (and C), each replacing the one before: returns each release's digests. */
function scene(o: { commits?: string[]; outcome?: (service: string, image: string) => Outcome } = {}) {
  const vps = new FakeSwarm();
  const commits = o.commits ?? [A, B];
  const digests: Record<string, Record<string, string>> = {};
  commits.forEach((commit, i) => {
    // The tasks of the release before stop: one running task per service.
    for (const t of vps.tasks) if (t.DesiredState === 'Running') Object.assign(t, { DesiredState: 'Shutdown', CurrentState: 'Shutdown 3 hours ago' });
    digests[[R1, R2, R3][i]] = vps.runSwarmRelease(commit, [R1, R2, R3][i]);
  });
  vps.outcome = o.outcome ?? (() => 'converge');
  return { vps, digests };
}

async function rollback(vps: FakeSwarm, inputs: Record<string, string> = {}): Promise<ActionRun> {
  const r = await runOnFake(rollbackAction, vps, { environment: 'dev', ...inputs });
  vps.host.assertAllScripted();
  return r;
}

/** Every service's spec names the release's digest, and its one running task runs it. */
function assertRuns(vps: FakeSwarm, digests: Record<string, string>): void {
  for (const s of SERVICES) {
    assert.equal(vps.specImage(s), digests[s], `${s}'s spec`);
    assert.deepEqual(vps.runningImages(s), [digests[s]], `${s}'s running tasks`);
  }
}

describe('rollback on a swarm', () => {
  it('goes back to the previous release: its digests deployed as the stack, its commit checked out, recorded with the digests', async () => {
    const { vps, digests } = scene();
    assert.notDeepEqual(digests[R1], digests[R2]);
    const r = await rollback(vps);
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs['release-id'], R1);
    assertRuns(vps, digests[R1]);
    assert.equal(vps.env.dev.head, A);
    const h = vps.host;
    assert.ok(h.indexOf(CHECKOUT) >= 0 && h.indexOf(CHECKOUT) < h.indexOf(STACK_DEPLOY), 'the commit is checked out before the stack deploy');
    assert.deepEqual(JSON.parse(h.files.get('/opt/makapix-dev/deploy/stack/.twinstack-digests.yml')?.toString() ?? '{}'), {
      services: Object.fromEntries(SERVICES.map((s) => [s, { image: digests[R1][s] }])),
    });
    // Nothing built, pushed, retagged or scaled; the database untouched.
    for (const re of [/ build$/, /^docker push /, /docker tag "\$1"/, SCALE, RESTORE]) assert.equal(h.indexOf(re), -1, String(re));
    // api and db changed digests, and the watch waited for the engine's update to complete.
    assert.deepEqual(vps.stack.get('api')?.reported, ['updating', 'completed']);

    const release = vps.last('dev', 'release');
    assert.equal(release?.kind, 'rollback');
    assert.equal(release?.release, R1);
    assert.equal(release?.rolledBackFrom, R2);
    assert.deepEqual(release?.digests, digests[R1]);
    assert.equal(vps.last('dev', 'rollback')?.release, R1);
    for (const s of SERVICES) assert.ok(r.summary.includes(`\`${s}\` runs \`${digests[R1][s]}\``), `the summary names ${s}'s digest`);
    assert.doesNotMatch(r.summary, /docker service rollback/, 'the fallback is offered only when the rollback fails');
  });

  it('goes to a named release', async () => {
    const { vps, digests } = scene({ commits: [A, B, C] });
    const r = await rollback(vps, { 'release-id': R1 });
    assert.equal(r.error, undefined, r.failure);
    assert.equal(r.outputs['release-id'], R1);
    assertRuns(vps, digests[R1]);
    assert.equal(vps.last('dev', 'release')?.rolledBackFrom, R3);
    assert.deepEqual(vps.last('dev', 'release')?.digests, digests[R1]);
  });
});

describe('rollback on a swarm: a release without digests is refused (nothing changes)', () => {
  /** dev ran R1 under compose (no digests), then R2 and R3 on the swarm. */
  function sceneFromCompose() {
    const { vps, digests } = scene({ commits: [B, C] });
    // Shift the swarm releases to R2, R3 and put a compose-era R1 before them.
    const log = vps.host.files.get(vps.env.dev.logFile)?.toString() ?? '';
    vps.host.files.delete(vps.env.dev.logFile);
    vps.log('dev', { event: 'release', action: 'deploy', release: R1, sha: A, kind: 'deploy', images: {} });
    vps.host.files.set(
      vps.env.dev.logFile,
      Buffer.concat([vps.host.files.get(vps.env.dev.logFile) ?? Buffer.alloc(0), Buffer.from(log.replaceAll(R2, R3).replaceAll(R1, R2))]),
    );
    vps.commit(A);
    return { vps, running: digests[R2] };
  }

  function assertUntouched(vps: FakeSwarm, running: Record<string, string>, last: string) {
    for (const re of [CHECKOUT, STACK_DEPLOY, SCALE, RESTORE, /^# writeFile /]) assert.equal(vps.host.indexOf(re), -1, String(re));
    assertRuns(vps, running);
    assert.equal(vps.last('dev', 'release')?.release, last);
  }

  it('refuses a named release that records no digests, as an input to change', async () => {
    const { vps, running } = sceneFromCompose();
    const r = await rollback(vps, { 'release-id': R1 });
    assert.ok(r.error instanceof ConfigurationError, r.failure);
    assert.match(
      r.failure,
      /^input release-id: dev runs on a swarm, .*release r20260101T000000Z-aaaaaaa records none .*known: r20260103T000000Z-ccccccc, r20260102T000000Z-bbbbbbb\)\. Nothing was changed\.$/,
    );
    assert.equal(r.failure.split('\n').length, 1);
    assertUntouched(vps, running, R3);
  });

  it('refuses the previous release when it records no digests, naming the swarm releases', async () => {
    const { vps, running } = sceneFromCompose();
    // R3 was rolled back from already: the previous release left is R1, from compose.
    vps.log('dev', { event: 'release', action: 'rollback', release: R2, sha: B, kind: 'rollback', images: {}, digests: running, rolledBackFrom: R3 });
    const r = await rollback(vps);
    assert.ok(r.error instanceof OperationFailed, r.failure);
    assert.match(r.failure, /release r20260101T000000Z-aaaaaaa records none .*name a release deployed on the swarm with release-id .*Nothing was changed/);
    assertUntouched(vps, running, R2);
  });
});

describe('rollback on a swarm with the database', () => {
  it('scales the app services to 0, restores the backup while none runs, and the deploy brings them back', async () => {
    const { vps, digests } = scene();
    vps.putDevBackup(BACKUP_ID, new Date('2026-01-02T12:00:00Z'));
    const r = await rollback(vps, { 'restore-database': 'true', 'backup-id': BACKUP_ID });
    assert.equal(r.error, undefined, r.failure);
    const h = vps.host;
    const [scale, restore, deploy] = [h.indexOf(SCALE), h.indexOf(RESTORE), h.indexOf(STACK_DEPLOY)];
    assert.ok(scale >= 0 && scale < restore && restore < deploy, `scale ${scale}, restore ${restore}, deploy ${deploy}`);
    // Every service but the database's, to 0; the engine waits for their tasks to stop.
    assert.match(h.calls[scale].script, /^docker service scale --detach=false /);
    assert.deepEqual(vps.scales, [{ api: 0, worker: 0 }]);
    assert.deepEqual(vps.restores, [{ backup: BACKUP_ID, appTasks: { api: 0, worker: 0 } }]);
    // A cut restore's undo scales them back as they were.
    assert.match(h.calls[restore].script, /docker service scale --detach=true makapix-dev_api=1 makapix-dev_worker=1/);
    // The deploy gave them back their replicas, on the release's digests.
    assertRuns(vps, digests[R1]);
    for (const s of SERVICES) assert.equal(vps.stack.get(s)?.replicas, undefined, `${s} has the files' replicas again`);
    assert.equal(r.outputs['restored-backup-id'], BACKUP_ID);
    assert.equal(vps.last('dev', 'release')?.restoredBackup, BACKUP_ID);
    assert.match(r.summary, /database restored from `b20260102T120000Z-dev`/);
  });

  it('deploys the release anyway when the restore fails, and fails naming the restore', async () => {
    const { vps, digests } = scene();
    vps.putDevBackup(BACKUP_ID, new Date('2026-01-02T12:00:00Z'));
    vps.host.on('restore fails', RESTORE, { exitCode: 1, stderr: 'pg_restore: error: could not execute query' });
    const r = await rollback(vps, { 'restore-database': 'true', 'backup-id': BACKUP_ID });
    assert.match(r.failure, /restoring dev from backup b20260102T120000Z-dev exited with code 1/);
    assert.ok(vps.host.indexOf(STACK_DEPLOY) > vps.host.indexOf(RESTORE), 'the stack was deployed after the failed restore');
    assertRuns(vps, digests[R1]);
    assert.equal(vps.last('dev', 'release')?.release, R2, 'no release is recorded');
  });
});

describe('rollback on a swarm: the engine fails the deploy', () => {
  it("fails naming the service the engine rolled back, records no release, and offers docker service rollback in the summary's runbook", async () => {
    let old: Record<string, string> = {};
    const { vps, digests } = scene({ outcome: (service, image) => (service === 'api' && image === old.api ? 'rollback' : 'converge') });
    old = digests[R1];
    const r = await rollback(vps);
    assert.ok(r.error instanceof SwarmDeployFailed, r.failure);
    assert.match(r.failure, /dev: the swarm update failed and the engine rolled it back: api: update rollback_completed/);
    assert.doesNotMatch(r.failure, /db:|worker:/);
    // The engine put api back on the release it left; db went on to the target's digest.
    assert.equal(vps.specImage('api'), digests[R2].api);
    assert.equal(vps.specImage('db'), digests[R1].db);
    assert.equal(vps.last('dev', 'release')?.release, R2, 'no release is recorded');
    assert.equal(vps.last('dev', 'finished')?.outcome, 'failure');
    assert.match(r.summary, /`api`: update rollback_completed, 1\/1 running/);
    assert.match(r.summary, /If this fails again for one service only: on the manager, `docker service rollback makapix-dev_api` returns that service/);
    assert.equal(vps.host.indexOf(/docker service rollback/), -1, 'the fallback is never run');
  });
});
