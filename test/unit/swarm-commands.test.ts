/**
 * The swarm command builders (src/infra/swarm.ts) as text, the schemas of what the engine prints,
 * and the stack-env script run by bash against a stand-in `docker` that prints what it was given.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { HostDataError } from '../../src/infra/errors';
import * as swarm from '../../src/infra/swarm';

const dev: swarm.StackFiles = {
  dir: '/opt/makapix-dev',
  files: ['deploy/stack/docker-compose.yml', 'deploy/stack/docker-compose.dev.yml', '/var/lib/twinstack/dev/images.json'],
  stack: 'makapix-dev',
};
const digest = 'sha256:' + 'ab'.repeat(32);

describe('swarm commands', () => {
  it('deploys a stack from the files, base first, with registry auth and prune, from its directory', () => {
    const cmd = swarm.stackDeploy(dev);
    assert.match(
      cmd,
      /^DIR=\/opt\/makapix-dev; set -- docker stack deploy -c deploy\/stack\/docker-compose\.yml -c deploy\/stack\/docker-compose\.dev\.yml -c \/var\/lib\/twinstack\/dev\/images\.json --with-registry-auth --prune makapix-dev\n/,
    );
    assert.doesNotMatch(cmd, /Runs "\$@"/, 'the opening comment is not sent');
  });

  it('renders the stack config with the same files and variables', () => {
    assert.match(
      swarm.stackConfig(dev),
      /^DIR=\/opt\/makapix-dev; set -- docker stack config -c deploy\/stack\/docker-compose\.yml -c deploy\/stack\/docker-compose\.dev\.yml -c \S+images\.json\n/,
    );
  });

  it("lists a stack's services, their tasks and specs, and rolls one back", () => {
    assert.equal(swarm.serviceList('makapix-dev'), 'docker service ls --filter label=com.docker.stack.namespace=makapix-dev --format json');
    assert.equal(swarm.serviceTasks(['makapix-dev_api', 'makapix-dev_db']), 'docker service ps --no-trunc --format json makapix-dev_api makapix-dev_db');
    assert.equal(swarm.serviceInspect(['makapix_api']), 'docker service inspect makapix_api');
    assert.equal(swarm.serviceRollback('makapix_api'), 'docker service rollback --detach makapix_api');
    assert.equal(swarm.stackRemove('makapix-dev'), 'docker stack rm makapix-dev');
  });

  it('scales replicated services, waiting for the engine or not, and refuses what is not a count or a service name', () => {
    const scales = [
      { service: 'makapix-dev_api', replicas: 0 },
      { service: 'makapix-dev_worker', replicas: 0 },
    ];
    assert.equal(swarm.serviceScale(scales, { wait: true }), 'docker service scale --detach=false makapix-dev_api=0 makapix-dev_worker=0');
    assert.equal(swarm.serviceScale([{ service: 'makapix-dev_api', replicas: 3 }], { wait: false }), 'docker service scale --detach=true makapix-dev_api=3');
    assert.throws(() => swarm.serviceScale([{ service: 'makapix-dev_api', replicas: -1 }], { wait: true }), /not a replica count/);
    assert.throws(() => swarm.serviceScale([{ service: 'api;rm', replicas: 0 }], { wait: true }), /not a service name/);
    assert.throws(() => swarm.serviceScale([], { wait: true }), /at least one service/);
  });

  it('inspects every node with the script, and says [] when there is none', () => {
    const cmd = swarm.inspectNodes();
    assert.match(cmd, /^ids=\$\(docker node ls -q\) \|\| exit\n/);
    assert.match(cmd, /docker node inspect \$ids$/);
  });

  it('tags and pushes to the registry, and reads the digests an image has', () => {
    const remote = swarm.registryRef('127.0.0.1:5000', 'makapix-api', 'a1b2c3d');
    assert.equal(remote, '127.0.0.1:5000/makapix-api:a1b2c3d');
    assert.equal(swarm.tagForRegistry('makapix-dev-api:local', remote), 'docker tag makapix-dev-api:local 127.0.0.1:5000/makapix-api:a1b2c3d');
    assert.equal(swarm.push(remote), 'docker push 127.0.0.1:5000/makapix-api:a1b2c3d');
    assert.equal(swarm.repoDigests(remote), `docker image inspect --format '{{json .RepoDigests}}' 127.0.0.1:5000/makapix-api:a1b2c3d`);
    assert.throws(() => swarm.registryRef('127.0.0.1:5000', 'Makapix API', 'x'), /not a registry repository name/);
    assert.throws(() => swarm.registryRef('127.0.0.1:5000', 'api', '-rm'), /not an image tag/);
  });
});

describe('what the engine prints', () => {
  it('finds the digest an image has in the registry, and none when it was never pushed there', () => {
    const text = JSON.stringify([`other.example/api@${digest}`, `127.0.0.1:5000/makapix-api@${digest}`]);
    assert.equal(swarm.parseRepoDigests(text, '127.0.0.1:5000/makapix-api'), `127.0.0.1:5000/makapix-api@${digest}`);
    assert.equal(swarm.parseRepoDigests('[]', '127.0.0.1:5000/makapix-api'), undefined);
    assert.equal(swarm.parseRepoDigests('null', '127.0.0.1:5000/makapix-api'), undefined);
    assert.throws(() => swarm.parseRepoDigests('["api:latest"]', 'api'), HostDataError);
  });

  it('reads service and task lines, one JSON object a line, and refuses a line of another shape', () => {
    const services = swarm.parseServiceList(
      '{"ID":"k1","Image":"r/api@' + digest + '","Mode":"replicated","Name":"makapix_api","Ports":"","Replicas":"2/2"}\n\n',
    );
    assert.deepEqual(
      services.map((s) => [s.Name, s.Replicas]),
      [['makapix_api', '2/2']],
    );
    const tasks = swarm.parseTasks(
      [
        {
          ID: 't1',
          Name: 'makapix_api.1',
          Image: `r/api:abc@${digest}`,
          Node: 'n1',
          DesiredState: 'Running',
          CurrentState: 'Running 3 seconds ago',
          Error: '',
          Ports: '',
        },
        {
          ID: 't0',
          Name: 'makapix_api.1',
          Image: 'r/api:old',
          Node: 'n1',
          DesiredState: 'Shutdown',
          CurrentState: 'Failed 1 minute ago',
          Error: 'task: non-zero exit (1)',
          Ports: '',
        },
      ]
        .map((t) => JSON.stringify(t))
        .join('\n'),
    );
    assert.equal(swarm.taskDigest(tasks[0].Image), digest);
    assert.equal(swarm.taskDigest(tasks[1].Image), undefined);
    assert.equal(tasks[1].Error, 'task: non-zero exit (1)');
    assert.throws(
      () => swarm.parseTasks('{"ID":"t1"}'),
      (e: Error) => e instanceof HostDataError && /docker service ps output, line 1 is not what twinstack expects: Name: Required/.test(e.message),
    );
  });

  it('reads the placement, image and update status of a service spec', () => {
    const [s] = swarm.parseServiceInspect(
      JSON.stringify([
        {
          ID: 'k1',
          Spec: {
            Name: 'makapix-dev_api',
            Labels: { 'com.docker.stack.namespace': 'makapix-dev' },
            TaskTemplate: { ContainerSpec: { Image: `r/api@${digest}` }, Placement: { Constraints: ['node.labels.twinstack.env.dev == true'] } },
            Mode: { Replicated: { Replicas: 1 } },
            UpdateConfig: { Order: 'start-first', FailureAction: 'rollback' },
          },
          UpdateStatus: { State: 'rollback_completed', Message: 'update rolled back due to failure' },
        },
      ]),
    );
    assert.deepEqual(s.Spec.TaskTemplate.Placement?.Constraints, ['node.labels.twinstack.env.dev == true']);
    assert.equal(s.UpdateStatus?.State, 'rollback_completed');
    assert.deepEqual(swarm.parseServiceInspect(''), []);
  });

  it("reads the nodes' labels", () => {
    const nodes = swarm.parseNodes(
      JSON.stringify([
        {
          ID: 'n1',
          Spec: { Labels: { 'twinstack.env.prod': 'true' }, Role: 'manager', Availability: 'active' },
          Description: { Hostname: 'vps1' },
          Status: { State: 'ready', Addr: '10.0.0.1' },
        },
      ]),
    );
    assert.deepEqual(nodes[0].Spec.Labels, { 'twinstack.env.prod': 'true' });
    assert.throws(() => swarm.parseNodes('[{"ID":"n1"}]'), HostDataError);
  });
});

describe('the digest overlay', () => {
  it('pins each service to its digest, in a file stack deploy reads after the environment files', () => {
    const text = swarm.digestOverlay({ worker: `127.0.0.1:5000/w@${digest}`, api: `127.0.0.1:5000/api@${digest}` });
    assert.deepEqual(JSON.parse(text), { services: { api: { image: `127.0.0.1:5000/api@${digest}` }, worker: { image: `127.0.0.1:5000/w@${digest}` } } });
    assert.ok(text.indexOf('"api"') < text.indexOf('"worker"'), 'services in name order, so the same release writes the same file');
  });

  it('refuses an image named by tag, and a service name that is not one', () => {
    assert.throws(() => swarm.digestOverlay({ api: '127.0.0.1:5000/api:latest' }), /pinned by digest/);
    assert.throws(() => swarm.digestOverlay({ 'a b': `r/api@${digest}` }), /not a service name/);
  });
});

describe('the stack-env script', () => {
  it("gives the command the env file's variables in its environment, never in its arguments, and runs it in DIR", () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-test-stackenv-'));
    try {
      const bin = path.join(tmp, 'bin');
      fs.mkdirSync(bin);
      // The stand-in docker prints its directory, its arguments and the variables it was given.
      fs.writeFileSync(
        path.join(bin, 'docker'),
        '#!/usr/bin/env bash\npwd\nprintf "arg:%s\\n" "$@"\nprintf "SECRET=%s\\n" "$SECRET"\nprintf "SPACED=%s\\n" "$SPACED"\nenv | grep "^dotted.key=" || true\n',
        { mode: 0o755 },
      );
      const values = new Map([
        ['SECRET', 'it\'s $HOME `id` "x"'],
        ['SPACED', 'a b  c'],
        ['dotted.key', 'v=1'],
      ]);
      const r = spawnSync('bash', ['-c', swarm.stackConfig({ ...dev, dir: tmp })], {
        input: swarm.envStdin(values),
        encoding: 'utf8',
        env: { PATH: `${bin}:${process.env.PATH}` },
      });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.split('\n');
      assert.equal(lines[0], fs.realpathSync(tmp));
      assert.deepEqual(
        lines.filter((l) => l.startsWith('arg:')),
        ['arg:stack', 'arg:config', ...dev.files.flatMap((f) => ['arg:-c', `arg:${f}`])],
      );
      assert.ok(lines.includes('SECRET=it\'s $HOME `id` "x"'), r.stdout);
      assert.ok(lines.includes('SPACED=a b  c'), r.stdout);
      assert.ok(lines.includes('dotted.key=v=1'), r.stdout);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses a value that cannot travel as a KEY=VALUE pair', () => {
    assert.throws(() => swarm.envStdin(new Map([['A=B', 'x']])), /cannot be passed/);
    assert.throws(() => swarm.envStdin(new Map([['A', 'x\0y']])), /cannot be passed/);
  });
});
