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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { takeBackup, type BackupManifest } from '../../src/domain/backup';
import { Environment, type EnvContext } from '../../src/domain/environment';
import type { Release } from '../../src/domain/release';
import { startRelease } from '../../src/domain/rollback';
import { deployRelease, type SwarmRelease } from '../../src/domain/swarm-release';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import * as swarm from '../../src/infra/swarm';
import { freePort } from '../harness/ports';
import {
  BASE_IMAGE as BASE,
  commitAll,
  dbAndIdleApiStack,
  DEV_DB as DB,
  lookingAround,
  startSwarmHost,
  swarmDevConfig,
  swarmHostSkip,
  type SwarmHost,
} from '../harness/swarm-host';

const OPTIONS = { labels: ['dev'], registry: true, ssh: true } as const;
const APP = path.join(__dirname, '..', 'fixtures', 'app');

describe('startRelease on a single-node swarm: the older digests back, the database restored under no load', { skip: swarmHostSkip(OPTIONS) }, () => {
  let sw: SwarmHost;
  let host: SshHost;
  let stack: string;
  let ctx: EnvContext;
  let sha: string;
  let dbPort: number;
  const releases: Record<'v1' | 'v2', SwarmRelease> = { v1: {}, v2: {} };

  /** The image the service's spec names, its replicas, and the images its running tasks were given, as the engine says. */
  const onEngine = (service: string) => {
    const name = `${stack}_${service}`;
    const running = sw.runningTasks(name).filter((l) => / Running /.test(l));
    return { image: sw.specImage(name), replicas: sw.replicas(name), running: running.map((l) => l.split(' ')[0]), containers: sw.taskContainers(name).length };
  };
  const psql = (sql: string) => sw.psql({ service: `${stack}_db`, port: dbPort, database: DB }, sql);
  const release = (name: 'v1' | 'v2'): Release => ({
    release: `r-${name}`,
    sha,
    kind: 'deploy',
    images: {},
    time: new Date().toISOString(),
    digests: releases[name],
  });

  before(async () => {
    sw = await startSwarmHost(OPTIONS);
    const { engine, registry } = sw as Required<SwarmHost>;
    host = sw.host!;
    stack = sw.name('dev');
    const repo = (name: string, tag: string) => `${registry.address}/${sw.name(name)}:${tag}`;
    const db = sw.buildAndPush(repo('db', '1'), ['-f', path.join(APP, 'db', 'Dockerfile'), APP]);
    releases.v1 = { db, api: sw.buildAndPush(repo('api', '1'), ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=1\n`) };
    releases.v2 = { db, api: sw.buildAndPush(repo('api', '2'), ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=2\n`) };

    // The checkout the stack is deployed from: a commit of its files.
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), dbAndIdleApiStack({ db: repo('db', '1'), api: repo('api', '1'), dbPort }));
    fs.writeFileSync(path.join(checkout, '.env'), 'UNUSED=1\n');
    sha = commitAll(checkout);

    const config = swarmDevConfig({ dir: engine.dir, registry: registry.address, checkout, project: stack, dbPort, healthTimeoutSeconds: 600, backups: true });
    ctx = { host, config, env: new Environment('dev', config), log: new MemoryLogger() };
    // dev runs v2: the stack deployed with its digests, the engine watched until it converged.
    await deployRelease(ctx, { release: releases.v2 });
    psql('create table notes (body text)');
  });

  after(async () => {
    await sw?.stop();
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
    const watched = lookingAround(host, isRestore, () => seen.push(onEngine('api')));

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
