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
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { containerMetrics, databaseMetrics } from '../../src/actions/monitor/monitor';
import type { EnvironmentMetrics } from '../../src/safety/monitoring';
import { Environment } from '../../src/domain/environment';
import { drift, observe } from '../../src/domain/state';
import { EnvironmentLock } from '../../src/domain/lock';
import { dockerExec, EXEC_PID_PREFIX } from '../../src/infra/docker';
import { OperationFailed } from '../../src/infra/errors';
import type { SshHost } from '../../src/infra/ssh';
import * as swarm from '../../src/infra/swarm';
import { freePort } from '../harness/ports';
import {
  BASE_IMAGE as BASE,
  commitAll,
  dbService,
  DEV_DB,
  HOST_NETWORK,
  startSwarmHost,
  swarmDevConfig,
  swarmHostSkip,
  until,
  type SwarmHost,
} from '../harness/swarm-host';

const OPTIONS = { labels: ['dev'], registry: true, ssh: true } as const;
const APP = path.join(__dirname, '..', 'fixtures', 'app');

/** The stack: the fixture's db image and a plain api, both on the host network, placed on dev's nodes. */
function stackFile(o: { db: string; api: string; dbPort: number; apiPort: number }): string {
  return `services:
${dbService({ image: o.db, port: o.dbPort })}  api:
    image: ${o.api}
    networks: [hostnet]
    command: ["python3", "-m", "http.server", "${o.apiPort}", "--bind", "127.0.0.1"]
    deploy:
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
${HOST_NETWORK}`;
}

describe('an environment on a single-node swarm, reached over ssh', { skip: swarmHostSkip(OPTIONS) }, () => {
  let sw: SwarmHost;
  let host: SshHost;
  let stack: string;
  let dev: Environment;
  let sha: string;
  /** What the test pushed: service → `repo@sha256:…`, and a second api image for drift. */
  let digests: Record<string, string>;
  let otherApi: string;
  let dbPort: number;

  /** The engine's own view: container ids (12 characters) of a stack service's running tasks. */
  const taskIds = (service: string) => sw.taskContainers(`${stack}_${service}`);
  const psql = (sql: string) => sw.psql({ service: `${stack}_db`, port: dbPort, database: DEV_DB }, sql);

  before(async () => {
    sw = await startSwarmHost(OPTIONS);
    const { engine, registry } = sw as Required<SwarmHost>;
    host = sw.host!;
    stack = sw.name('dev');
    const repo = (name: string) => `${registry.address}/${sw.name(name)}`;

    digests = {
      db: sw.buildAndPush(`${repo('db')}:1`, ['-f', path.join(APP, 'db', 'Dockerfile'), APP]),
      api: sw.buildAndPush(`${repo('api')}:1`, ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=1\n`),
    };
    otherApi = sw.buildAndPush(`${repo('api')}:2`, ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=2\n`);

    // The checkout the environment is deployed from: a commit of the stack file.
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), stackFile({ db: digests.db, api: digests.api, dbPort, apiPort: await freePort() }));
    sha = commitAll(checkout);

    engine.docker(['stack', 'deploy', '-c', 'stack.yml', stack], { cwd: checkout });
    await until(
      () =>
        engine.docker(['ps', '--filter', `label=com.docker.swarm.service.name=${stack}_db`, '--format', '{{.Status}}']).includes('(healthy)') &&
        taskIds('api').length === 1,
      { limitMs: 300_000 },
    );
    assert.equal(taskIds('db').length, 1, engine.docker(['service', 'ps', '--no-trunc', `${stack}_db`]));

    const config = swarmDevConfig({ dir: engine.dir, registry: registry.address, checkout, project: stack, dbPort });
    dev = new Environment('dev', config);
  });

  after(async () => {
    await sw?.stop();
  });

  it("runs psql in the db task's container: it reads the row written there", async () => {
    psql(`create table notes (body text); insert into notes values ('from ${sw.run}')`);
    const r = await host.run(dev.dbTool('psql', ['-d', 'makapix_dev', '-tAc', 'select body from notes']));
    assert.equal(r.stdout.trim(), `from ${sw.run}`);
    // Standard input passes through the group, as pg_restore and psql -f - need.
    await host.run(dev.dbTool('psql', ['-d', 'makapix_dev', '-v', 'ON_ERROR_STOP=1', '-q']), { stdin: `insert into notes values ('piped');\n` });
    assert.equal(psql('select count(*) from notes'), '2');
  });

  it("finds the api task's container, the one the engine runs", async () => {
    const { id, endpoint } = await dev.serviceContainer(host, 'api');
    assert.deepEqual([id.slice(0, 12)], taskIds('api'));
    // On the manager's own node: no endpoint, the host's own engine.
    assert.equal(endpoint, undefined);
    await assert.rejects(dev.serviceContainer(host, 'worker'), (e) => e instanceof OperationFailed && /worker/.test(e.message));
  });

  it("stops a cancelled operation's docker exec inside the db task's container", async () => {
    const [db] = taskIds('db');
    const op = `op-${sw.run}`;
    const child = spawn('bash', ['-c', dockerExec(db, ['sleep', '400'])], {
      env: { ...process.env, DOCKER_HOST: sw.engine.host, TWINSTACK_OP: op },
      stdio: 'ignore',
    });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    const inside = (script: string) => sw.engine.docker(['exec', db, 'sh', '-c', script]).trim();
    let pid = '';
    await until(() => (pid = inside(`cat ${EXEC_PID_PREFIX}${op}-* 2>/dev/null | cut -d' ' -f1 || true`)) !== '', { limitMs: 30_000, everyMs: 100 });
    assert.match(pid, /^\d+$/, 'the exec wrote no pid file');
    const stateDir = path.join(sw.engine.dir, 'state');
    fs.mkdirSync(EnvironmentLock.paths(stateDir, 'dev').entriesDir, { recursive: true });
    await EnvironmentLock.stopWork({ host, stateDir, env: 'dev', op, project: stack, swarm: true, graceSeconds: 1 });
    const alive = () => spawnSync('docker', ['-H', sw.engine.host, 'exec', db, 'sh', '-c', `kill -0 ${pid}`]).status === 0;
    await until(() => !alive(), { limitMs: 5_000, everyMs: 100 });
    assert.equal(alive(), false, "the operation's exec still runs in the db task's container");
    // The host-side docker exec ends with it.
    await exited;
  });

  it("lists the stack's task containers under the stack's service names", async () => {
    const containers = await dev.containers(host);
    assert.deepEqual(containers.map((c) => c.service).sort(), ['api', 'db']);
    for (const c of containers) {
      assert.deepEqual([c.id], taskIds(c.service));
      assert.equal(c.status, 'running');
    }
  });

  it("measures the stack's running tasks for the monitor, and the database's connections in the db task", async () => {
    const m: EnvironmentMetrics = { environment: 'dev', project: stack, containers: [] };
    await containerMetrics(host, dev, m);
    await databaseMetrics(host, dev, m);
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
    const observed = await observe(host, dev);
    assert.equal(observed.head, sha);
    const services = observed.swarm?.services ?? [];
    assert.deepEqual(
      services.map((s) => [s.service, s.digest, s.replicas.running, s.replicas.wanted]),
      ['api', 'db'].map((s) => [s, swarm.taskDigest(digests[s]), 1, 1]),
    );
    for (const s of services) {
      assert.equal(s.image, sw.specImage(`${stack}_${s.service}`));
      assert.deepEqual(
        s.tasks.filter((t) => t.desired === 'Running').map((t) => t.digest),
        [swarm.taskDigest(digests[s.service])],
      );
    }
    assert.deepEqual(drift(observed, { release: 'r1', sha, images: {}, digests }), []);
  });

  it('finds drift once a service runs another image than the release records', async () => {
    sw.engine.docker(['service', 'update', '--quiet', '--detach=false', '--image', otherApi, `${stack}_api`]);
    const observed = await observe(host, dev);
    const api = observed.swarm?.services.find((s) => s.service === 'api');
    assert.equal(api?.digest, swarm.taskDigest(otherApi));
    const lines = drift(observed, { release: 'r1', sha, images: {}, digests });
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], /^service api runs .*sha256:[0-9a-f]{12}, not the release's/);
    assert.deepEqual(drift(observed, { release: 'r2', sha, images: {}, digests: { ...digests, api: otherApi } }), []);
  });
});
