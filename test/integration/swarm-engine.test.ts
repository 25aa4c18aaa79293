/**
 * A single-node swarm on a private Docker engine (test/harness/private-engine.ts; the machine's
 * shared engine is never made a swarm): twinstack's swarm commands (src/infra/swarm.ts) deploy a
 * stack whose variables come on standard input, the engine runs its task on the node labelled for
 * dev, and what the engine prints (tasks, service specs, nodes) passes the schemas and the
 * placement checks. Asserted on the engine and over HTTP, not on twinstack's messages.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { swarmSchema } from '../../src/config/swarm';
import * as swarm from '../../src/infra/swarm';
import { parseComposeConfig } from '../../src/safety/compose-model';
import { checkNodes, checkPlacement } from '../../src/safety/placement';
import { freePort } from '../harness/ports';
import { BASE_IMAGE as IMAGE, devPlacement, HOST_NETWORK, startSwarmHost, swarmHostSkip, until, type SwarmHost } from '../harness/swarm-host';

const OPTIONS = { labels: ['dev'] } as const;
const SETTINGS = swarmSchema.parse({ registry: '127.0.0.1:5000' });

// Host networking and start-first, as the single-node check did; placed on dev's nodes.
const BASE = `services:
  web:
    image: ${IMAGE}
    networks: [hostnet]
    command: ["python3", "-m", "http.server", "\${WEB_PORT}", "--bind", "127.0.0.1"]
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS -o /dev/null http://127.0.0.1:\${WEB_PORT}/"]
      interval: 1s
      retries: 5
    deploy:
      replicas: 1
      update_config: { order: start-first, failure_action: rollback }
${HOST_NETWORK}`;
const DEV = devPlacement('web');

describe('a single-node swarm on a private engine', { skip: swarmHostSkip(OPTIONS) }, () => {
  let sw: SwarmHost | undefined;
  let stack: string;
  let web: string;
  let files: swarm.StackFiles;
  let port: number;
  /** Runs a command twinstack built, with bash, against the private engine. */
  const run = (command: string, input?: Buffer) => {
    const r = spawnSync('bash', ['-c', command], { input, encoding: 'utf8', env: { ...process.env, DOCKER_HOST: sw?.engine.host }, timeout: 180_000 });
    assert.equal(r.status, 0, `${command.split('\n')[0]}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    sw = await startSwarmHost(OPTIONS);
    stack = sw.name('dev');
    web = `${stack}_web`;
    const dir = path.join(sw.engine.dir, 'app');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'stack.yml'), BASE);
    fs.writeFileSync(path.join(dir, 'stack.dev.yml'), DEV);
    files = { dir, files: ['stack.yml', 'stack.dev.yml'], stack };
    port = await freePort();
  });
  after(async () => {
    await sw?.stop();
  });

  it('deploys the stack with its variables on standard input, and its one task runs, healthy, on the node labelled for dev', async () => {
    run(swarm.stackDeploy(files), swarm.envStdin(new Map([['WEB_PORT', String(port)]])));
    let tasks: swarm.TaskLine[] = [];
    let status = '';
    await until(
      () => {
        tasks = swarm.parseTasks(run(swarm.serviceTasks([web])));
        status = sw!.engine.docker(['ps', '--filter', `label=com.docker.swarm.service.name=${web}`, '--format', '{{.Status}}']).trim();
        return tasks.some((t) => t.CurrentState.startsWith('Running')) && status.includes('(healthy)');
      },
      { limitMs: 180_000 },
    );
    assert.match(status, /\(healthy\)/, `tasks: ${JSON.stringify(tasks)}`);
    const [running, ...others] = tasks.filter((t) => t.DesiredState === 'Running');
    assert.equal(others.length, 0);
    assert.equal(running.Error, '');

    // The task serves on the port that came on standard input.
    const res = await fetch(`http://127.0.0.1:${port}/`);
    assert.equal(res.status, 200);

    // It runs on the private engine's node, the one labelled for dev, which the node check accepts.
    const nodes = swarm.parseNodes(run(swarm.inspectNodes()));
    assert.equal(nodes.length, 1);
    assert.equal(running.Node, nodes[0].Description.Hostname);
    assert.deepEqual(checkNodes({ nodes, environments: ['dev'], swarm: SETTINGS }), []);
    assert.equal(checkNodes({ nodes, environments: ['prod', 'dev'], swarm: SETTINGS })[0]?.environment, 'prod', 'no node serves prod');

    // The shared engine knows nothing of it. (Asked until it answers: an end-to-end file running
    // beside this one may be restarting it.)
    let shared: string | undefined;
    await until(
      () => {
        try {
          shared = execFileSync('docker', ['ps', '-aq', '--filter', `label=${swarm.STACK_LABEL}=${stack}`], {
            encoding: 'utf8',
            stdio: ['ignore', 'pipe', 'ignore'],
          }).trim();
          return true;
        } catch {
          return false;
        }
      },
      { limitMs: 120_000, everyMs: 1000 },
    );
    assert.equal(shared, '', 'the shared engine runs a container of the stack, or never answered');
  });

  it("keeps the spec's placement and update order, as the engine reports them", () => {
    const [spec] = swarm.parseServiceInspect(run(swarm.serviceInspect([web])));
    assert.deepEqual(spec.Spec.TaskTemplate.Placement?.Constraints, ['node.labels.twinstack.env.dev == true']);
    assert.equal(spec.Spec.UpdateConfig?.Order, 'start-first');
    assert.equal(spec.Spec.Labels?.[swarm.STACK_LABEL], stack);
    const [line] = swarm.parseServiceList(run(swarm.serviceList(stack)));
    assert.equal(line.Name, web);
    assert.equal(line.Replicas, '1/1');
  });

  it('renders the same files with docker stack config, and the placement check finds nothing in them', () => {
    const rendered = run(swarm.stackConfig(files), swarm.envStdin(new Map([['WEB_PORT', String(port)]])));
    const model = parseComposeConfig(rendered, stack);
    assert.deepEqual(model.services[0].placement, ['node.labels.twinstack.env.dev == true']);
    assert.match(rendered, new RegExp(`http\\.server\\n?\\s*- "?${port}"?`));
    assert.deepEqual(checkPlacement({ compose: model, environment: 'dev', swarm: SETTINGS }), []);
  });
});
