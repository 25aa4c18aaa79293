/**
 * The swarm placement checks as specifications, on merged configurations captured from docker
 * compose (test/fixtures/swarm/capture.sh): the converted fixture stack passes for prod and dev,
 * the unconverted one and one broken variant per rule are caught, each finding naming the service
 * or node and what to change; then the nodes, and the wiring into preflight for swarm targets only.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfig, type Config, type EnvironmentName } from '../../src/domain/config';
import type { NodeInspect } from '../../src/infra/swarm';
import { parseComposeConfig, type ComposeModel } from '../../src/safety/compose-model';
import { checkNodes, checkPlacement, checkStorage, ownConstraint, parseConstraint, placementFindings } from '../../src/safety/placement';
import { FakeHost } from '../support/fake-host';

const dir = path.join(__dirname, '../fixtures/swarm');
const model = (file: string, env: EnvironmentName): ComposeModel =>
  parseComposeConfig(fs.readFileSync(path.join(dir, 'config', file), 'utf8'), env === 'prod' ? 'makapix-prod' : 'makapix-dev');
const BASE = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');
const swarmConfig = (extra = ''): Config =>
  parseConfig(
    `${BASE.replace('vault: /mnt/vault-1\n', 'vault: /mnt/vault-1\n    target: swarm\n').replace('vault: /mnt/vault-dev', 'vault: /mnt/vault-dev\n    target: swarm')}\nswarm:\n  registry: 127.0.0.1:5000\n${extra}`,
    'twinstack.yml',
  );
const SWARM = swarmConfig().swarm;

/** A model of the fixture with one service changed. */
function variant(env: EnvironmentName, service: string, change: (s: ComposeModel['services'][number]) => void): ComposeModel {
  const m = model(`${env}.json`, env);
  const s = m.services.find((x) => x.name === service);
  assert.ok(s, `no ${service} in the fixture`);
  change(s);
  return m;
}

const node = (id: string, labels: Record<string, string>, state = 'ready', availability = 'active', role = 'worker'): NodeInspect => ({
  ID: id.padEnd(25, '0'),
  Spec: { Labels: labels, Role: role, Availability: availability },
  Description: { Hostname: id },
  Status: { State: state, Addr: '10.0.0.1' },
});

describe('the placement of a swarm environment', () => {
  for (const env of ['prod', 'dev'] as const) {
    it(`passes the converted fixture stack for ${env}: every service on ${env}'s nodes, no fixed names, built images in the registry`, () => {
      const m = model(`${env}.json`, env);
      assert.deepEqual(
        m.services.map((s) => s.name),
        ['api', 'db', 'worker'],
      );
      assert.ok(m.services.every((s) => s.placement.includes(ownConstraint('twinstack.env', env))));
      assert.deepEqual(checkPlacement({ compose: m, environment: env, swarm: SWARM }), []);
    });
  }

  it('refuses the unconverted fixture stack, one line per service and rule', () => {
    const f = checkPlacement({ compose: model('app-dev.json', 'dev'), environment: 'dev', swarm: SWARM });
    assert.ok(f.every((x) => x.check === 'placement' && x.environment === 'dev' && x.severity === 'error'));
    assert.ok(f.every((x) => !x.message.includes('\n') && !x.fix.includes('\n')));
    const lines = f.map((x) => x.message);
    for (const s of ['api', 'db', 'worker']) {
      assert.ok(
        lines.includes(`dev's swarm service ${s} is not kept to dev's nodes: no placement constraint "node.labels.twinstack.env.dev == true"`),
        lines.join('\n'),
      );
      assert.ok(lines.includes(`dev's swarm service ${s} sets container_name makapix-dev-${s}: a stack ignores it, and names each task's container itself`));
    }
    assert.ok(
      lines.includes(
        "dev's swarm service api is built (build:) but its image makapix-dev-api:local is not named in the registry 127.0.0.1:5000: a stack cannot build, and the nodes pull",
      ),
    );
    // The worker runs an image it does not build: nothing to say about its registry.
    assert.equal(f.length, 8, lines.join('\n'));
    assert.ok(f.some((x) => x.fix === `add "node.labels.twinstack.env.dev == true" to api's deploy.placement.constraints in dev's overlay`));
  });

  it("refuses a dev service that may run anywhere outside prod's nodes: an allowlist, not a != on prod's label", () => {
    const m = variant('dev', 'api', (s) => (s.placement = ['node.labels.twinstack.env.prod != true']));
    const [f, ...rest] = checkPlacement({ compose: m, environment: 'dev', swarm: SWARM });
    assert.equal(rest.length, 0);
    assert.match(f.message, /^dev's swarm service api is not kept to dev's nodes: .* \(it has: node\.labels\.twinstack\.env\.prod != true\)$/);
  });

  it("refuses a dev service that also asks for prod's nodes", () => {
    const m = variant('dev', 'worker', (s) => s.placement.push('node.labels.twinstack.env.prod==TRUE'));
    const f = checkPlacement({ compose: m, environment: 'dev', swarm: SWARM });
    assert.deepEqual(
      f.map((x) => x.message),
      [`dev's swarm service worker asks for prod's nodes ("node.labels.twinstack.env.prod == true")`],
    );
  });

  it('reads a constraint as the engine does: spaces and the case of the prefix and value do not matter, the label name does', () => {
    const ok = variant('prod', 'db', (s) => (s.placement = ['  NODE.LABELS.twinstack.env.prod==True ']));
    assert.deepEqual(checkPlacement({ compose: ok, environment: 'prod', swarm: SWARM }), []);
    const wrongCase = variant('prod', 'db', (s) => (s.placement = ['node.labels.Twinstack.Env.prod == true']));
    assert.equal(checkPlacement({ compose: wrongCase, environment: 'prod', swarm: SWARM }).length, 1);
    assert.deepEqual(parseConstraint('node.role==manager'), { key: 'node.role', op: '==', value: 'manager' });
    assert.equal(parseConstraint('node.labels.x'), undefined);
  });

  it('uses the label key the config names', () => {
    const swarm = swarmConfig('  label-key: example.tier\n').swarm;
    const f = checkPlacement({ compose: model('prod.json', 'prod'), environment: 'prod', swarm });
    assert.equal(f.length, 3);
    assert.ok(f.every((x) => x.message.includes('"node.labels.example.tier.prod == true"')));
  });

  it('refuses a built image named for another registry, and warns instead under warn-only', () => {
    const m = variant('prod', 'api', (s) => (s.image = 'registry.example.com/makapix-api:latest'));
    const [f] = checkPlacement({ compose: m, environment: 'prod', swarm: SWARM });
    assert.equal(f.fix, "set api's image to 127.0.0.1:5000/<name>:<tag> in the compose files");
    const [w] = checkPlacement({ compose: m, environment: 'prod', swarm: SWARM, warnOnly: ['placement'] });
    assert.equal(w.severity, 'warning');
    assert.match(w.message, /\(warn-only\)$/);
  });
});

describe("the swarm's nodes", () => {
  const prod = node('vps-prod', { 'twinstack.env.prod': 'true' });
  const dev = node('vps-dev', { 'twinstack.env.dev': 'true', other: 'x' });
  const both = node('vps-one', { 'twinstack.env.prod': 'true', 'twinstack.env.dev': 'TRUE' });

  it('passes one node per environment, and says nothing of nodes for a compose environment', () => {
    assert.deepEqual(checkNodes({ nodes: [prod, dev], environments: ['prod', 'dev'], swarm: SWARM }), []);
    assert.deepEqual(checkNodes({ nodes: [prod], environments: ['prod'], swarm: SWARM }), []);
  });

  it('refuses a node labelled for both unless allow-shared-node, which a single-node swarm sets', () => {
    const [f, ...rest] = checkNodes({ nodes: [both], environments: ['prod', 'dev'], swarm: SWARM });
    assert.equal(rest.length, 0);
    assert.equal(f.environment, 'both');
    assert.match(f.message, /^node vps-one \(vps-one00000\) is labelled for prod and for dev: /);
    assert.match(f.fix, /docker node update --label-rm twinstack\.env\.dev vps-one\), or set swarm\.allow-shared-node: true/);
    const shared = swarmConfig('  allow-shared-node: true\n').swarm;
    assert.deepEqual(checkNodes({ nodes: [both], environments: ['prod', 'dev'], swarm: shared }), []);
  });

  it('refuses a swarm environment no ready, active node serves', () => {
    const f = checkNodes({
      nodes: [prod, node('vps-dev', { 'twinstack.env.dev': 'true' }, 'down'), node('x', { 'twinstack.env.dev': 'false' })],
      environments: ['prod', 'dev'],
      swarm: SWARM,
    });
    assert.deepEqual(
      f.map((x) => [x.environment, x.message]),
      [['dev', "no node labelled for dev is ready and active (vps-dev (vps-dev00000): down, active): dev's tasks would wait unscheduled"]],
    );
    const none = checkNodes({ nodes: [prod], environments: ['prod', 'dev'], swarm: SWARM });
    assert.equal(none[0].message, "no node of the swarm is labelled twinstack.env.dev=true: dev's tasks would wait unscheduled");
    assert.equal(none[0].fix, 'docker node update --label-add twinstack.env.dev=true <node> on the manager, for a node that is ready and active');
  });
});

describe("an environment's storage on more than one node", () => {
  const devNode = (id: string, role = 'worker') => node(id, { 'twinstack.env.dev': 'true' }, 'ready', 'active', role);
  const storage = (compose: ComposeModel, nodes: NodeInspect[]) => checkStorage({ compose, environment: 'dev', nodes, swarm: SWARM });

  it('finds nothing when one manager serves the environment (one host, as today)', () => {
    assert.deepEqual(storage(model('dev.json', 'dev'), [devNode('vps', 'manager')]), []);
  });

  it('warns, per service, of a bound host path and a local volume once a worker or a second node serves it, naming the nodes', () => {
    for (const nodes of [[devNode('node-2')], [devNode('vps', 'manager'), devNode('node-2')]]) {
      const f = storage(model('dev.json', 'dev'), nodes);
      assert.deepEqual(
        f.map((x) => [x.severity, x.message.match(/service (\w+) /)?.[1]]),
        [
          ['warning', 'api'],
          ['warning', 'db'],
        ],
      );
      assert.match(f[0].message, /binds host path\(s\) \/srv\/makapix-dev\/vault,/);
      assert.match(f[1].message, /mounts named volume\(s\) pg_data,/);
      for (const n of nodes) assert.ok(f[0].message.includes(n.Description.Hostname), f[0].message);
      assert.ok(f.every((x) => !x.message.includes('\n') && !x.fix.includes('\n')));
    }
  });

  it('passes a service kept to one node, and ignores the engine socket every node has', () => {
    const pinned = variant('dev', 'db', (s) => s.placement.push('node.hostname == node-2'));
    const api = pinned.services.find((s) => s.name === 'api');
    assert.ok(api);
    api.placement.push('node.role==manager');
    assert.deepEqual(storage(pinned, [devNode('node-2'), devNode('node-3')]), []);
    const socket = variant('dev', 'worker', (s) =>
      s.mounts.push({ type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock', readOnly: true }),
    );
    assert.deepEqual(
      storage(socket, [devNode('node-2')]).map((x) => x.message.match(/service (\w+) /)?.[1]),
      ['api', 'db'],
    );
  });
});

describe('preflight with swarm targets', () => {
  const compose = { prod: model('prod.json', 'prod'), dev: model('app-dev.json', 'dev') };

  it('reads nothing and finds nothing when both environments run on compose', async () => {
    const host = new FakeHost();
    assert.deepEqual(await placementFindings(host, parseConfig(BASE, 'c'), compose), []);
    assert.equal(host.calls.length, 0);
  });

  it("checks each swarm environment's services and reads the nodes once from the manager", async () => {
    const host = new FakeHost().on('node inspect', /docker node inspect \$ids$/, {
      stdout: JSON.stringify([node('vps-one', { 'twinstack.env.prod': 'true' }, 'ready', 'active', 'manager')]),
    });
    const f = await placementFindings(host, swarmConfig(), compose);
    assert.deepEqual(
      host.calls.map((c) => c.rule),
      ['node inspect'],
    );
    assert.ok(
      f.every((x) => x.environment === 'dev'),
      'the converted prod stack passes',
    );
    assert.equal(f.filter((x) => x.message.startsWith("dev's swarm service")).length, 8);
    assert.ok(f.some((x) => x.message === "no node of the swarm is labelled twinstack.env.dev=true: dev's tasks would wait unscheduled"));
  });

  it('says in one line when the nodes cannot be read (not a manager)', async () => {
    const host = new FakeHost().on('node inspect', /docker node inspect/, {
      exitCode: 1,
      stderr:
        'Error response from daemon: This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.\n',
    });
    const f = await placementFindings(host, swarmConfig(), { prod: compose.prod });
    assert.equal(f.length, 1);
    assert.equal(f[0].environment, 'host');
    assert.match(f[0].message, /^the swarm's nodes could not be read \(exit 1\): Error response from daemon: This node is not a swarm manager\./);
  });
});
