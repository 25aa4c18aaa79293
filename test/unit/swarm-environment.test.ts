/**
 * An environment on a swarm, the pure parts: the stack's names of task containers and services,
 * what observe makes of `docker service inspect` and `docker service ps`, drift against a release's
 * digests, the monitor's service names, and the script that finds a task's container (run with a
 * fake `docker` that answers as a manager whose task runs on another node).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment, parseInspect, parseStackInspect } from '../../src/domain/environment';
import { drift, type ObservedState } from '../../src/domain/state';
import { failedTasks, swarmDrift, swarmObservation } from '../../src/domain/swarm-state';
import { parseContainerLimits } from '../../src/safety/metrics';
import { statusSummary } from '../../src/actions/status/status';
import * as swarm from '../../src/infra/swarm';

const STACK = 'makapix-dev';
const d = (c: string) => `sha256:${c.repeat(64)}`;
const REG = '127.0.0.1:5000';
const DB = `${REG}/makapix-db@${d('a')}`;
const API = `${REG}/makapix-api@${d('b')}`;
const API2 = `${REG}/makapix-api@${d('c')}`;

const container = (id: string, labels: Record<string, string>, status = 'running') => ({
  Id: id.repeat(64).slice(0, 64),
  Name: `/${labels['com.docker.swarm.service.name'] ?? labels['com.docker.compose.service']}.1.x`,
  Image: d('f'),
  Config: { Image: 'img', Labels: labels },
  State: { Status: status },
  HostConfig: { NanoCpus: 500_000_000, Memory: 268435456 },
});
const task = (labels: string) => ({ 'com.docker.stack.namespace': STACK, 'com.docker.swarm.service.name': labels, 'com.docker.swarm.task.id': 't' });

const spec = (name: string, image: string, mode: object = { Replicated: { Replicas: 1 } }, update?: object) => ({
  ID: `id-${name}`,
  Spec: { Name: name, Labels: { 'com.docker.stack.namespace': STACK }, TaskTemplate: { ContainerSpec: { Image: image } }, Mode: mode },
  ...(update ? { UpdateStatus: update } : {}),
});
const line = (name: string, image: string, desired: string, current: string, error = '', node = 'vps') => ({
  ID: `${name}-${current}`,
  Name: name,
  Image: image,
  Node: node,
  DesiredState: desired,
  CurrentState: current,
  Error: error,
});

describe('the names of a stack', () => {
  it('names a swarm service <stack>_<service>, and reads the service back only from its own stack', () => {
    assert.equal(swarm.swarmServiceName(STACK, 'db'), 'makapix-dev_db');
    assert.equal(swarm.stackServiceName(STACK, 'makapix-dev_db'), 'db');
    assert.equal(swarm.stackServiceName(STACK, 'makapix_db'), undefined);
    assert.equal(swarm.stackServiceName(STACK, 'makapix-dev_'), undefined);
    assert.equal(swarm.stackServiceName(STACK, undefined), undefined);
    assert.equal(swarm.taskServiceLabel(STACK, 'api'), 'label=com.docker.swarm.service.name=makapix-dev_api');
    assert.equal(swarm.stackLabel(STACK), 'label=com.docker.stack.namespace=makapix-dev');
  });

  it("reads a task's swarm service from its name, a replicated slot or a global task's node id, an older task's too", () => {
    assert.equal(swarm.taskService('makapix-dev_api.1'), 'makapix-dev_api');
    assert.equal(swarm.taskService('makapix-dev_worker.kz3n9x1'), 'makapix-dev_worker');
    assert.equal(swarm.taskService('\\_ makapix-dev_api.1'), 'makapix-dev_api');
  });

  it("reads an image's repository with a registry port, a tag and a digest left out", () => {
    assert.equal(swarm.imageRepo(`${REG}/makapix-api:r1@${d('b')}`), `${REG}/makapix-api`);
    assert.equal(swarm.imageRepo(API), `${REG}/makapix-api`);
    assert.equal(swarm.imageRepo(`${REG}/makapix-api`), `${REG}/makapix-api`);
    assert.equal(swarm.imageRepo('postgres:15'), 'postgres');
  });
});

describe("a stack's task containers", () => {
  const json = JSON.stringify([
    container('2', task('makapix-dev_db')),
    container('1', task('makapix-dev_api'), 'exited'),
    container('3', { 'com.docker.stack.namespace': STACK, 'com.docker.swarm.service.name': 'other_api' }),
  ]);

  it("are named by the stack's service, never one-off, with no compose directory", () => {
    const states = parseStackInspect(json, STACK);
    assert.deepEqual(
      states.map((c) => [c.service, c.id, c.status, c.oneoff, c.workingDir]),
      [
        ['', '333333333333', 'running', false, ''],
        ['api', '111111111111', 'exited', false, ''],
        ['db', '222222222222', 'running', false, ''],
      ],
    );
  });

  it("are not a compose project's: the compose reading finds no service in them", () => {
    assert.deepEqual(
      parseInspect(json).map((c) => c.service),
      ['', '', ''],
    );
  });

  it("carry the stack's service names and their limits into the monitor's figures", () => {
    const limits = parseContainerLimits(json, STACK);
    assert.deepEqual(
      limits.map((l) => [l.service, l.cpus, l.memoryBytes]),
      [
        ['', 0.5, 268435456],
        ['api', 0.5, 268435456],
        ['db', 0.5, 268435456],
      ],
    );
    assert.deepEqual(
      parseContainerLimits(json).map((l) => l.service),
      ['', '', ''],
    );
  });
});

describe('what a stack runs, as the manager reports it', () => {
  const specs = swarm.parseServiceInspect(
    JSON.stringify([
      spec('makapix-dev_db', `${REG}/makapix-db:r1@${d('a')}`),
      spec('makapix-dev_api', API, { Replicated: { Replicas: 2 } }, { State: 'rollback_completed', Message: 'rollback completed' }),
      spec('makapix-dev_worker', 'twinstack-fixture-base:latest', { Global: {} }),
    ]),
  );
  const tasks = swarm.parseTasks(
    [
      line('makapix-dev_db.1', `${REG}/makapix-db:r1@${d('a')}`, 'Running', 'Running 2 minutes ago'),
      line('makapix-dev_api.1', API, 'Running', 'Running 1 minute ago'),
      line('makapix-dev_api.2', API, 'Running', 'Starting 2 seconds ago'),
      line('makapix-dev_api.2', API2, 'Shutdown', 'Failed 10 seconds ago', 'task: non-zero exit (1): dockerexec: unhealthy container'),
      line('makapix-dev_worker.n0de1', 'twinstack-fixture-base:latest', 'Running', 'Running 5 minutes ago'),
    ]
      .map((t) => JSON.stringify(t))
      .join('\n'),
  );
  const observed = swarmObservation(STACK, specs, tasks);

  it('gives each service its digest, the replicas it wants and runs, its tasks and its last update', () => {
    assert.deepEqual(
      observed.services.map((s) => [s.service, s.digest, s.replicas.wanted, s.replicas.running, s.tasks.length, s.update?.state]),
      [
        ['api', d('b'), 2, 1, 3, 'rollback_completed'],
        ['db', d('a'), 1, 1, 1, undefined],
        ['worker', undefined, undefined, 1, 1, undefined],
      ],
    );
    const api = observed.services[0];
    assert.deepEqual(
      failedTasks(api).map((t) => [t.digest, t.error]),
      [[d('c'), 'task: non-zero exit (1): dockerexec: unhealthy container']],
    );
  });

  it('finds no drift when every service runs the digest the release records', () => {
    const one = swarmObservation(STACK, specs.slice(0, 1), tasks.slice(0, 1));
    assert.deepEqual(swarmDrift(one, { db: DB }), []);
  });

  it('finds a service whose spec names another digest, one not pinned, one missing and one not in the release', () => {
    assert.deepEqual(swarmDrift(observed, { api: API2, db: DB, worker: `${REG}/w@${d('e')}`, cache: `${REG}/c@${d('e')}` }), [
      `service api runs ${REG}/makapix-api@sha256:bbbbbbbbbbbb, not the release's ${REG}/makapix-api@sha256:cccccccccccc`,
      'service cache is not deployed in stack makapix-dev',
      "service worker runs twinstack-fixture-base:latest, not pinned by digest (the release's is sha256:eeeeeeeeeeee)",
    ]);
    assert.deepEqual(swarmDrift(observed, { api: API, db: DB }), ['service worker runs, but is not part of the release']);
    // A service the release deployed by name (unpinned) is part of it.
    assert.deepEqual(swarmDrift(observed, { api: API, db: DB }, ['worker']), []);
  });

  it('finds the same digest in another repository, running tasks of another digest, and a service with no running task', () => {
    const one = swarmObservation(STACK, specs.slice(0, 1), []);
    assert.deepEqual(swarmDrift(one, { db: `${REG}/other-db@${d('a')}` }), [
      `service db runs ${REG}/makapix-db@sha256:aaaaaaaaaaaa, not the release's ${REG}/other-db@sha256:aaaaaaaaaaaa`,
    ]);
    assert.deepEqual(swarmDrift(one, { db: DB }), ['service db has no running task']);
    const old = swarmObservation(STACK, specs.slice(0, 1), [line('makapix-dev_db.1', `${REG}/makapix-db@${d('9')}`, 'Running', 'Running 1 hour ago')]);
    assert.deepEqual(swarmDrift(old, { db: DB }), ["service db: 1 of 1 running tasks run sha256:999999999999, not the release's sha256:aaaaaaaaaaaa"]);
  });

  it("judges a swarm environment's drift by digests, never by the compose images, and says when the release has none", () => {
    const sha = 'a'.repeat(40);
    const state: ObservedState = { environment: 'dev', head: sha, containers: [], images: {}, swarm: observed, time: '' };
    assert.deepEqual(drift(state, { release: 'r1', sha, images: {}, digests: { api: API, db: DB, worker: `${REG}/w@${d('e')}` } }), [
      "service worker runs twinstack-fixture-base:latest, not pinned by digest (the release's is sha256:eeeeeeeeeeee)",
    ]);
    assert.deepEqual(drift(state, { release: 'r1', sha, images: {} }), [
      'release r1 records no image digests, so what the stack runs cannot be matched with it; deploy again',
    ]);
    assert.deepEqual(drift(state, undefined), ['3 service(s) run in stack makapix-dev, but no release is recorded']);
    assert.deepEqual(drift({ ...state, swarm: { stack: STACK, services: [] } }, undefined), []);
  });

  it("puts each service's digest, replicas and last update, and each failed task's error, in status's summary", () => {
    const md = statusSummary([{ environment: 'dev', unfinished: [], containers: [], drift: [], remoteWork: [], swarm: observed }]).toMarkdown();
    assert.match(md, new RegExp(`\\| api \\| ${REG}/makapix-api \\| sha256:bbbbbbbbbbbb \\| 1/2 \\| rollback_completed: rollback completed \\|`));
    assert.match(md, /\| dev \| none recorded \|.*\| 3\/4 tasks running \|/);
    assert.match(md, /\| worker \| twinstack-fixture-base:latest \| no digest \| 1\/global \| {2}\|/);
    assert.match(
      md,
      /\| api \| makapix-dev_ \| vps \| Failed 10 seconds ago \| task: non-zero exit \(1\): dockerexec: unhealthy container \| sha256:cccccccccccc \|/,
    );
  });
});

describe("finding a task's container on the manager's node", () => {
  const config = parseConfig(
    `swarm: { registry: ${REG} }
environments:
  prod: {checkout: /srv/p, project: makapix, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: m, user: owner}}
  dev: {target: swarm, checkout: /srv/d, project: ${STACK}, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: m_dev, user: owner, port: 5433}}
`,
    'test',
  );

  /** Runs `command` with bash, a fake `docker` first on PATH that answers as FAKE says and logs its arguments. */
  function withFakeDocker(fake: string, command: string) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-fake-docker-'));
    try {
      fs.writeFileSync(path.join(dir, 'docker'), `#!/bin/bash\necho "$*" >> ${dir}/calls\n${fake}\n`, { mode: 0o755 });
      const r = spawnSync('bash', ['-c', command], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
      const calls = fs.existsSync(path.join(dir, 'calls')) ? fs.readFileSync(path.join(dir, 'calls'), 'utf8') : '';
      return { status: r.status, stdout: r.stdout, stderr: r.stderr, calls };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  it('says which node runs the task when none runs here and swarm.nodes has no entry for it, and exits 3 before any exec', () => {
    const fake = `case "$1 $2" in
  "ps -q") ;;
  "node inspect") echo manager-1 ;;
  "service ps") printf 'worker-2\\nmanager-1\\n' ;;
esac`;
    const r = withFakeDocker(fake, new Environment('dev', config).dbTool('psql', ['-d', 'm_dev', '-c', 'select 1']));
    assert.equal(r.status, 3);
    assert.match(
      r.stderr,
      /service makapix-dev_db runs its task on node worker-2, not on the manager's node \(manager-1\), and config has no swarm\.nodes\.worker-2: add it/,
    );
    assert.doesNotMatch(r.calls, /^exec/m);
    assert.match(r.calls, /ps -q --filter label=com.docker.stack.namespace=makapix-dev --filter label=com.docker.swarm.service.name=makapix-dev_db/);
  });

  it("runs the tool in the task's container found on this node, with the configured port and user", () => {
    const r = withFakeDocker(`[ "$1" = ps ] && printf 'c0ffee000001\\nc0ffee000002\\n'; true`, new Environment('dev', config).dbTool('psql', ['-d', 'm_dev']));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.calls, /^exec -i -e TWINSTACK_OP= c0ffee000001 sh -c .* psql -p 5432 -U owner -d m_dev$/m);
  });
});
