/**
 * Two nodes, on loopback: a private Docker engine as the swarm's manager, labelled for prod only,
 * and a second private engine joined to it as a worker, labelled for dev only (test/harness/
 * private-engine.ts; the machine's shared engine is never made a swarm). Both engines share the
 * machine's network namespace, each node on an address of its own in 127.0.0.0/8; the tasks use
 * host networking, so no overlay network is needed. prod and dev are deployed from one base file
 * and an overlay each (as test/fixtures/swarm/stack) through twinstack's deployRelease, over a real
 * sshd whose sessions reach the manager: every dev task runs on the worker, which pulls the pinned
 * digest from a loopback registry, and no prod task ever runs there, not even while the manager is
 * drained. Preflight's placement checks read both nodes from the manager. What twinstack runs in a
 * task's container (db tools, the gate's exec, the container list) reaches dev's on the worker only
 * through config swarm.nodes (the worker engine's socket, reachable from the manager's sessions on
 * this same machine), and is refused in one line without it. Asserted on the engines.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config, type EnvironmentName } from '../../src/domain/config';
import { parseEnvFile } from '../../src/domain/env-file';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { deployRelease } from '../../src/domain/swarm-release';
import { observe } from '../../src/domain/state';
import { containerMetrics } from '../../src/actions/monitor/monitor';
import { dockerExec } from '../../src/infra/docker';
import type { EnvironmentMetrics } from '../../src/safety/monitoring';
import { OperationFailed } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import * as swarm from '../../src/infra/swarm';
import { parseComposeConfig, type ComposeModel } from '../../src/safety/compose-model';
import { placementFindings } from '../../src/safety/placement';
import { connect } from '../harness/connect';
import { startPrivateEngine, type PrivateEngine } from '../harness/private-engine';
import { loopbackAddress } from '../harness/ports';
import { registryAvailable, startRegistry, type TestRegistry } from '../harness/registry';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';

const BASE_IMAGE = 'twinstack-fixture-base:latest';
const RUN = randomBytes(4).toString('hex');
const PROJECT = { prod: `twinstack-test-${RUN}-prod`, dev: `twinstack-test-${RUN}-dev` };
const WORKER_NAME = `twinstack-test-${RUN}-node2`;

const SLEEP = `["bash", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $$!; done"]`;
/**
 * dev's db is a real PostgreSQL (the base image's binaries), on its Unix socket only: the tasks use
 * the host network, and no TCP port is needed (dbTool's psql runs inside the container).
 */
const POSTGRES = `["bash", "-c", "set -e; runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /tmp/pgdata -U owner --auth=trust >/dev/null; exec runuser -u postgres -- /usr/lib/postgresql/15/bin/postgres -D /tmp/pgdata -c listen_addresses= -k /var/run/postgresql"]`;

// The fixture stack's shape: a db and a replicated api on the host network, placed by the overlays
// (the db's command too: a command set in two files is appended by docker stack deploy).
const BASE = `services:
  db:
    image: \${REGISTRY}/base:1
    networks: [hostnet]
  api:
    image: \${REGISTRY}/base:1
    networks: [hostnet]
    command: ${SLEEP}
    deploy:
      replicas: 2
networks:
  hostnet:
    name: host
    external: true
`;
const overlay = (env: EnvironmentName) => `services:
  db:
    command: ${env === 'dev' ? POSTGRES : SLEEP}
    deploy:
      placement:
        constraints: [node.labels.twinstack.env.${env} == true]
  api:
    deploy:
      placement:
        constraints: [node.labels.twinstack.env.${env} == true]
`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = process.getuid?.() !== 0 ? 'needs root to start dockerd' : (sshdAvailable() ?? registryAvailable() ?? false);

describe('a two-node swarm on loopback: dev on the worker, prod on the manager', { skip }, () => {
  let manager: PrivateEngine | undefined;
  let worker: PrivateEngine | undefined;
  let registry: TestRegistry | undefined;
  let sshd: TestSshd | undefined;
  let host: SshHost | undefined;
  let config: Config;
  /** The configuration, with or without swarm.allow-shared-node, and with the given swarm.nodes. */
  let configWith: (shared: boolean, nodes?: Record<string, string>) => Config;
  let dir: string;
  /** Where the manager's sessions find their ssh client (a key and known_hosts of the test's own). */
  let clientDir: string;
  let digest: swarm.DigestRef;
  const ids = { manager: '', worker: '' };
  const ctx = (env: EnvironmentName): EnvContext => ({ host: host!, config, env: new Environment(env, config), log: new MemoryLogger() });

  /** Each task of the stack, as the manager records it: its id, the node it was given, its state, its error. */
  const tasks = (env: EnvironmentName, filter: string[] = []) => {
    const taskIds = manager!
      .docker(['stack', 'ps', '-q', '--no-trunc', ...filter, PROJECT[env]])
      .split('\n')
      .filter(Boolean);
    if (!taskIds.length) return [];
    // A task the scheduler has not placed has an empty node id.
    return manager!
      .docker(['inspect', '--format', '{{.ID}} {{.NodeID}} {{.Status.State}} {{.Status.Err}}', ...taskIds])
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [id, node, state, ...err] = l.split(' ');
        return { id, node, state, err: err.join(' ') };
      });
  };
  /** The containers of a stack that an engine runs. */
  const containersOn = (engine: PrivateEngine, env: EnvironmentName) =>
    engine
      .docker(['ps', '-q', '--filter', `label=${swarm.STACK_LABEL}=${PROJECT[env]}`])
      .split('\n')
      .filter(Boolean);
  /** Waits (bounded) until the stack's running tasks satisfy `done`, for the engine's scheduler. */
  const until = async (what: string, done: () => boolean) => {
    for (let i = 0; i < 360; i++) {
      if (done()) return;
      await sleep(500);
    }
    assert.fail(`${what}: ${JSON.stringify({ prod: tasks('prod'), dev: tasks('dev') })}`);
  };
  /** The environment's merged files as the engine reads them (docker stack config on the manager), as preflight models them. */
  const model = async (env: EnvironmentName): Promise<ComposeModel> => {
    const e = new Environment(env, config);
    const values = parseEnvFile(fs.readFileSync(path.join(e.cfg.checkout, e.cfg.envFile), 'utf8'));
    const r = await host!.run(swarm.stackConfig({ dir: e.cfg.checkout, files: e.cfg.composeFiles, stack: e.project }), {
      stdin: swarm.envStdin(values),
      quiet: true,
    });
    return parseComposeConfig(r.stdout, e.project);
  };

  before(async () => {
    manager = await startPrivateEngine();
    worker = await startPrivateEngine({ hostname: WORKER_NAME });
    const managerAddress = loopbackAddress();
    let workerAddress = loopbackAddress();
    while (workerAddress === managerAddress) workerAddress = loopbackAddress();
    await manager.swarmInit({ address: managerAddress, ingress: false });
    await worker.swarmJoin(manager, workerAddress);
    ids.manager = manager.nodeId();
    ids.worker = worker.nodeId();
    manager.docker(['node', 'update', '--label-add', 'twinstack.env.prod=true', ids.manager]);
    manager.docker(['node', 'update', '--label-add', 'twinstack.env.dev=true', ids.worker]);

    // The image only on the manager, pushed to the registry: the worker can only pull it.
    registry = await startRegistry();
    manager.loadImage(BASE_IMAGE);
    manager.docker(['tag', BASE_IMAGE, `${registry.address}/base:1`]);
    manager.docker(['push', `${registry.address}/base:1`]);
    digest = swarm.digestRef.parse(manager.docker(['image', 'inspect', '--format', '{{index .RepoDigests 0}}', `${registry.address}/base:1`]).trim());

    // The manager's ssh client, for docker's ssh transport (ssh://): a key and known_hosts of the
    // test's own, given by an `ssh` first on the sessions' PATH (root's own ~/.ssh is left alone).
    clientDir = path.join(manager.dir, 'ssh-client');
    fs.mkdirSync(clientDir);
    fs.writeFileSync(
      path.join(clientDir, 'ssh'),
      `#!/bin/sh\nexec /usr/bin/ssh -F /dev/null -i ${clientDir}/key -o IdentitiesOnly=yes -o UserKnownHostsFile=${clientDir}/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes "$@"\n`,
      { mode: 0o755 },
    );
    sshd = await startSshd({ setEnv: { DOCKER_HOST: manager.host, PATH: `${clientDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` } });
    host = await connect(sshd);
    dir = path.join(manager.dir, 'checkouts');
    for (const env of ['prod', 'dev'] as const) {
      fs.mkdirSync(path.join(dir, env, 'stack'), { recursive: true });
      fs.writeFileSync(path.join(dir, env, 'stack', 'docker-compose.yml'), BASE);
      fs.writeFileSync(path.join(dir, env, 'stack', `docker-compose.${env}.yml`), overlay(env));
      fs.writeFileSync(path.join(dir, env, 'stack', `.env.${env}`), `REGISTRY=${registry.address}\n`);
    }
    const environment = (env: EnvironmentName, db: string) =>
      `{checkout: ${dir}/${env}, project: ${PROJECT[env]}, target: swarm, compose-files: [stack/docker-compose.yml, stack/docker-compose.${env}.yml], env-file: stack/.env.${env}, url: http://127.0.0.1:1, database: {name: ${db}, user: owner}, health-timeout-seconds: 600}`;
    const state = `${manager.dir}/state`;
    const reg = registry.address;
    configWith = (shared, nodes = {}) =>
      parseConfig(
        `state-dir: ${state}
swarm: { registry: '${reg}', allow-shared-node: ${shared}, nodes: ${JSON.stringify(nodes)} }
environments:
  prod: ${environment('prod', 'app')}
  dev: ${environment('dev', 'app_dev')}
`,
        'test',
      );
    config = configWith(false);
  });
  after(async () => {
    await host?.close();
    await sshd?.stop();
    // The worker first: it leaves a swarm whose manager still answers.
    const dirs = [worker?.dir, manager?.dir];
    await worker?.stop();
    await manager?.stop();
    for (const d of dirs) if (d) assert.ok(!fs.existsSync(d), `${d} is left behind`);
    for (const d of dirs) if (d) assert.equal(fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(d), false, `a mount under ${d} is left behind`);
    const store = registry?.dir;
    await registry?.stop();
    if (store) assert.ok(!fs.existsSync(store), `${store} is left behind`);
  });

  it('has two nodes: the manager, labelled for prod only, and the worker, labelled for dev only; preflight finds nothing to refuse', async () => {
    const nodes = swarm.parseNodes(manager!.docker(['node', 'inspect', ids.manager, ids.worker]));
    const byId = new Map(nodes.map((n) => [n.ID, n]));
    assert.equal(byId.get(ids.manager)?.Spec.Role, 'manager');
    assert.equal(byId.get(ids.worker)?.Spec.Role, 'worker');
    assert.equal(byId.get(ids.worker)?.Description.Hostname, WORKER_NAME);
    assert.notEqual(byId.get(ids.manager)?.Description.Hostname, WORKER_NAME);
    assert.deepEqual(byId.get(ids.manager)?.Spec.Labels, { 'twinstack.env.prod': 'true' });
    assert.deepEqual(byId.get(ids.worker)?.Spec.Labels, { 'twinstack.env.dev': 'true' });
    for (const n of nodes) assert.equal(n.Status.State, 'ready', `${n.Description.Hostname}: ${n.Status.State}`);
    // The worker joined as a worker: it cannot manage the swarm.
    assert.throws(() => worker!.docker(['node', 'ls']), /not a swarm manager/);

    const findings = await placementFindings(host!, config, { prod: await model('prod'), dev: await model('dev') });
    assert.deepEqual(findings, []);

    // Storage a task on the worker would not share with the manager: the same stacks with a vault
    // bound in each api. Only dev's, served by the worker, is warned of; prod's manager is one node.
    const withVault = async (env: EnvironmentName) => {
      const m = await model(env);
      m.services.find((x) => x.name === 'api')?.mounts.push({ type: 'bind', source: `/srv/${env}/vault`, target: '/vault', readOnly: false });
      return m;
    };
    const storage = await placementFindings(host!, config, { prod: await withVault('prod'), dev: await withVault('dev') });
    assert.deepEqual(
      storage.map((f) => [f.environment, f.severity]),
      [['dev', 'warning']],
    );
    assert.match(storage[0].message, new RegExp(`service api binds host path\\(s\\) /srv/dev/vault, and its tasks may run on ${WORKER_NAME} \\(worker\\)`));
  });

  it('deploys both stacks: every dev task runs on the worker, which pulled the pinned digest; every prod task on the manager', async () => {
    for (const env of ['prod', 'dev'] as const) {
      const reports = await deployRelease(ctx(env), { release: { db: digest, api: digest } });
      assert.deepEqual(reports.map((r) => [r.service, r.verdict]).sort(), [
        ['api', 'converged'],
        ['db', 'converged'],
      ]);
    }
    const running = { prod: tasks('prod', ['--filter', 'desired-state=running']), dev: tasks('dev', ['--filter', 'desired-state=running']) };
    assert.equal(running.prod.length, 3);
    assert.equal(running.dev.length, 3);
    for (const t of running.prod) assert.deepEqual([t.node, t.state], [ids.manager, 'running'], `prod task ${t.id}`);
    for (const t of running.dev) assert.deepEqual([t.node, t.state], [ids.worker, 'running'], `dev task ${t.id}`);
    // On the engines themselves: each runs its own environment's containers, and none of the other's.
    assert.equal(containersOn(manager!, 'prod').length, 3);
    assert.equal(containersOn(manager!, 'dev').length, 0);
    assert.equal(containersOn(worker!, 'dev').length, 3);
    assert.equal(containersOn(worker!, 'prod').length, 0);
    // The worker had no image but what it pulled from the registry: the pinned digest.
    const images = worker!.docker(['image', 'ls', '--digests', '--format', '{{.Repository}}@{{.Digest}}']).split('\n').filter(Boolean);
    assert.deepEqual(images, [digest]);
  });

  it("reaches prod's task containers from the manager; dev's on the worker only with a swarm.nodes entry for it, refused in one line without", async () => {
    const prod = new Environment('prod', config);
    const dev = new Environment('dev', config);
    const db = await prod.serviceContainer(host!, 'db');
    assert.equal(db.endpoint, undefined);
    assert.equal(manager!.docker(['inspect', '--format', '{{index .Config.Labels "com.docker.swarm.service.name"}}', db.id]).trim(), `${PROJECT.prod}_db`);

    // dev's db runs on the worker and config names no endpoint for it: finding its container fails, naming the node and the key.
    const failed = await dev.serviceContainer(host!, 'db').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(failed instanceof OperationFailed, String(failed));
    assert.equal(failed.message.split('\n').length, 1, failed.message);
    assert.match(failed.message, new RegExp(`node ${WORKER_NAME}\\b.*swarm\\.nodes\\.${WORKER_NAME}\\b`));
    // A database tool (psql, pg_dump: backup, gate, resample) stops before it runs anything.
    const psql = await host!.run(dev.dbTool('psql', ['-c', 'select 1']), { check: false, quiet: true });
    assert.equal(psql.exitCode, swarm.NO_TASK_HERE, psql.stderr);
    // What lists an environment's containers (monitor, the release record) sees none of dev's.
    assert.deepEqual(await dev.containers(host!), []);
    assert.equal((await prod.containers(host!)).length, 3);
  });

  it("follows dev's tasks to the worker through swarm.nodes: its db tool, the api's container and the container list reach the worker's engine", async () => {
    const reached = configWith(false, { [WORKER_NAME]: worker!.host });
    const dev = new Environment('dev', reached);
    const [dbOnWorker] = worker!
      .docker(['ps', '-q', '--filter', `label=${swarm.TASK_LABELS.service}=${PROJECT.dev}_db`])
      .split('\n')
      .filter(Boolean);
    assert.ok(dbOnWorker, "the worker runs no container of dev's db");
    // On the worker's engine only: the database, and a value the manager's node has nowhere.
    const onWorker = (sql: string) => worker!.docker(['exec', '-u', 'postgres', dbOnWorker, 'psql', '-U', 'owner', '-d', 'app_dev', '-tAc', sql]).trim();
    for (let i = 0; ; i++) {
      try {
        worker!.docker(['exec', '-u', 'postgres', dbOnWorker, 'psql', '-U', 'owner', '-d', 'postgres', '-tAc', 'create database app_dev']);
        break;
      } catch (e) {
        if (i >= 240) throw e;
        await sleep(500);
      }
    }
    onWorker(`create table marks (v text); insert into marks values ('only-on-${WORKER_NAME}')`);

    const found = await dev.serviceContainer(host!, 'db');
    assert.deepEqual(found, { id: dbOnWorker, endpoint: worker!.host });
    const api = await dev.serviceContainer(host!, 'api');
    assert.equal(api.endpoint, worker!.host);
    assert.ok(containersOn(worker!, 'dev').includes(api.id), `${api.id} is not one of the worker's containers`);

    // psql through the manager's ssh session, run in the worker's db container.
    const read = await host!.run(dev.dbTool('psql', ['-d', 'app_dev', '-tAc', 'select v from marks']), { quiet: true });
    assert.equal(read.stdout.trim(), `only-on-${WORKER_NAME}`);
    // Standard input streams through: SQL piped in lands in the worker's database.
    await host!.run(dev.dbTool('psql', ['-d', 'app_dev', '-v', 'ON_ERROR_STOP=1', '-q']), {
      stdin: `insert into marks values ('piped-${RUN}');\n`,
      quiet: true,
    });
    assert.equal(onWorker(`select count(*) from marks where v = 'piped-${RUN}'`), '1');
    // And out: a pg_dump written to a file on the manager's side.
    const dump = path.join(manager!.dir, 'app_dev.sql');
    await host!.run(`${dev.dbTool('pg_dump', ['-d', 'app_dev'])} > ${dump}`, { quiet: true });
    assert.match(fs.readFileSync(dump, 'utf8'), new RegExp(`only-on-${WORKER_NAME}[\\s\\S]*piped-${RUN}`));

    // The container list: the worker's three task containers, each marked with its node.
    const listed = await dev.containers(host!);
    assert.deepEqual(
      listed.map((c) => c.id).sort(),
      containersOn(worker!, 'dev')
        .map((id) => id.slice(0, 12))
        .sort(),
    );
    assert.equal(listed.length, 3);
    for (const c of listed) assert.deepEqual(c.node, { hostname: WORKER_NAME, endpoint: worker!.host }, c.name);
    // A stack with no task to run (here: none deployed) has no node but the manager's: the engine's "nothing found" is not a failure.
    const none = await host!.run(swarm.stackNodes(`twinstack-test-${RUN}-none`), { quiet: true });
    assert.deepEqual(swarm.parseStackNodes(none.stdout).others, []);
    // prod's, all on the manager's node, carry no node.
    const prodListed = await new Environment('prod', reached).containers(host!);
    assert.equal(prodListed.length, 3);
    for (const c of prodListed) assert.equal(c.node, undefined);
  });

  it("runs the gate's exec in dev's api task on the worker, and reads monitor's figures of dev's tasks on the worker's engine", async () => {
    const dev = new Environment('dev', configWith(false, { [WORKER_NAME]: worker!.host }));
    const api = await dev.serviceContainer(host!, 'api');
    // The gate's and alembic's path: a command in the container through its ref, its exit status passed back.
    const mark = `gate-${RUN}`;
    const ran = await host!.run(dockerExec(api, ['sh', '-c', `echo ${mark} > /tmp/twinstack-mark; exit 7`]), { quiet: true, check: false });
    assert.equal(ran.exitCode, 7, ran.stderr);
    assert.equal(worker!.docker(['exec', api.id, 'cat', '/tmp/twinstack-mark']).trim(), mark);
    assert.ok(!containersOn(manager!, 'dev').length, "the manager's node runs none of dev's containers");

    // Monitor: every running dev task container, read on the worker's engine and marked with its node.
    const into: EnvironmentMetrics = { environment: 'dev', project: PROJECT.dev, containers: [] };
    await containerMetrics(host!, dev, into);
    assert.equal(into.containersError, undefined);
    assert.equal(into.unreachedNodes, undefined);
    const names = worker!
      .docker(['ps', '--format', '{{.Names}}', '--filter', `label=${swarm.STACK_LABEL}=${PROJECT.dev}`])
      .split('\n')
      .filter(Boolean)
      .sort();
    assert.equal(names.length, 3);
    assert.deepEqual(into.containers.map((c) => c.name).sort(), names);
    for (const c of into.containers) {
      assert.equal(c.node, WORKER_NAME, c.name);
      assert.ok(typeof c.memUsageBytes === 'number' && c.memUsageBytes > 0, `${c.name}: no memory figure`);
    }
    // status reads the same containers (and the api's alembic revision in the one it finds).
    const observed = await observe(host!, dev);
    assert.deepEqual(observed.containers.map((c) => c.name).sort(), names);
    assert.deepEqual(observed.swarm?.services.map((v) => v.service).sort(), ['api', 'db']);
    // Without the entry, monitor says which node it could not read instead of measuring nothing in silence.
    const unmapped: EnvironmentMetrics = { environment: 'dev', project: PROJECT.dev, containers: [] };
    await containerMetrics(host!, new Environment('dev', config), unmapped);
    assert.deepEqual(unmapped.unreachedNodes, [WORKER_NAME]);
    assert.deepEqual(unmapped.containers, []);
  });

  /** Through `endpoint`: dev's db is the worker's db task container, and psql reads the row an earlier test piped into it. */
  async function readsWorkerDb(dev: Environment, endpoint: string): Promise<void> {
    const [dbOnWorker] = worker!
      .docker(['ps', '-q', '--filter', `label=${swarm.TASK_LABELS.service}=${PROJECT.dev}_db`])
      .split('\n')
      .filter(Boolean);
    assert.deepEqual(await dev.serviceContainer(host!, 'db'), { id: dbOnWorker, endpoint });
    const read = await host!.run(dev.dbTool('psql', ['-d', 'app_dev', '-tAc', `select count(*) from marks where v = 'piped-${RUN}'`]), { quiet: true });
    assert.equal(read.stdout.trim(), '1');
  }

  it("reaches the worker's engine over docker's ssh transport too (swarm.nodes: ssh://user@host:port, the node's sshd sessions on its engine)", async () => {
    const nodeSshd = await startSshd({ setEnv: { DOCKER_HOST: worker!.host } });
    try {
      fs.writeFileSync(path.join(clientDir, 'key'), nodeSshd.privateKey, { mode: 0o600 });
      const endpoint = `ssh://${nodeSshd.user}@127.0.0.1:${nodeSshd.port}`;
      const dev = new Environment('dev', configWith(false, { [WORKER_NAME]: endpoint }));
      // The node's host key unknown to the manager: ssh refuses, and the lookup says so in one line.
      fs.writeFileSync(path.join(clientDir, 'known_hosts'), '');
      await assert.rejects(
        dev.serviceContainer(host!, 'db'),
        (e) => e instanceof OperationFailed && !e.message.includes('\n') && e.message.includes(endpoint) && /Host key verification failed/.test(e.message),
      );
      fs.writeFileSync(path.join(clientDir, 'known_hosts'), nodeSshd.knownHosts);
      await readsWorkerDb(dev, endpoint);
      const listed = await dev.containers(host!);
      assert.deepEqual(listed.map((c) => c.id).sort(), containersOn(worker!, 'dev').sort());
      for (const c of listed) assert.deepEqual(c.node, { hostname: WORKER_NAME, endpoint });
    } finally {
      await nodeSshd.stop();
    }
  });

  it("reaches the worker's engine over tcp:// too (swarm.nodes: tcp://host:port)", async () => {
    // The engine's API on a loopback TCP port: a relay to its socket, in this process, so the
    // engine itself need not listen on TCP (dockerd slows its start when it binds TCP without TLS).
    // Half-open both ways: docker closes its writing side once an exec's stdin ends, and the answer still comes back.
    const relay = net.createServer({ allowHalfOpen: true }, (client) => {
      const engine = net.connect({ path: worker!.host.replace(/^unix:\/\//, ''), allowHalfOpen: true });
      client.pipe(engine).pipe(client);
      const end = () => {
        client.destroy();
        engine.destroy();
      };
      client.on('error', end);
      engine.on('error', end);
    });
    const address = loopbackAddress();
    await new Promise<void>((resolve) => relay.listen(0, address, resolve));
    try {
      const endpoint = `tcp://${address}:${(relay.address() as net.AddressInfo).port}`;
      const dev = new Environment('dev', configWith(false, { [WORKER_NAME]: endpoint }));
      await readsWorkerDb(dev, endpoint);
      const state = await observe(host!, dev);
      assert.deepEqual(state.containers.map((c) => c.id).sort(), containersOn(worker!, 'dev').sort());
      for (const c of state.containers) assert.deepEqual(c.node, { hostname: WORKER_NAME, endpoint });
    } finally {
      await new Promise((resolve) => relay.close(resolve));
    }
  });

  it('never places a prod task on the worker: with the manager drained, prod waits unscheduled and preflight says so', async () => {
    manager!.docker(['node', 'update', '--availability', 'drain', ids.manager]);
    try {
      await until(
        'prod has no running task',
        () => containersOn(manager!, 'prod').length === 0 && tasks('prod', ['--filter', 'desired-state=running']).every((t) => t.state === 'pending'),
      );
      const waiting = tasks('prod', ['--filter', 'desired-state=running']);
      assert.equal(waiting.length, 3);
      for (const t of waiting) assert.deepEqual([t.node, t.state], ['', 'pending'], `prod task ${t.id}`);
      assert.match(waiting[0].err, /no suitable node/);
      assert.equal(containersOn(worker!, 'prod').length, 0);
      assert.equal(containersOn(worker!, 'dev').length, 3);

      const findings = await placementFindings(host!, config, {});
      assert.deepEqual(
        findings.map((f) => [f.environment, f.severity]),
        [['prod', 'error']],
      );
    } finally {
      manager!.docker(['node', 'update', '--availability', 'active', ids.manager]);
    }
    await until('prod runs again on the manager', () => containersOn(manager!, 'prod').length === 3);
    // Over the stack's whole history, no prod task was ever given the worker.
    const all = tasks('prod');
    assert.ok(all.length > 3);
    assert.equal(all.filter((t) => t.node === ids.worker).length, 0, JSON.stringify(all));
  });

  it('refuses a node labelled for both environments unless swarm.allow-shared-node, reading both nodes as the engine reports them', async () => {
    manager!.docker(['node', 'update', '--label-add', 'twinstack.env.dev=true', ids.manager]);
    try {
      const findings = await placementFindings(host!, config, {});
      assert.equal(findings.length, 1, JSON.stringify(findings));
      assert.equal(findings[0].environment, 'both');
      assert.equal(findings[0].severity, 'error');
      assert.match(findings[0].message, new RegExp(ids.manager.slice(0, 12)));
      // Allowed, the same nodes pass.
      assert.deepEqual(await placementFindings(host!, configWith(true), {}), []);
    } finally {
      manager!.docker(['node', 'update', '--label-rm', 'twinstack.env.dev', ids.manager]);
    }
  });
});
