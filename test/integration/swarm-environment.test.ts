/**
 * An environment whose target is swarm, driven over a real sshd whose sessions reach a private
 * Docker engine (test/harness/private-engine.ts; the machine's shared engine is never made a
 * swarm): a single-node swarm runs a stack of a PostgreSQL db task and an api task, pinned by
 * digest to images pushed to a registry of the test's own (Debian's docker-registry on loopback).
 * twinstack finds the tasks' containers (dbTool, serviceContainer, containers), reads the stack's
 * services from the engine (observe) and judges them against a release's digests (drift).
 * Asserted on the engine and the database.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { containerMetrics, databaseMetrics } from '../../src/actions/monitor/monitor';
import { parseConfig } from '../../src/domain/config';
import type { EnvironmentMetrics } from '../../src/safety/monitoring';
import { Environment } from '../../src/domain/environment';
import { drift, observe } from '../../src/domain/state';
import { EnvironmentLock } from '../../src/domain/lock';
import { dockerExec, EXEC_PID_PREFIX } from '../../src/infra/docker';
import { OperationFailed } from '../../src/infra/errors';
import type { SshHost } from '../../src/infra/ssh';
import * as swarm from '../../src/infra/swarm';
import { connect } from '../harness/connect';
import { startPrivateEngine, type PrivateEngine } from '../harness/private-engine';
import { freePort, waitForPort } from '../harness/ports';
import { startSshd, type TestSshd } from '../harness/sshd';

const BASE = 'twinstack-fixture-base:latest';
const RUN = randomBytes(4).toString('hex');
const STACK = `twinstack-test-${RUN}-dev`;
const APP = path.join(__dirname, '..', 'fixtures', 'app');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The stack: the fixture's db image and a plain api, both on the host network, placed on dev's nodes. */
function stackFile(o: { db: string; api: string; dbPort: number; apiPort: number }): string {
  return `services:
  db:
    image: ${o.db}
    networks: [hostnet]
    environment: { DB_PORT: "${o.dbPort}", DB_NAME: makapix_dev, DB_PASSWORD: owner-pw, APP_DB_PASSWORD: app-pw }
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -p ${o.dbPort} -d makapix_dev -U owner"]
      interval: 1s
      retries: 30
    deploy:
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
  api:
    image: ${o.api}
    networks: [hostnet]
    command: ["python3", "-m", "http.server", "${o.apiPort}", "--bind", "127.0.0.1"]
    deploy:
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
networks:
  hostnet:
    name: host
    external: true
`;
}

describe('an environment on a single-node swarm, reached over ssh', { skip: process.getuid?.() !== 0 ? 'needs root to start dockerd' : false }, () => {
  let engine: PrivateEngine | undefined;
  let registry: ChildProcess | undefined;
  let sshd: TestSshd | undefined;
  let host: SshHost | undefined;
  let dev: Environment;
  let sha: string;
  /** What the test pushed: service → `repo@sha256:…`, and a second api image for drift. */
  let digests: Record<string, string>;
  let otherApi: string;
  let dbPort: number;

  /** Builds an image on the private engine (the classic builder: the engine has no bridge), pushes it, returns its `repo@sha256:…`. */
  const buildAndPush = (ref: string, args: string[], input?: string): string => {
    execFileSync('docker', ['-H', engine!.host, 'build', '--network', 'host', '-q', '-t', ref, ...args], {
      input,
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      stdio: ['pipe', 'ignore', 'pipe'],
      timeout: 600_000,
    });
    engine!.docker(['push', ref]);
    const digest = swarm.parseRepoDigests(engine!.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]), ref.replace(/:[^:/]+$/, ''));
    assert.ok(digest, `${ref} has no digest in the registry`);
    return digest;
  };

  /** The engine's own view: container ids (12 characters) of a stack service's running tasks. */
  const taskIds = (service: string) =>
    engine!
      .docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_${service}`])
      .split('\n')
      .filter(Boolean);

  before(async () => {
    engine = await startPrivateEngine();
    await engine.swarmInit();
    engine.loadImage(BASE);
    const node = engine.docker(['node', 'ls', '-q']).trim();
    engine.docker(['node', 'update', '--label-add', 'twinstack.env.dev=true', node]);

    const regPort = await freePort();
    const regDir = path.join(engine.dir, 'registry');
    fs.mkdirSync(regDir);
    const regConfig = path.join(regDir, 'config.yml');
    fs.writeFileSync(
      regConfig,
      `version: 0.1\nlog: { level: error }\nstorage: { filesystem: { rootdirectory: ${regDir}/data } }\nhttp: { addr: 127.0.0.1:${regPort} }\n`,
    );
    registry = spawn('docker-registry', ['serve', regConfig], { stdio: 'ignore' });
    await waitForPort(regPort, 60_000);
    const repo = (name: string) => `127.0.0.1:${regPort}/twinstack-test-${RUN}-${name}`;

    digests = {
      db: buildAndPush(`${repo('db')}:1`, ['-f', path.join(APP, 'db', 'Dockerfile'), APP]),
      api: buildAndPush(`${repo('api')}:1`, ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=1\n`),
    };
    otherApi = buildAndPush(`${repo('api')}:2`, ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=2\n`);

    // The checkout the environment is deployed from: a commit of the stack file.
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), stackFile({ db: digests.db, api: digests.api, dbPort, apiPort: await freePort() }));
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', checkout, '-c', 'user.name=t', '-c', 'user.email=t@example.test', ...args], { encoding: 'utf8' });
    git('init', '-q');
    git('add', 'stack.yml');
    git('commit', '-q', '-m', 'stack');
    sha = git('rev-parse', 'HEAD').trim();

    engine.docker(['stack', 'deploy', '-c', 'stack.yml', STACK], { cwd: checkout });
    // The machine is shared and slow at times: wait for the engine, however long it takes (bounded).
    for (let i = 0; i < 600; i++) {
      const health = engine.docker(['ps', '--filter', `label=com.docker.swarm.service.name=${STACK}_db`, '--format', '{{.Status}}']);
      if (health.includes('(healthy)') && taskIds('api').length === 1) break;
      await sleep(500);
    }
    assert.equal(taskIds('db').length, 1, engine.docker(['service', 'ps', '--no-trunc', `${STACK}_db`]));

    sshd = await startSshd({ setEnv: { DOCKER_HOST: engine.host } });
    host = await connect(sshd);
    const config = parseConfig(
      `state-dir: ${engine.dir}/state
swarm: { registry: 127.0.0.1:${regPort}, allow-shared-node: true }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: owner, port: 1}}
  dev: {target: swarm, checkout: ${checkout}, project: ${STACK}, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:2,
        database: {name: makapix_dev, user: owner, port: ${dbPort}, container-port: ${dbPort}}}
`,
      'test',
    );
    dev = new Environment('dev', config);
  });

  after(async () => {
    await host?.close();
    await sshd?.stop();
    registry?.kill('SIGTERM');
    const dir = engine?.dir;
    await engine?.stop();
    if (dir) assert.ok(!fs.existsSync(dir), `${dir} is left behind`);
  });

  it("runs psql in the db task's container: it reads the row written there", async () => {
    const [db] = taskIds('db');
    engine!.docker([
      'exec',
      db,
      'psql',
      '-p',
      String(dbPort),
      '-U',
      'owner',
      '-d',
      'makapix_dev',
      '-c',
      `create table notes (body text); insert into notes values ('from ${RUN}')`,
    ]);
    const r = await host!.run(dev.dbTool('psql', ['-d', 'makapix_dev', '-tAc', 'select body from notes']));
    assert.equal(r.stdout.trim(), `from ${RUN}`);
    // Standard input passes through the group, as pg_restore and psql -f - need.
    await host!.run(dev.dbTool('psql', ['-d', 'makapix_dev', '-v', 'ON_ERROR_STOP=1', '-q']), { stdin: `insert into notes values ('piped');\n` });
    assert.match(
      engine!.docker(['exec', db, 'psql', '-p', String(dbPort), '-U', 'owner', '-d', 'makapix_dev', '-tAc', 'select count(*) from notes']),
      /^2\s*$/,
    );
  });

  it("finds the api task's container, the one the engine runs", async () => {
    const { id, endpoint } = await dev.serviceContainer(host!, 'api');
    assert.deepEqual([id.slice(0, 12)], taskIds('api'));
    // On the manager's own node: no endpoint, the host's own engine.
    assert.equal(endpoint, undefined);
    await assert.rejects(dev.serviceContainer(host!, 'worker'), (e) => e instanceof OperationFailed && /worker/.test(e.message));
  });

  it("stops a cancelled operation's docker exec inside the db task's container", async () => {
    const [db] = taskIds('db');
    const op = `op-${RUN}`;
    const child = spawn('bash', ['-c', dockerExec(db, ['sleep', '400'])], {
      env: { ...process.env, DOCKER_HOST: engine!.host, TWINSTACK_OP: op },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const inside = (script: string) => engine!.docker(['exec', db, 'sh', '-c', script]).trim();
    let pid = '';
    for (let i = 0; i < 300 && !pid; i++, await sleep(100)) pid = inside(`cat ${EXEC_PID_PREFIX}${op}-* 2>/dev/null | cut -d' ' -f1 || true`);
    assert.match(pid, /^\d+$/, 'the exec wrote no pid file');
    const stateDir = path.join(engine!.dir, 'state');
    fs.mkdirSync(EnvironmentLock.paths(stateDir, 'dev').entriesDir, { recursive: true });
    await EnvironmentLock.stopWork({ host: host!, stateDir, env: 'dev', op, project: STACK, swarm: true, graceSeconds: 1 });
    const alive = () => spawnSync('docker', ['-H', engine!.host, 'exec', db, 'sh', '-c', `kill -0 ${pid}`]).status === 0;
    for (let i = 0; i < 50 && alive(); i++) await sleep(100);
    assert.equal(alive(), false, "the operation's exec still runs in the db task's container");
    // The host-side docker exec ends with it.
    await exited;
  });

  it("lists the stack's task containers under the stack's service names", async () => {
    const containers = await dev.containers(host!);
    assert.deepEqual(containers.map((c) => c.service).sort(), ['api', 'db']);
    for (const c of containers) {
      assert.deepEqual([c.id], taskIds(c.service));
      assert.equal(c.status, 'running');
    }
  });

  it("measures the stack's running tasks for the monitor, and the database's connections in the db task", async () => {
    const m: EnvironmentMetrics = { environment: 'dev', project: STACK, containers: [] };
    await containerMetrics(host!, dev, m);
    await databaseMetrics(host!, dev, m);
    assert.equal(m.containersError, undefined);
    assert.deepEqual(
      m.containers.map((c) => [c.service, c.status]),
      [
        ['api', 'running'],
        ['db', 'running'],
      ],
    );
    for (const c of m.containers) assert.ok((c.memUsageBytes ?? 0) > 0, `${c.service} uses no memory: ${JSON.stringify(c)}`);
    // The fixture's db starts with max_connections=50; psql's own session is one client backend.
    assert.equal(m.databaseError, undefined);
    assert.equal(m.database?.max, 50);
    assert.ok((m.database?.connections ?? 0) >= 1);
  });

  it('observes the digests and replicas the engine has, and finds no drift from the release that pushed them', async () => {
    const observed = await observe(host!, dev);
    assert.equal(observed.head, sha);
    const services = observed.swarm?.services ?? [];
    assert.deepEqual(
      services.map((s) => [s.service, s.digest, s.replicas.running, s.replicas.wanted]),
      ['api', 'db'].map((s) => [s, swarm.taskDigest(digests[s]), 1, 1]),
    );
    for (const s of services) {
      const spec = engine!.docker(['service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', `${STACK}_${s.service}`]).trim();
      assert.equal(s.image, spec);
      assert.deepEqual(
        s.tasks.filter((t) => t.desired === 'Running').map((t) => t.digest),
        [swarm.taskDigest(digests[s.service])],
      );
    }
    assert.deepEqual(drift(observed, { release: 'r1', sha, images: {}, digests }), []);
  });

  it('finds drift once a service runs another image than the release records', async () => {
    engine!.docker(['service', 'update', '--quiet', '--detach=false', '--image', otherApi, `${STACK}_api`]);
    const observed = await observe(host!, dev);
    const api = observed.swarm?.services.find((s) => s.service === 'api');
    assert.equal(api?.digest, swarm.taskDigest(otherApi));
    const lines = drift(observed, { release: 'r1', sha, images: {}, digests });
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /^service api runs .*sha256:[0-9a-f]{12}, not the release's/);
    assert.deepEqual(drift(observed, { release: 'r2', sha, images: {}, digests: { ...digests, api: otherApi } }), []);
  });
});
