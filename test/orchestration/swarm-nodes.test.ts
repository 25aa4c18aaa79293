/**
 * On a swarm, what needs a task's container follows the task to its node (config swarm.nodes),
 * against a fake manager (test/support/fake-host.ts) that answers as a three-node swarm would: the
 * manager `vps`, `node-2` with an entry in swarm.nodes, and `node-3` without one. Which engine each
 * docker command goes to is read off the commands the fake recorded. The shell itself runs in
 * test/unit/swarm-nodes.test.ts (a stub docker) and against real engines in
 * test/integration/swarm-nodes.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { containerMetrics } from '../../src/actions/monitor/monitor';
import { Environment } from '../../src/domain/environment';
import { migrationPlan } from '../../src/domain/alembic';
import { EnvironmentLock } from '../../src/domain/lock';
import { observe } from '../../src/domain/state';
import { ensureWal } from '../../src/domain/wal';
import { MemoryLogger } from '../../src/infra/logger';
import { OperationFailed } from '../../src/infra/errors';
import { judgeMetrics, type EnvironmentMetrics } from '../../src/safety/monitoring';
import { FakeHost } from '../support/fake-host';
import { STACK, swarmConfig } from '../support/fake-swarm';

const NODE2 = 'ssh://deploy@node-2';
const config = (() => {
  const c = swarmConfig();
  return { ...c, swarm: { ...c.swarm, nodes: { 'node-2': NODE2 } } };
})();
const dev = new Environment('dev', config);

/** `docker inspect` of one task container of the dev stack. */
const inspected = (id: string, service: string) => ({
  Id: id.padEnd(64, '0'),
  Name: `/${STACK}_${service}.1.${id}`,
  Image: `sha256:${'1'.repeat(64)}`,
  Config: { Image: 'img', Labels: { 'com.docker.stack.namespace': STACK, 'com.docker.swarm.service.name': `${STACK}_${service}` } },
  State: { Status: 'running', ExitCode: 0, StartedAt: '' },
  HostConfig: { NanoCpus: 1e9, Memory: 1024 ** 3 },
});
const SPLIT = '--twinstack-inspect--';
const statsLine = (id: string) => `${JSON.stringify({ ID: id, Name: 'x', CPUPerc: '12.5%', MemUsage: '100MiB / 1GiB', MemPerc: '9.8%' })}\n`;

/** The manager runs dev's db, node-2 two api tasks, node-3 a worker task. */
function manager(): FakeHost {
  const endpointOf = (script: string) => /DOCKER_ENDPOINT=(\S*)\n/.exec(script)?.[1].replace(/^''$/, '');
  return new FakeHost()
    .on('stack nodes', /^STACK=makapix-dev\nhere=/, { stdout: 'vps\nnode-2\nvps\nnode-3\n' })
    .on('task containers', /^PROJECT_LABEL=label=com\.docker\.stack\.namespace=makapix-dev; SERVICE_LABEL=''; DOCKER_ENDPOINT=/, (c) => ({
      stdout: JSON.stringify(endpointOf(c.script) === NODE2 ? [inspected('a2', 'api'), inspected('a3', 'api')] : [inspected('d1', 'db')]),
    }))
    .on('task stats', /^STACK_FILTER=label=com\.docker\.stack\.namespace=makapix-dev; SPLIT=\S+; DOCKER_ENDPOINT=/, (c) => {
      const there = endpointOf(c.script) === NODE2;
      const ids = there ? ['a2', 'a3'] : ['d1'];
      return { stdout: `${ids.map(statsLine).join('')}${SPLIT}\n${JSON.stringify(ids.map((id) => inspected(id, there ? 'api' : 'db')))}\n` };
    });
}

describe('a task on another node of the swarm', () => {
  it("finds the api task's container through its node's endpoint, and alembic's execs go to that engine", async () => {
    const host = manager()
      .on('task container', /^STACK_FILTER=label=com\.docker\.stack\.namespace=makapix-dev; SERVICE_FILTER=\S+_api; SERVICE=makapix-dev_api; NODES=/, {
        stdout: `aaaaaaaaaaaa ${NODE2}\n`,
      })
      .on('alembic', /alembic (heads|current)/, (_c, m) => ({ stdout: m?.[1] === 'heads' ? 'r2 (head)\n' : 'r1\n' }));
    const found = await dev.serviceContainer(host, 'api');
    assert.deepEqual(found, { id: 'aaaaaaaaaaaa', endpoint: NODE2 });
    // swarm.nodes reaches the script as `<hostname> <endpoint>` lines.
    assert.match(host.scripts(/NODES=/)[0], /NODES='node-2 ssh:\/\/deploy@node-2'\n/);

    const plan = await migrationPlan(host, dev, 60);
    assert.equal(plan.pending, true);
    const execs = host.ran('alembic').map((c) => c.script);
    assert.equal(execs.length, 2);
    // The exec and the stop its trap sends both name the node's engine.
    for (const s of execs) assert.equal(s.match(/docker -H ssh:\/\/deploy@node-2 exec /g)?.length, 2, s);
    host.assertAllScripted();
  });

  it("finds a container on the manager's node with no endpoint, and says what to add for a node without an entry", async () => {
    const host = manager().on('task container', /^STACK_FILTER=/, { stdout: 'bbbbbbbbbbbb \n' });
    assert.deepEqual(await dev.serviceContainer(host, 'db'), { id: 'bbbbbbbbbbbb' });

    const why = "service makapix-dev_worker runs its task on node node-3, not on the manager's node (vps), and config has no swarm.nodes.node-3: add it";
    host.on('no entry', /^STACK_FILTER=/, { exitCode: 3, stderr: `${why}\n` });
    await assert.rejects(dev.serviceContainer(host, 'worker'), (e) => e instanceof OperationFailed && e.message === `dev: ${why}`);
    host.on('unreachable', /^STACK_FILTER=/, { exitCode: 1, stderr: 'could not reach\n' });
    await assert.rejects(
      dev.serviceContainer(host, 'worker'),
      (e) => e instanceof OperationFailed && /finding the worker task's container failed: could not reach$/.test(e.message),
    );
  });

  it("lists the stack's task containers on the manager and on each node swarm.nodes reaches, each marked with its node", async () => {
    const host = manager();
    const containers = await dev.containers(host);
    assert.deepEqual(
      containers.map((c) => [c.service, c.id, c.node?.hostname, c.node?.endpoint]),
      [
        ['api', 'a20000000000', 'node-2', NODE2],
        ['api', 'a30000000000', 'node-2', NODE2],
        ['db', 'd10000000000', undefined, undefined],
      ],
    );
    // Two engines asked: the manager's and node-2's; node-3 has no entry.
    assert.deepEqual(
      host.ran('task containers').map((c) => /DOCKER_ENDPOINT=(\S*)\n/.exec(c.script)?.[1]),
      ["''", NODE2],
    );
    host.assertAllScripted();
  });

  it('reads what the stack runs in one round trip on the manager and one on each other node swarm.nodes reaches (status)', async () => {
    const task = (id: string, service: string, node: string, desired = 'Running') =>
      `${JSON.stringify({ ID: id, Name: `${STACK}_${service}.1`, Image: 'img', Node: node, DesiredState: desired, CurrentState: 'Running 1 minute ago', Error: '' })}\n`;
    const host = manager().on('observe stack', /^CHECKOUT=\S+; SEP=@twinstack-state@; STACK_FILTER=label=com\.docker\.stack\.namespace=makapix-dev\n/, {
      stdout: [
        `${'c'.repeat(40)}\n`,
        '[]\n',
        // node-2 runs api, node-3 only an old task told to stop, the manager (vps) the db.
        task('t1', 'api', 'node-2') + task('t2', 'api', 'node-2') + task('t3', 'worker', 'node-3', 'Shutdown') + task('t4', 'db', 'vps'),
        `${JSON.stringify([inspected('d1', 'db')])}\n`,
        'vps\n',
      ].join('@twinstack-state@\n'),
    });
    const state = await observe(host, dev);
    assert.deepEqual(
      state.containers.map((c) => [c.service, c.id, c.node?.hostname]),
      [
        ['api', 'a20000000000', 'node-2'],
        ['api', 'a30000000000', 'node-2'],
        ['db', 'd10000000000', undefined],
      ],
    );
    // The manager's containers came with the observation: besides it, only node-2's engine was asked.
    assert.deepEqual(
      host.calls.map((c) => c.rule),
      ['observe stack', 'task containers'],
    );
    assert.match(host.ran('task containers')[0].script, new RegExp(`DOCKER_ENDPOINT=${NODE2}\n`));
    host.assertAllScripted();
  });

  it("measures each task container on its own node's engine for the monitor, and warns of a node it cannot reach", async () => {
    const host = manager();
    const m: EnvironmentMetrics = { environment: 'dev', project: STACK, containers: [] };
    await containerMetrics(host, dev, m);
    assert.equal(m.containersError, undefined);
    assert.deepEqual(
      m.containers.map((c) => [c.service, c.node, c.cpuPercent]),
      [
        ['db', undefined, 12.5],
        ['api', 'node-2', 12.5],
        ['api', 'node-2', 12.5],
      ],
    );
    assert.deepEqual(m.unreachedNodes, ['node-3']);
    const findings = judgeMetrics({ time: '', docker: { available: true }, environments: [m], disks: [] }, config.monitor).filter((f) =>
      /node-3/.test(f.message),
    );
    assert.deepEqual(
      findings.map((f) => [f.severity, f.fix]),
      [['warning', "add swarm.nodes.node-3 (the Docker endpoint the manager reaches that node's engine by, e.g. ssh://user@node-3)"]],
    );
    host.assertAllScripted();
  });

  it("signals a cancelled operation's execs on the engines of swarm.nodes too", async () => {
    const host = new FakeHost().on('stop work', /^OP=op-1; /, { stdout: 'stopped 0 process group(s)\n' });
    await EnvironmentLock.stopWork({ host, stateDir: '/tmp/s', env: 'dev', op: 'op-1', ...dev.workScope, graceSeconds: 1 });
    assert.match(host.scripts()[0], /ENDPOINTS=ssh:\/\/deploy@node-2;/);
    assert.deepEqual(dev.workScope, { project: STACK, swarm: true, endpoints: [NODE2] });
    assert.deepEqual(new Environment('prod', config).workScope.endpoints, []);
  });

  it("refuses continuous WAL archiving while prod's db task runs on another node, before a role or a slot is made", async () => {
    const c = swarmConfig({ prodOnSwarm: true });
    const onNodes = { ...c, swarm: { ...c.swarm, nodes: { 'node-2': NODE2 } } };
    const prod = new Environment('prod', onNodes);
    const host = new FakeHost().on('task container', /^STACK_FILTER=\S+; SERVICE_FILTER=\S+_db; /, { stdout: `cccccccccccc ${NODE2}\n` });
    const refused = await ensureWal({ host, config: onNodes, env: prod, log: new MemoryLogger() }, 'secret').then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof OperationFailed, String(refused));
    assert.match(refused.message, /node\.role == manager/);
    // Nothing but the lookup ran: no psql (role, slot), no directory, no receiver.
    assert.deepEqual(
      host.calls.map((x) => x.rule),
      ['task container'],
    );
    host.assertAllScripted();
  });
});
