/**
 * How a swarm deploy's watch judges each service from what the engine prints (src/domain/
 * swarm-release.ts), and which digest an image is pinned by. Task lines are shaped as
 * `docker service ps --no-trunc --format json` printed them on a real engine.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { describeReports, judgeService, tasksOf } from '../../src/domain/swarm-release';
import * as swarm from '../../src/infra/swarm';

const STACK = 'app-dev';
const d = (c: string) => `sha256:${c.repeat(64)}`;
const REPO = '127.0.0.1:5000/web';
const V1 = `${REPO}@${d('1')}`;
const V2 = `${REPO}@${d('2')}`;

const task = (id: string, image: string, desired: string, current: string, error = ''): swarm.TaskLine => ({
  ID: id,
  Name: `${STACK}_web.1`,
  Image: image,
  Node: 'vm',
  DesiredState: desired,
  CurrentState: current,
  Error: error,
});
const spec = (image: string, update?: { State: string; Message?: string; StartedAt: string }): swarm.ServiceStatus => ({
  ID: 'svc1',
  Spec: { Name: `${STACK}_web`, TaskTemplate: { ContainerSpec: { Image: image } }, Mode: { Replicated: { Replicas: 1 } } },
  UpdateStatus: update,
});
const baseline = { taskIds: new Set(['old1']), updateStarted: new Map([[`${STACK}_web`, '2026-12-05T01:00:00Z']]) };
const judge = (svc: swarm.ServiceStatus, tasks: swarm.TaskLine[]) => judgeService({ stack: STACK, svc, tasks, release: { web: V2 }, baseline });

describe("a swarm deploy's watch", () => {
  it('waits while the old task still runs the old digest, whatever update status was left from before', () => {
    const r = judge(spec(V2, { State: 'completed', StartedAt: '2026-12-05T01:00:00Z' }), [task('old1', V1, 'Running', 'Running 2 minutes ago')]);
    assert.equal(r.verdict, 'waiting');
    assert.equal(r.update, undefined, "the earlier update is not this deploy's");
  });

  it('waits while the engine updates, even when the new task already runs beside the old one (start-first)', () => {
    const tasks = [task('new1', V2, 'Running', 'Running 1 second ago'), task('old1', V1, 'Running', 'Running 2 minutes ago')];
    assert.equal(judge(spec(V2, { State: 'updating', StartedAt: '2026-12-05T02:00:00Z' }), tasks).verdict, 'waiting');
    assert.equal(judge(spec(V2), tasks).verdict, 'waiting', 'two tasks run where one is wanted');
  });

  it('has converged once the update completed and the one wanted task runs the new digest', () => {
    const r = judge(spec(V2, { State: 'completed', StartedAt: '2026-12-05T02:00:00Z' }), [
      task('new1', V2, 'Running', 'Running 9 seconds ago'),
      task('old1', V1, 'Shutdown', 'Shutdown 5 seconds ago'),
    ]);
    assert.equal(r.verdict, 'converged');
    assert.deepEqual(r.replicas, { wanted: 1, running: 1 });
    assert.deepEqual(r.failed, []);
  });

  it('waits while the old task, told to stop, still runs through its grace period after the update completed (it may still answer)', () => {
    const updated = spec(V2, { State: 'completed', StartedAt: '2026-12-05T02:00:00Z' });
    const stopping = [task('new1', V2, 'Running', 'Running 9 seconds ago'), task('old1', V1, 'Shutdown', 'Running 2 minutes ago')];
    const r = judge(updated, stopping);
    assert.equal(r.verdict, 'waiting');
    assert.equal(r.steady, false);
    assert.equal(judge(updated, [stopping[0], task('old1', V1, 'Shutdown', 'Shutdown 1 second ago')]).verdict, 'converged');
  });

  it("has failed when the engine rolled back, naming this release's tasks that ended, even one that exited 0 with no error", () => {
    const tasks = [
      task('old1', V1, 'Running', 'Running 22 seconds ago'),
      task('new1xxxxxxxxxxxx', V2, 'Shutdown', 'Complete 5 seconds ago'),
      task('new2xxxxxxxxxxxx', V2, 'Shutdown', 'Failed 3 seconds ago', 'task: non-zero exit (1)'),
    ];
    const r = judge(spec(V1, { State: 'rollback_completed', Message: 'rollback completed', StartedAt: '2026-12-05T02:00:00Z' }), tasks);
    assert.equal(r.verdict, 'failed');
    assert.equal(r.steady, true, 'the old task serves again');
    assert.equal(judge(spec(V1, { State: 'rollback_completed', StartedAt: '2026-12-05T02:00:00Z' }), tasks.slice(1)).steady, false, 'no task serves yet');
    assert.deepEqual(
      r.failed.map((t) => [t.task, t.state, t.error]),
      [
        ['new1xxxxxxxx', 'Complete', ''],
        ['new2xxxxxxxx', 'Failed', 'task: non-zero exit (1)'],
      ],
    );
    const text = describeReports([{ ...r, messages: ['update rolled back due to failure or early termination of task new1'] }]);
    assert.match(
      text,
      /^web: update rollback_completed \(update rolled back due to failure or early termination of task new1; rollback completed\), 1\/1 running/,
    );
    assert.match(text, /new2xxxxxxxx on vm Failed: task: non-zero exit \(1\)/);
  });

  it("has failed when the engine paused the update; an earlier release's failed tasks are not this deploy's", () => {
    const r = judge(spec(V2, { State: 'paused', StartedAt: '2026-12-05T02:00:00Z' }), [task('old1', V1, 'Shutdown', 'Failed 1 hour ago', 'boom')]);
    assert.equal(r.verdict, 'failed');
    assert.deepEqual(r.failed, []);
  });

  it("finds a service's tasks among the lines, older ones indented, and no other service's", () => {
    const lines = [
      task('a', V1, 'Running', 'Running'),
      { ...task('b', V1, 'Shutdown', 'Shutdown'), Name: ` \\_ ${STACK}_web.1` },
      { ...task('c', V1, 'Running', 'Running'), Name: `${STACK}_webhook.1` },
    ];
    assert.deepEqual(
      tasksOf(lines, `${STACK}_web`).map((t) => t.ID),
      ['a', 'b'],
    );
  });
});

describe('pinning an image', () => {
  it('takes the digest in its own repository first, else any the image has, else none', () => {
    assert.equal(swarm.pinnedDigest(JSON.stringify([`other/x@${d('a')}`, `${REPO}@${d('b')}`]), `${REPO}:v1`), `${REPO}@${d('b')}`);
    assert.equal(swarm.pinnedDigest(JSON.stringify([`other/x@${d('a')}`]), `${REPO}:v1`), `other/x@${d('a')}`);
    assert.equal(swarm.pinnedDigest('[]', 'twinstack-fixture-base:latest'), undefined);
    assert.equal(swarm.pinnedDigest('null', 'twinstack-fixture-base:latest'), undefined);
  });

  it('knows the repository of a name with a registry port, a tag or a digest', () => {
    assert.equal(swarm.imageRepository('127.0.0.1:5000/web:v1'), '127.0.0.1:5000/web');
    assert.equal(swarm.imageRepository('127.0.0.1:5000/web'), '127.0.0.1:5000/web');
    assert.equal(swarm.imageRepository(V1), REPO);
    assert.equal(swarm.imageRepository('python:3.12'), 'python');
  });
});
