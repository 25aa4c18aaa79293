/**
 * resample's swap on a swarm dev, on a single-node swarm (a private Docker engine: the machine's
 * shared engine never becomes a swarm) with a real registry on loopback, driven over a real sshd
 * whose sessions reach the private engine (DOCKER_HOST). A stack of a PostgreSQL db task and an api
 * of two replicas runs; a staging database holds "the sample". The real swap (swapIn with
 * appServices and composeMigrate) scales the api to 0 (no task, no container while the databases
 * move and the migration runs in a one-off task), then back to its two replicas (new tasks), and
 * dev's database is the sample. Asserted on the engine and in the database.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { deployRelease, type SwarmRelease } from '../../src/domain/swarm-release';
import { pendingDirOf } from '../../src/domain/host-log';
import { appServices, composeMigrate, databaseNames, DevServer, swapIn } from '../../src/resample/swap';
import type { Host, RunOptions } from '../../src/infra/host';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import * as swarm from '../../src/infra/swarm';
import { connect } from '../harness/connect';
import { freePort } from '../harness/ports';
import { startPrivateEngine, type PrivateEngine } from '../harness/private-engine';
import { registryAvailable, startRegistry, type TestRegistry } from '../harness/registry';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';

const BASE = 'twinstack-fixture-base:latest';
const RUN = randomBytes(4).toString('hex');
const STACK = `twinstack-test-${RUN}-dev`;
const APP = path.join(__dirname, '..', 'fixtures', 'app');
const DB = 'makapix_dev';

/** The stack: the fixture's db image and a plain api, both on the host network, placed on dev's nodes; the images pinned by the overlay. */
function stackFile(o: { registry: string; dbPort: number }): string {
  return `services:
  db:
    image: ${o.registry}/twinstack-test-${RUN}-db:1
    networks: [hostnet]
    environment: { DB_PORT: "${o.dbPort}", DB_NAME: ${DB}, DB_PASSWORD: owner-pw, APP_DB_PASSWORD: app-pw }
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -p ${o.dbPort} -d ${DB} -U owner"]
      interval: 1s
      retries: 30
    deploy:
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
  api:
    image: ${o.registry}/twinstack-test-${RUN}-api:1
    networks: [hostnet]
    command: ["bash", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $$!; done"]
    deploy:
      replicas: 2
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
networks:
  hostnet:
    name: host
    external: true
`;
}

const skip = process.getuid?.() !== 0 ? 'needs root to start dockerd' : (sshdAvailable() ?? registryAvailable() ?? false);
const NAMES = databaseNames(DB);

describe("resample's swap on a single-node swarm: the api at 0 replicas while dev's database is swapped, then back", { skip }, () => {
  let engine: PrivateEngine | undefined;
  let registry: TestRegistry | undefined;
  let sshd: TestSshd | undefined;
  let host: SshHost | undefined;
  let ctx: EnvContext;
  let dbPort: number;
  let release: SwarmRelease = {};

  const buildAndPush = (ref: string, args: string[], input?: string): string => {
    execFileSync('docker', ['-H', engine!.host, 'build', '--network', 'host', '-q', '-t', ref, ...args], {
      input,
      env: { ...process.env, DOCKER_BUILDKIT: '0' },
      stdio: ['pipe', 'ignore', 'pipe'],
      timeout: 600_000,
    });
    engine!.docker(['push', ref]);
    const digest = swarm.parseRepoDigests(engine!.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]), swarm.imageRepository(ref));
    assert.ok(digest, `${ref} has no digest in the registry`);
    return digest;
  };
  /** The api's replicas in its spec, the ids of its running tasks and its containers, as the engine says. */
  const onEngine = (service: string) => {
    const name = `${STACK}_${service}`;
    const replicas = Number(engine!.docker(['service', 'inspect', '--format', '{{.Spec.Mode.Replicated.Replicas}}', name]).trim());
    const running = engine!
      .docker(['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.ID}} {{.CurrentState}}', name])
      .trim()
      .split('\n')
      .filter((l) => / Running /.test(l))
      .map((l) => l.split(' ')[0]);
    const containers = engine!
      .docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${name}`])
      .split('\n')
      .filter(Boolean);
    return { replicas, running, containers: containers.length };
  };
  const psql = (database: string, sql: string) => {
    const [db] = engine!.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_db`]).split('\n');
    return engine!.docker(['exec', db, 'psql', '-p', String(dbPort), '-U', 'owner', '-d', database, '-v', 'ON_ERROR_STOP=1', '-tAc', sql]).trim();
  };

  before(async () => {
    engine = await startPrivateEngine();
    await engine.swarmInit();
    engine.loadImage(BASE);
    const node = engine.docker(['node', 'ls', '-q']).trim();
    engine.docker(['node', 'update', '--label-add', 'twinstack.env.dev=true', node]);
    registry = await startRegistry();
    const repo = (name: string, tag: string) => `${registry!.address}/twinstack-test-${RUN}-${name}:${tag}`;
    release = {
      db: buildAndPush(repo('db', '1'), ['-f', path.join(APP, 'db', 'Dockerfile'), APP]),
      api: buildAndPush(repo('api', '1'), ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=1\n`),
    };
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), stackFile({ registry: registry.address, dbPort }));
    fs.writeFileSync(path.join(checkout, '.env'), 'UNUSED=1\n');

    sshd = await startSshd({ setEnv: { DOCKER_HOST: engine.host } });
    host = await connect(sshd);
    const config = parseConfig(
      `state-dir: ${engine.dir}/state
swarm: { registry: '${registry.address}', allow-shared-node: true }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: owner, port: 1}}
  dev: {target: swarm, checkout: ${checkout}, project: ${STACK}, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:2,
        health-timeout-seconds: 300, database: {name: ${DB}, user: owner, port: ${dbPort}, container-port: ${dbPort}}}
`,
      'test',
    );
    ctx = { host, config, env: new Environment('dev', config), log: new MemoryLogger() };
    await deployRelease(ctx, { release });
    psql(DB, `create table notes (body text); insert into notes values ('dev before')`);
    psql('postgres', `create database ${NAMES.staging}`);
    psql(NAMES.staging, `create table notes (body text); insert into notes values ('the sample')`);
  });

  after(async () => {
    await host?.close();
    await sshd?.stop();
    const dir = engine?.dir;
    await engine?.stop();
    if (dir) assert.ok(!fs.existsSync(dir), `${dir} is left behind`);
    const store = registry?.dir;
    await registry?.stop();
    if (store) assert.ok(!fs.existsSync(store), `${store} is left behind`);
  });

  it('scales the api to 0 around the renames and the migration, back to its 2 replicas after; dev runs on the sample', async () => {
    const before = onEngine('api');
    assert.equal(before.replicas, 2);
    assert.equal(before.running.length, 2);
    // What the engine says of the api as the renames start and end, and while the migration runs.
    const seen: Array<ReturnType<typeof onEngine>> = [];
    const isBegin = (script: string) => /^MARKER=\S+resample-swap\.sh; /.test(script) && /UNDO=/.test(script);
    const watched: Host = Object.create(host!, {
      run: {
        value: async (script: string, options?: RunOptions) => {
          if (isBegin(script)) seen.push(onEngine('api'));
          const out = await host!.run(script, options);
          if (isBegin(script)) seen.push(onEngine('api'));
          return out;
        },
      },
    }) as Host;
    const { env, log } = ctx;
    // The migration: a one-off task of the api's spec; the migrate step looks at the engine first.
    const migrate = composeMigrate(watched, env, ['bash', '-c', 'exit 0'], log);
    await swapIn({
      server: new DevServer(watched, env, 'postgres'),
      names: NAMES,
      services: appServices(watched, env, log, false),
      migrate: async () => {
        seen.push(onEngine('api'));
        await migrate();
      },
      log,
      record: () => Promise.resolve(),
      pendingDir: pendingDirOf(ctx.config['state-dir'], 'dev'),
    });
    assert.equal(seen.length, 3, 'the renames ran once in one round trip, then the migration');
    for (const s of seen) {
      assert.equal(s.replicas, 0, 'the api is scaled to 0 during the swap');
      assert.deepEqual(s.running, []);
      assert.equal(s.containers, 0, 'no api container runs during the swap');
    }
    const after = onEngine('api');
    assert.equal(after.replicas, 2, 'the api has the replicas it had');
    assert.equal(after.running.length, 2);
    assert.ok(
      after.running.every((id) => !before.running.includes(id)),
      'the running api tasks are new ones',
    );
    assert.equal(psql(DB, `select string_agg(body, ',') from notes`), 'the sample');
    const dbs = psql('postgres', `select string_agg(datname, ',' order by datname) from pg_database where datname like '${DB}%'`);
    assert.equal(dbs, DB, 'staging is dev now and the database dev had before is dropped');
    assert.equal(onEngine('db').running.length, 1, 'the database task kept running');
    // No one-off job is left behind.
    assert.equal(engine!.docker(['service', 'ls', '-q', '--filter', `name=${STACK}_twinstack-`]).trim(), '');
  });
});
