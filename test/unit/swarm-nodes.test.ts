/**
 * Reaching a task's container on another node of a swarm, the pure parts and the shell: config
 * swarm.nodes handed to task-container.sh, what it prints, and the db tool's braced group run by a
 * real bash against a stub `docker` on PATH that answers as a two-node swarm would (the manager
 * `manager-1`, a worker `node-2`) and records each call. The same against two real engines:
 * test/integration/swarm-nodes.test.ts.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { dockerCli, dockerExec } from '../../src/infra/docker';
import * as swarm from '../../src/infra/swarm';

const STACK = 'shop-dev';
const ENDPOINT = 'unix:///run/node-2/docker.sock';

// A stub docker client: what each engine runs is set by variables, every call logged one a line.
const STUB = `#!/usr/bin/env bash
echo "$*" >> "$STUB_LOG"
endpoint=
if [ "$1" = -H ]; then endpoint=$2; shift 2; fi
case "$1 $2" in
  "ps -q")
    if [ -z "$endpoint" ]; then printf '%s' "\${MANAGER_CONTAINERS:-}"; elif [ "$endpoint" = "\${NODE2_ENDPOINT:-}" ]; then printf '%s' "\${NODE2_CONTAINERS:-}"; else echo "cannot connect to $endpoint" >&2; exit 1; fi ;;
  "node inspect") echo manager-1 ;;
  "service ps") printf '%s' "\${TASK_NODES:-}" ;;
  "stack ps")
    if [ -n "\${STACK_PS_ERROR:-}" ]; then echo "$STACK_PS_ERROR" >&2; exit 1; fi
    printf '%s' "\${TASK_NODES:-}" ;;
  "exec -i")
    echo "exec on \${endpoint:-manager} in $5: \${*: -4}"
    cat ;;
  *) echo "unexpected: $*" >&2; exit 99 ;;
esac
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-test-nodes-'));
fs.writeFileSync(path.join(dir, 'docker'), STUB, { mode: 0o755 });
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const config = (nodes: Record<string, string>) =>
  parseConfig(
    `state-dir: /tmp/state
swarm: { registry: 127.0.0.1:5000, nodes: ${JSON.stringify(nodes)} }
environments:
  prod: {checkout: /srv/prod, project: shop-prod, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: shop, user: owner}}
  dev: {checkout: /srv/dev, project: ${STACK}, target: swarm, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: shop_dev, user: owner}}
`,
    'test',
  );

/** Runs a command in bash with the stub first on PATH; returns its output and the docker calls it made. */
function run(command: string, env: Record<string, string>, input = '') {
  const log = path.join(dir, `calls-${Math.random().toString(16).slice(2)}`);
  fs.writeFileSync(log, '');
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', command], {
    input,
    encoding: 'utf8',
    env: { PATH: `${dir}:${process.env.PATH}`, STUB_LOG: log, TWINSTACK_OP: 'op-1', ...env },
  });
  return { ...r, calls: fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) };
}

describe('config swarm.nodes handed to the host', () => {
  it('is `<hostname> <endpoint>` lines, and a value with white space is refused', () => {
    assert.equal(swarm.nodesParam({ 'node-2': ENDPOINT, 'node-3': 'ssh://deploy@node-3' }), `node-2 ${ENDPOINT}\nnode-3 ssh://deploy@node-3`);
    assert.equal(swarm.nodesParam({}), '');
    assert.throws(() => swarm.nodesParam({ 'node 2': ENDPOINT }), /white space/);
  });

  it("reads task-container.sh's line: the id, and the endpoint only when on another node", () => {
    assert.deepEqual(swarm.parseTaskContainer('0123456789ab \n'), { id: '0123456789ab' });
    assert.deepEqual(swarm.parseTaskContainer(`0123456789ab ${ENDPOINT}\n`), { id: '0123456789ab', endpoint: ENDPOINT });
    assert.equal(swarm.parseTaskContainer('\n'), undefined);
    assert.equal(swarm.parseTaskContainer('Error: no\n'), undefined);
  });

  it("reads stack-nodes.sh's lines: the manager, then the other nodes once each", () => {
    assert.deepEqual(swarm.parseStackNodes('manager-1\nmanager-1\nnode-2\nnode-2\nnode-3\n'), { here: 'manager-1', others: ['node-2', 'node-3'] });
    assert.deepEqual(swarm.parseStackNodes('manager-1\n'), { here: 'manager-1', others: [] });
  });

  it("lists the nodes of a stack's tasks with stack-nodes.sh: none but the manager for a stack with no task to run, and fails on any other error", () => {
    const script = swarm.stackNodes(STACK);
    const some = run(script, { TASK_NODES: 'node-2\nmanager-1\nnode-2\n' });
    assert.equal(some.status, 0, some.stderr);
    assert.deepEqual(swarm.parseStackNodes(some.stdout), { here: 'manager-1', others: ['node-2'] });
    for (const said of [`nothing found in stack: ${STACK}`, `Nothing found in stack: ${STACK}`]) {
      const none = run(script, { STACK_PS_ERROR: said });
      assert.equal(none.status, 0, none.stderr);
      assert.deepEqual(swarm.parseStackNodes(none.stdout), { here: 'manager-1', others: [] });
    }
    // Said on standard error with exit 0 (as `docker stack services` does): not a node either.
    const told = run(script, { TASK_NODES: `Nothing found in stack: ${STACK}\n` });
    assert.deepEqual(swarm.parseStackNodes(told.stdout), { here: 'manager-1', others: [] });
    const failed = run(script, { STACK_PS_ERROR: 'Error response from daemon: This node is not a swarm manager.' });
    assert.equal(failed.status, 1);
    assert.match(failed.stderr, /not a swarm manager/);
  });

  it('sends every docker command about a container on another node to its engine: the exec and its stop', () => {
    assert.deepEqual(dockerCli(), ['docker']);
    assert.deepEqual(dockerCli(ENDPOINT), ['docker', '-H', ENDPOINT]);
    const exec = dockerExec({ id: 'abc', endpoint: ENDPOINT }, ['alembic', 'current']);
    assert.equal(exec.match(/docker -H unix:\/\/\/run\/node-2\/docker\.sock exec /g)?.length, 2, exec);
    assert.doesNotMatch(dockerExec({ id: 'abc' }, ['alembic', 'current']), /-H/);
    assert.equal(dockerExec({ id: 'abc' }, ['x']), dockerExec('abc', ['x']));
  });
});

describe("the db tool's group on a swarm, run by bash against a stub docker", () => {
  const psql = (nodes: Record<string, string>) => new Environment('dev', config(nodes)).dbTool('psql', ['-d', 'shop_dev', '-c', 'select 1']);

  it("runs in the db task's container on the manager's node when it runs there, with no -H", () => {
    const r = run(psql({ 'node-2': ENDPOINT }), { MANAGER_CONTAINERS: 'aaaaaaaaaaaa\n' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^exec on manager in aaaaaaaaaaaa: /);
    assert.deepEqual(
      r.calls.map((c) => c.split(' ').slice(0, 3).join(' ')),
      ['ps -q --filter', 'exec -i -e'],
    );
  });

  it("follows the task to its node through swarm.nodes: the node's engine finds the container and runs the tool, standard input passed through", () => {
    const r = run(
      psql({ 'node-2': ENDPOINT, 'node-3': 'ssh://deploy@node-3' }),
      { TASK_NODES: 'node-2\n', NODE2_ENDPOINT: ENDPOINT, NODE2_CONTAINERS: 'bbbbbbbbbbbb\n' },
      'select 42;\n',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `exec on ${ENDPOINT} in bbbbbbbbbbbb: -d shop_dev -c select 1\nselect 42;\n`);
    assert.deepEqual(
      r.calls.filter((c) => c.startsWith('-H')).map((c) => c.split(' ').slice(0, 4).join(' ')),
      [`-H ${ENDPOINT} ps -q`, `-H ${ENDPOINT} exec -i`],
    );
    assert.ok(
      r.calls.some((c) => c.startsWith(`service ps --filter desired-state=running --format {{.Node}} ${STACK}_db`)),
      r.calls.join('\n'),
    );
  });

  it('refuses a task on a node without an entry, in one line naming the node and the key to add, before any exec', () => {
    const r = run(psql({ 'node-3': 'ssh://deploy@node-3' }), { TASK_NODES: 'node-2\n' });
    assert.equal(r.status, swarm.NO_TASK_HERE);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /runs its task on node node-2, not on the manager's node \(manager-1\), and config has no swarm\.nodes\.node-2: add it/);
    assert.equal(r.calls.filter((c) => / exec /.test(` ${c} `)).length, 0, r.calls.join('\n'));
  });

  it("says so when the node's engine cannot be reached, and when no task runs anywhere", () => {
    const unreachable = run(psql({ 'node-2': 'ssh://deploy@node-2' }), { TASK_NODES: 'node-2\n', NODE2_ENDPOINT: ENDPOINT });
    assert.equal(unreachable.status, swarm.NO_TASK_HERE);
    assert.match(
      unreachable.stderr,
      /could not reach that node's engine at ssh:\/\/deploy@node-2 \(swarm\.nodes\.node-2\): cannot connect to ssh:\/\/deploy@node-2$/m,
    );
    const none = run(psql({ 'node-2': ENDPOINT }), {});
    assert.equal(none.status, swarm.NO_TASK_HERE);
    assert.match(none.stderr, /no running task of service shop-dev_db/);
  });
});
