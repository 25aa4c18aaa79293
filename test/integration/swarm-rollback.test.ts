/**
 * startRelease on a swarm, on a single-node swarm (a private Docker engine: the machine's shared
 * engine never becomes a swarm) with a real registry on loopback, driven over a real sshd whose
 * sessions reach the private engine (DOCKER_HOST). A stack of a PostgreSQL db task and an api task
 * runs release v2; starting release v1 again deploys v1's digests, and with a backup to restore, the
 * api service is at 0 replicas (no task running) while the database is restored, then runs v1.
 * The api runs two replicas (not the files' default of one) to show the deploy sets them again.
 * Asserted on the engine (service specs, tasks) and in the database.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { takeBackup, type BackupManifest } from '../../src/domain/backup';
import { parseConfig } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import type { Release } from '../../src/domain/release';
import { startRelease } from '../../src/domain/rollback';
import { deployRelease, type SwarmRelease } from '../../src/domain/swarm-release';
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

describe('startRelease on a single-node swarm: the older digests back, the database restored under no load', { skip }, () => {
  let engine: PrivateEngine | undefined;
  let registry: TestRegistry | undefined;
  let sshd: TestSshd | undefined;
  let host: SshHost | undefined;
  let ctx: EnvContext;
  let sha: string;
  let dbPort: number;
  const releases: Record<'v1' | 'v2', SwarmRelease> = { v1: {}, v2: {} };

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
  /** The image the service's spec names, its replicas, and the images its running tasks were given, as the engine says. */
  const onEngine = (service: string) => {
    const name = `${STACK}_${service}`;
    const spec = engine!
      .docker(['service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.Spec.Mode.Replicated.Replicas}}', name])
      .trim();
    const running = engine!
      .docker(['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.Image}} {{.CurrentState}}', name])
      .trim()
      .split('\n')
      .filter((l) => / Running /.test(l));
    const containers = engine!
      .docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${name}`])
      .split('\n')
      .filter(Boolean);
    const [image, replicas] = spec.split(' ');
    return { image, replicas: Number(replicas), running: running.map((l) => l.split(' ')[0]), containers: containers.length };
  };
  const psql = (sql: string) => {
    const [db] = engine!.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${STACK}_db`]).split('\n');
    return engine!.docker(['exec', db, 'psql', '-p', String(dbPort), '-U', 'owner', '-d', DB, '-v', 'ON_ERROR_STOP=1', '-tAc', sql]).trim();
  };
  const release = (name: 'v1' | 'v2'): Release => ({
    release: `r-${name}`,
    sha,
    kind: 'deploy',
    images: {},
    time: new Date().toISOString(),
    digests: releases[name],
  });

  before(async () => {
    engine = await startPrivateEngine();
    await engine.swarmInit();
    engine.loadImage(BASE);
    const node = engine.docker(['node', 'ls', '-q']).trim();
    engine.docker(['node', 'update', '--label-add', 'twinstack.env.dev=true', node]);
    registry = await startRegistry();
    const repo = (name: string, tag: string) => `${registry!.address}/twinstack-test-${RUN}-${name}:${tag}`;
    const db = buildAndPush(repo('db', '1'), ['-f', path.join(APP, 'db', 'Dockerfile'), APP]);
    releases.v1 = { db, api: buildAndPush(repo('api', '1'), ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=1\n`) };
    releases.v2 = { db, api: buildAndPush(repo('api', '2'), ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=2\n`) };

    // The checkout the stack is deployed from: a commit of its files.
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), stackFile({ registry: registry.address, dbPort }));
    fs.writeFileSync(path.join(checkout, '.env'), 'UNUSED=1\n');
    const git = (...args: string[]) =>
      execFileSync('git', ['-C', checkout, '-c', 'user.name=t', '-c', 'user.email=t@example.test', ...args], { encoding: 'utf8' });
    git('init', '-q');
    git('add', 'stack.yml', '.env');
    git('commit', '-q', '-m', 'stack');
    sha = git('rev-parse', 'HEAD').trim();

    sshd = await startSshd({ setEnv: { DOCKER_HOST: engine.host } });
    host = await connect(sshd);
    const config = parseConfig(
      `state-dir: ${engine.dir}/state
backup: { dir: ${engine.dir}/backups, keep: 5, verify: list }
swarm: { registry: '${registry.address}', allow-shared-node: true }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: owner, port: 1}}
  dev: {target: swarm, checkout: ${checkout}, project: ${STACK}, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:2,
        health-timeout-seconds: 600, database: {name: ${DB}, user: owner, port: ${dbPort}, container-port: ${dbPort}}}
`,
      'test',
    );
    ctx = { host, config, env: new Environment('dev', config), log: new MemoryLogger() };
    // dev runs v2: the stack deployed with its digests, the engine watched until it converged.
    await deployRelease(ctx, { release: releases.v2 });
    psql('create table notes (body text)');
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

  it("puts v1's digests back: the api's spec names v1's digest and its tasks run it; the database is left alone", async () => {
    psql(`insert into notes values ('kept')`);
    assert.equal(onEngine('api').image, releases.v2.api);
    const r = await startRelease({ ...ctx, release: release('v1') });
    const api = onEngine('api');
    assert.equal(api.image, releases.v1.api);
    assert.equal(api.replicas, 2);
    assert.deepEqual(
      api.running.map((i) => swarm.taskDigest(i)),
      [1, 2].map(() => swarm.taskDigest(releases.v1.api)),
    );
    assert.equal(onEngine('db').image, releases.v1.db);
    assert.equal(r.restoredAt, undefined);
    // The task containers it reports: the running ones are v1's (the engine keeps the stopped ones of v2 for a while).
    const running = r.containers.filter((c) => c.status === 'running');
    assert.deepEqual(running.map((c) => c.service).sort(), ['api', 'api', 'db']);
    for (const c of running.filter((x) => x.service === 'api')) assert.equal(swarm.taskDigest(c.image), swarm.taskDigest(releases.v1.api));
    assert.equal(psql("select string_agg(body, ',') from notes"), 'kept');
  });

  it('with a backup to restore: the api runs no task while the database is restored, then runs v1 again; a row written after the backup is gone', async () => {
    await deployRelease(ctx, { release: releases.v2 });
    assert.equal(onEngine('api').image, releases.v2.api);
    psql(`insert into notes values ('before the backup')`);
    const backup: BackupManifest = await takeBackup({ ...ctx, ctx: { release: 'r-v2', sha } });
    psql(`insert into notes values ('after the backup')`);

    // What the engine says of the api at the moment the restore starts and when it ends.
    const seen: Array<ReturnType<typeof onEngine>> = [];
    const isRestore = (script: string) => /^PENDING_DIR=/.test(script) && /pg_restore /.test(script);
    const watched: Host = Object.create(host!, {
      run: {
        value: async (script: string, options?: RunOptions) => {
          if (isRestore(script)) seen.push(onEngine('api'));
          const out = await host!.run(script, options);
          if (isRestore(script)) seen.push(onEngine('api'));
          return out;
        },
      },
    }) as Host;

    const r = await startRelease({ ...ctx, host: watched, release: release('v1'), restore: backup });
    assert.equal(seen.length, 2, 'the restore ran once');
    for (const s of seen) {
      assert.equal(s.replicas, 0, 'the api is scaled to 0 during the restore');
      assert.deepEqual(s.running, []);
      assert.equal(s.containers, 0, 'no api container runs during the restore');
    }
    assert.ok(r.restoredAt);
    // Restored: the row written after the backup is gone.
    assert.equal(psql(`select string_agg(body, ',' order by body) from notes`), 'before the backup,kept');
    // The stack deploy gave the api its replicas back, on v1's digest.
    const api = onEngine('api');
    assert.equal(api.image, releases.v1.api);
    assert.equal(api.replicas, 2);
    assert.equal(api.running.length, 2);
    for (const i of api.running) assert.equal(swarm.taskDigest(i), swarm.taskDigest(releases.v1.api));
  });
});
