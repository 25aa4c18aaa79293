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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { deployRelease, type SwarmRelease } from '../../src/domain/swarm-release';
import { pendingDirOf } from '../../src/domain/host-log';
import { appServices, composeMigrate, databaseNames, DevServer, swapIn } from '../../src/resample/swap';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { freePort } from '../harness/ports';
import {
  BASE_IMAGE as BASE,
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
const NAMES = databaseNames(DB);

describe("resample's swap on a single-node swarm: the api at 0 replicas while dev's database is swapped, then back", { skip: swarmHostSkip(OPTIONS) }, () => {
  let sw: SwarmHost;
  let host: SshHost;
  let stack: string;
  let ctx: EnvContext;
  let dbPort: number;
  let release: SwarmRelease = {};

  /** The api's replicas in its spec, the ids of its running tasks and its containers, as the engine says. */
  const onEngine = (service: string) => {
    const name = `${stack}_${service}`;
    const running = sw
      .runningTasks(name, '{{.ID}} {{.CurrentState}}')
      .filter((l) => / Running /.test(l))
      .map((l) => l.split(' ')[0]);
    return { replicas: sw.replicas(name), running, containers: sw.taskContainers(name).length };
  };
  const psql = (database: string, sql: string) => sw.psql({ service: `${stack}_db`, port: dbPort, database }, sql);

  before(async () => {
    sw = await startSwarmHost(OPTIONS);
    const { engine, registry } = sw as Required<SwarmHost>;
    host = sw.host!;
    stack = sw.name('dev');
    const repo = (name: string, tag: string) => `${registry.address}/${sw.name(name)}:${tag}`;
    release = {
      db: sw.buildAndPush(repo('db', '1'), ['-f', path.join(APP, 'db', 'Dockerfile'), APP]),
      api: sw.buildAndPush(repo('api', '1'), ['-'], `FROM ${BASE}\nLABEL twinstack.test.api=1\n`),
    };
    const checkout = path.join(engine.dir, 'checkout');
    fs.mkdirSync(checkout);
    dbPort = await freePort();
    fs.writeFileSync(path.join(checkout, 'stack.yml'), dbAndIdleApiStack({ db: repo('db', '1'), api: repo('api', '1'), dbPort }));
    fs.writeFileSync(path.join(checkout, '.env'), 'UNUSED=1\n');

    const config = swarmDevConfig({ dir: engine.dir, registry: registry.address, checkout, project: stack, dbPort, healthTimeoutSeconds: 300 });
    ctx = { host, config, env: new Environment('dev', config), log: new MemoryLogger() };
    await deployRelease(ctx, { release });
    psql(DB, `create table notes (body text); insert into notes values ('dev before')`);
    psql('postgres', `create database ${NAMES.staging}`);
    psql(NAMES.staging, `create table notes (body text); insert into notes values ('the sample')`);
  });

  after(async () => {
    await sw?.stop();
  });

  it('scales the api to 0 around the renames and the migration, back to its 2 replicas after; dev runs on the sample', async () => {
    const before = onEngine('api');
    assert.equal(before.replicas, 2);
    assert.equal(before.running.length, 2);
    // What the engine says of the api as the renames start and end, and while the migration runs.
    const seen: Array<ReturnType<typeof onEngine>> = [];
    const isBegin = (script: string) => /^MARKER=\S+resample-swap\.sh; /.test(script) && /UNDO=/.test(script);
    const watched = lookingAround(host, isBegin, () => seen.push(onEngine('api')));
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
    assert.equal(sw.engine.docker(['service', 'ls', '-q', '--filter', `name=${stack}_twinstack-`]).trim(), '');
  });
});
