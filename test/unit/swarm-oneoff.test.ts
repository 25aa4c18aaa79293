/**
 * The one-off task on a swarm as text: what of the api service's spec becomes `docker service
 * create` flags, the env file (values off the command line, extra variables over the spec's), the
 * wait script against a stand-in `docker`, and the refusal of a swarm one-off without an image.
 * The real engine is test/integration/swarm-oneoff.test.ts.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { oneOffAlembic } from '../../src/domain/alembic';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { oneOffJobName } from '../../src/domain/swarm-oneoff';
import * as alembic from '../../src/infra/alembic';
import { HostDataError, OperationFailed } from '../../src/infra/errors';
import * as swarm from '../../src/infra/swarm';
import { FakeHost } from '../support/fake-host';

const digest = `127.0.0.1:5000/makapix-api@sha256:${'ab'.repeat(32)}`;

/** `docker service inspect makapix-dev_api` as engine 20.10 prints it for a stack service (trimmed of what is not read). */
const inspected = [
  {
    ID: 'k1',
    Spec: {
      Name: 'makapix-dev_api',
      TaskTemplate: {
        ContainerSpec: {
          Image: `r/api:old@sha256:${'cd'.repeat(32)}`,
          Args: ['python3', '/app/api/app.py'],
          Command: ['/entry point.sh', "it's"],
          Env: ['DB_PASSWORD=owner-pw', 'PGOPTIONS=-c statement_timeout=0', 'BARE', 'EMPTY='],
          Dir: '/app',
          User: '1000:1000',
          Hosts: ['10.0.0.5 db.internal legacy'],
          Mounts: [
            { Type: 'volume', Source: 'makapix-dev_vault', Target: '/vault', VolumeOptions: { Labels: { 'com.docker.stack.namespace': 'makapix-dev' } } },
            { Type: 'bind', Source: '/srv/static', Target: '/static', ReadOnly: true, BindOptions: { Propagation: 'rprivate' } },
            {
              Type: 'volume',
              Source: 'nfs',
              Target: '/nfs',
              VolumeOptions: { DriverConfig: { Name: 'local', Options: { type: 'nfs', o: 'addr=10.0.0.1,rw' } } },
            },
          ],
          Secrets: [{ File: { Name: 'db_password', UID: '0', GID: '0', Mode: 256 }, SecretID: 's1', SecretName: 'makapix-dev_db_password' }],
          Configs: [{ File: { Name: '/etc/app.toml', UID: '0', GID: '0', Mode: 292 }, ConfigID: 'c1', ConfigName: 'makapix-dev_app' }],
        },
        Networks: [{ Target: 'kxabjd87agnm907w9tsj4q1kx' }, { Target: 'mlri3fhfxjdtk1tc4vga2czvc', Aliases: ['api'] }],
        Placement: { Constraints: ['node.labels.twinstack.env.dev == true', 'node.role == manager'] },
      },
    },
  },
];

const source = (): swarm.OneOffSource => {
  const s = swarm.parseOneOffSource(JSON.stringify(inspected), 'makapix-dev_api');
  assert.ok(s);
  return s;
};

describe('a one-off task from a service spec', () => {
  it("gives the task the service's mounts, networks (by id, no alias), secrets, configs, placement and process settings", () => {
    assert.deepEqual(swarm.oneOffSpecFlags(source()), [
      ...['--mount', 'type=volume,source=makapix-dev_vault,target=/vault,volume-label=com.docker.stack.namespace=makapix-dev'],
      ...['--mount', 'type=bind,source=/srv/static,target=/static,readonly,bind-propagation=rprivate'],
      // A field with a comma is one quoted CSV field, as the CLI reads --mount.
      ...['--mount', 'type=volume,source=nfs,target=/nfs,volume-driver=local,volume-opt=type=nfs,"volume-opt=o=addr=10.0.0.1,rw"'],
      ...['--network', 'kxabjd87agnm907w9tsj4q1kx', '--network', 'mlri3fhfxjdtk1tc4vga2czvc'],
      ...['--secret', 'source=makapix-dev_db_password,target=db_password,uid=0,gid=0,mode=0400'],
      ...['--config', 'source=makapix-dev_app,target=/etc/app.toml,uid=0,gid=0,mode=0444'],
      ...['--constraint', 'node.labels.twinstack.env.dev == true', '--constraint', 'node.role == manager'],
      ...['--workdir', '/app', '--user', '1000:1000', '--host', 'db.internal:10.0.0.5,legacy:10.0.0.5'],
      ...['--entrypoint', `'/entry point.sh' 'it'\\''s'`],
    ]);
  });

  it('creates a one-shot job of the given image and command, its variables only in the env file', () => {
    const cmd = swarm.oneOffCreate({
      name: 'makapix-dev_twinstack-migrate',
      image: digest,
      envFile: '/tmp/twinstack-oneoff.x1/env',
      command: alembic.upgradeHead(),
      source: source(),
    });
    assert.match(
      cmd,
      /^docker service create --quiet --mode replicated-job --restart-condition none --detach --with-registry-auth --name makapix-dev_twinstack-migrate --env-file \/tmp\/twinstack-oneoff\.x1\/env --mount /,
    );
    assert.ok(cmd.endsWith(` ${digest} alembic upgrade head`), cmd);
    assert.doesNotMatch(cmd, /owner-pw|statement_timeout|--env |-e /);
  });

  it('writes the env file: the spec variables, extra ones over them, bare names left out', () => {
    const file = swarm.oneOffEnvFile(source().Spec.TaskTemplate.ContainerSpec.Env ?? [], {
      PGOPTIONS: '-c lock_timeout=5000',
      DATABASE_URL: 'postgresql://o:p w@h/db_copy',
    });
    assert.equal(file, 'DB_PASSWORD=owner-pw\nPGOPTIONS=-c lock_timeout=5000\nEMPTY=\nDATABASE_URL=postgresql://o:p w@h/db_copy\n');
  });

  it('refuses a variable the env file cannot carry as given', () => {
    assert.throws(() => swarm.oneOffEnvFile([], { A: 'two\nlines' }), /variable A cannot be passed/);
    assert.throws(() => swarm.oneOffEnvFile([], { 'A B': 'x' }), /cannot be passed/);
    assert.throws(() => swarm.oneOffEnvFile([], { '#A': 'x' }), /cannot be passed/);
    assert.throws(() => swarm.oneOffEnvFile(['A=x\r'], {}), /cannot be passed/);
  });

  it("reads the service's spec, none when the engine has another, and refuses another shape", () => {
    assert.equal(swarm.parseOneOffSource('[]', 'makapix-dev_api'), undefined);
    assert.throws(() => swarm.parseOneOffSource('[{"Spec":{"Name":"x"}}]', 'x'), HostDataError);
  });

  it('names the job after the stack: <stack>_twinstack-<what>', () => {
    assert.equal(oneOffJobName('makapix-dev', 'makapix-dev-twinstack-migrate'), 'makapix-dev_twinstack-migrate');
    assert.equal(oneOffJobName('makapix', 'twinstack-heads'), 'makapix_twinstack-heads');
  });

  it('reads the state, error and exit code of an ended task', () => {
    const t = swarm.parseTaskStatus('[{"ID":"t1","Status":{"State":"failed","Err":"task: non-zero exit (3)","ContainerStatus":{"ExitCode":3}}}]', 't1');
    assert.equal(t?.Status.ContainerStatus?.ExitCode, 3);
    assert.equal(swarm.parseTaskStatus('[]', 't1'), undefined);
    assert.equal(swarm.taskInspect('t1'), 'docker inspect --type task t1');
    assert.equal(swarm.serviceLogs('s_j'), 'docker service logs --raw --no-trunc s_j');
    assert.equal(swarm.serviceRemove('s_j'), 'docker service rm s_j');
    assert.match(swarm.jobRemove('s_j'), /^SERVICE=s_j\ntasks=\$\(docker service ps /);
  });
});

describe('the wait for a one-off task', () => {
  /** Runs jobWait against a stand-in docker that prints the next of `states` at each `service ps`. */
  const wait = (states: string[]) => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-oneoff-'));
    try {
      fs.writeFileSync(path.join(bin, 'states'), states.join('\n') + '\n');
      fs.writeFileSync(path.join(bin, 'docker'), `#!/bin/bash\necho "$*" >> "${bin}/args"\nn=$(wc -l < "${bin}/args")\nsed -n "\${n}p" "${bin}/states"\n`, {
        mode: 0o755,
      });
      fs.writeFileSync(path.join(bin, 'sleep'), '#!/bin/bash\n', { mode: 0o755 });
      const r = spawnSync('bash', ['-c', swarm.jobWait('makapix_twinstack-heads')], { encoding: 'utf8', env: { PATH: `${bin}:${process.env.PATH}` } });
      return { ...r, calls: fs.readFileSync(path.join(bin, 'args'), 'utf8').trim().split('\n') };
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  };

  it('polls the job until its task has ended, and prints the task id', () => {
    const r = wait(['', 't9 Assigned 1 second ago', 't9 Running 2 seconds ago', 't9 Failed less than a second ago']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 't9\n');
    assert.equal(r.calls.length, 4);
    assert.equal(r.calls[0], 'service ps --no-trunc --format {{.ID}} {{.CurrentState}} makapix_twinstack-heads');
  });

  it('takes complete and rejected as ended too', () => {
    assert.equal(wait(['t1 Complete 1 second ago']).stdout, 't1\n');
    assert.equal(wait(['t2 Pending 1 second ago', 't2 Rejected 1 second ago']).stdout, 't2\n');
  });
});

describe('oneOffAlembic on a swarm', () => {
  it('refuses without the image, naming it, before the host is touched', async () => {
    const config = parseConfig(
      `swarm: { registry: 127.0.0.1:5000 }
environments:
  prod: {target: swarm, checkout: /srv/p, project: makapix, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: owner, port: 1}}
  dev: {target: swarm, checkout: /srv/d, project: makapix-dev, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: owner, port: 2}}
`,
      'test',
    );
    const host = new FakeHost();
    const run = oneOffAlembic(host, new Environment('prod', config), alembic.heads(), { timeoutSeconds: 60, label: 'heads', name: 'makapix-twinstack-heads' });
    await assert.rejects(run, (e) => e instanceof OperationFailed && /OneOffOptions\.image/.test(e.message));
    assert.deepEqual(host.calls, []);
  });
});
