/**
 * The actions end to end on a real single-node swarm: a private Docker engine (the machine's
 * shared engine never becomes a swarm) whose one node carries both environments' labels, a
 * registry on loopback, and a real sshd whose sessions reach the engine. The fixture app (its stack
 * converted for swarm, the api replaced start-first on a shared port) is deployed as two stacks,
 * prod and dev, driven through the actions' own prepare and execute: deploy dev, gate, promote
 * under load, a release whose api never becomes healthy (the engine rolls it back by itself while
 * prod keeps serving), and rollback. Asserted on the engine, the registry, the databases, the
 * host log and over HTTP, never on twinstack's messages.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deployAction } from '../../src/actions/deploy/deploy';
import { gateAction } from '../../src/actions/gate/gate';
import { promoteAction } from '../../src/actions/promote/promote';
import { rollbackAction } from '../../src/actions/rollback/rollback';
import type { ActionDefinition, ConnectionInputs } from '../../src/actions/runner';
import { parseConfig, type Config } from '../../src/domain/config';
import { latest, parseLog, type LogRecord } from '../../src/domain/host-log';
import { freePort } from '../harness/ports';
import { startSwarmHost, swarmHostSkip, type SwarmHost } from '../harness/swarm-host';
import { runOnFake, type ActionRun } from '../support/run-action';
import { failureKinds, makeSwarmApp, startLoad, type Env, type SwarmApp } from './swarm-actions-support';

const OPTIONS = { labels: ['prod', 'dev'], registry: true, ssh: true } as const;
const DATABASE = { prod: 'makapix', dev: 'makapix_dev' } as const;
const PINNED = /^(?<repo>127\.0\.0\.1:\d+\/(?<name>[a-z0-9-]+))@(?<digest>sha256:[0-9a-f]{64})$/;
/** Requests per second at prod's api while it changes. */
const RATE = 20;

describe(
  'the actions on a single-node swarm: deploy dev, gate, promote under load, a release the engine rolls back, rollback',
  { skip: swarmHostSkip(OPTIONS) },
  () => {
    let sw: SwarmHost;
    let app: SwarmApp;
    let config: Config;
    let dir = '';
    let project: Record<Env, string>;
    let ports: Record<Env, { api: number; db: number }>;
    /** prod's first release (main), deployed before any promotion: service → image its spec names. */
    let first: { release: string; images: Record<string, string> };
    /** What dev ran when the gate passed: service → image its spec names. */
    let gated: Record<string, string>;

    const service = (env: Env, name: string) => `${project[env]}_${name}`;
    /** The images each built service's spec names, as the engine says. */
    const specImages = (env: Env) => Object.fromEntries(['db', 'api'].map((s) => [s, sw.specImage(service(env, s))]));
    const container = (env: Env, name: string) => {
      const ids = sw.taskContainers(service(env, name));
      assert.equal(ids.length, 1, `${env} ${name} runs ${ids.length} task containers`);
      return ids[0];
    };
    const psql = (env: Env, sql: string) =>
      sw.engine
        .docker([
          'exec',
          container(env, 'db'),
          'psql',
          '-X',
          '-A',
          '-t',
          '-v',
          'ON_ERROR_STOP=1',
          '-p',
          String(ports[env].db),
          '-U',
          'owner',
          '-d',
          DATABASE[env],
          '-c',
          sql,
        ])
        .trim();
    const hostLog = (env: Env): LogRecord[] => {
      const file = path.join(dir, 'state', env, 'log.jsonl');
      return fs.existsSync(file) ? parseLog(fs.readFileSync(file, 'utf8'), file) : [];
    };
    /** The HTTP status of the environment's health path, or the reason no answer came. */
    const health = (env: Env) =>
      fetch(`http://127.0.0.1:${ports[env].api}/api/health`, { signal: AbortSignal.timeout(15_000) }).then(
        (res) => res.status,
        (e: Error) => e.message,
      );
    const act = <I extends ConnectionInputs, O, P>(def: ActionDefinition<I, O, P>, inputs: Record<string, string> = {}) =>
      runOnFake(def, { config, host: sw.host! }, inputs);
    /** An action's failure with the end of its log: what the assertion shows when a step failed. */
    const why = (r: ActionRun) => `${r.failure}\n${r.log.text.split('\n').slice(-30).join('\n')}`;
    const tasksOf = (env: Env, name: string) => sw.engine.docker(['service', 'ps', '--no-trunc', service(env, name)]);
    /** The last lines a service's tasks wrote (both streams), to show why a task ended. */
    const logsOf = (env: Env, name: string) => {
      const r = spawnSync('docker', ['-H', sw.engine.host, 'service', 'logs', '--timestamps', '--tail', '25', service(env, name)], { encoding: 'utf8' });
      return `${r.stdout}${r.stderr}`;
    };
    /** What the engine says of prod, and what its tasks wrote last: why requests failed. */
    const prodState = () => ['api', 'db'].map((n) => `${tasksOf('prod', n)}${logsOf('prod', n)}`).join('\n');
    /** The service runs exactly one task, on this image (running means healthy for a task with a healthcheck). */
    const runsOnly = (env: Env, name: string, image: string) => {
      const running = sw.runningTasks(service(env, name));
      assert.equal(running.length, 1, `${env} ${name}: ${running.join('; ')}\n${tasksOf(env, name)}`);
      assert.match(running[0], new RegExp(`^${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} Running`), tasksOf(env, name));
    };

    before(async () => {
      sw = await startSwarmHost(OPTIONS);
      dir = fs.mkdtempSync(`/tmp/${sw.name('swarm-app')}-`);
      project = { prod: sw.name('prod'), dev: sw.name('dev') };
      ports = { prod: { api: await freePort(), db: await freePort() }, dev: { api: await freePort(), db: await freePort() } };
      app = makeSwarmApp({ dir, registry: sw.registry!.address, project, ports });
      config = parseConfig(app.configText, 'twinstack.yml');
      // Prod as it stands before twinstack promotes anything: main, deployed, migrated, with a row.
      const r = await act(deployAction, { environment: 'prod', ref: 'main' });
      assert.equal(r.error, undefined, why(r));
      first = { release: r.outputs['release-id'], images: specImages('prod') };
      sw.engine.docker(['exec', container('prod', 'api'), 'alembic', 'upgrade', 'head']);
      psql('prod', "insert into items (name) values ('written before any promotion')");
    });
    after(async () => {
      await sw?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    });

    it('deploy on dev: every built service runs its image pinned by a digest the registry holds, and the host log records them', async () => {
      const r = await act(deployAction, { environment: 'dev', ref: 'second' });
      assert.equal(r.error, undefined, why(r));
      const images = specImages('dev');
      for (const [name, image] of Object.entries(images)) {
        const pinned = PINNED.exec(image);
        assert.ok(pinned?.groups, `dev ${name} is not pinned by digest: ${image}`);
        assert.equal(pinned.groups.repo.split('/')[0], sw.registry!.address);
        assert.ok(await sw.registry!.hasManifest(pinned.groups.name, pinned.groups.digest), `the registry has no ${image}`);
        runsOnly('dev', name, image);
      }
      assert.equal(sw.runningTasks(service('dev', 'worker')).length, 1);
      assert.equal(await health('dev'), 200);
      const release = latest(hostLog('dev'), 'release');
      assert.equal(release?.sha, app.branches.second);
      assert.deepEqual({ db: release?.digests?.db, api: release?.digests?.api }, images);
    });

    it('gate on dev: alembic and pytest pass in the api task, the migration is in dev’s database, and the gate is recorded', async () => {
      const r = await act(gateAction, { sha: app.branches.second });
      assert.equal(r.error, undefined, why(r));
      assert.equal(psql('dev', 'select version_num from alembic_version'), '0002');
      assert.equal(psql('dev', "select count(*) from information_schema.columns where table_name = 'items' and column_name = 'description'"), '1');
      // The tests asked the api of the task they ran in (tests/test_description.py reads /api/items).
      // The api logs each request on its standard error.
      const logs = spawnSync('docker', ['-H', sw.engine.host, 'logs', container('dev', 'api')], { encoding: 'utf8' }).stderr;
      assert.match(logs, /GET \/api\/items HTTP\/1\.[01]" 200/, 'no test read /api/items of the dev api');
      const gate = latest(hostLog('dev'), 'gate');
      assert.equal(gate?.sha, app.branches.second);
      assert.equal(gate?.passed, true);
      assert.equal(gate?.tests?.failed, 0);
      assert.ok((gate?.tests?.passed ?? 0) >= 2, JSON.stringify(gate?.tests));
      gated = specImages('dev');
    });

    it(`promote: prod runs exactly dev's gated digests, not one of ${RATE} requests a second failed during the swap, and prod's database is migrated`, async () => {
      assert.notEqual(gated.api, first.images.api, "the gated api is main's: nothing would be swapped");
      const load = startLoad(ports.prod.api, RATE);
      const before = container('prod', 'api');
      const r = await act(promoteAction, { sha: app.branches.second });
      const { ok, failures, versions } = await load.stop();
      assert.equal(r.error, undefined, `${why(r)}\n${prodState()}`);
      assert.equal(failures.length, 0, `${failures.length} of ${ok + failures.length} requests failed:\n${failureKinds(failures)}\n${prodState()}\n${why(r)}`);
      // The old release answered, then the new one: the load ran across the swap.
      assert.deepEqual(versions, ['main', 'second']);
      assert.notEqual(before, container('prod', 'api'));
      assert.deepEqual(specImages('prod'), gated);
      for (const [name, image] of Object.entries(gated)) runsOnly('prod', name, image);
      assert.equal(psql('prod', 'select version_num from alembic_version'), '0002');
      assert.equal(psql('prod', "select count(*) from information_schema.columns where table_name = 'items' and column_name = 'description'"), '1');
      assert.equal(psql('prod', 'select name from items order by id'), 'written before any promotion');
      const release = latest(hostLog('prod'), 'release');
      assert.equal(release?.sha, app.branches.second);
      assert.deepEqual({ db: release?.digests?.db, api: release?.digests?.api }, gated);
    });

    it('a release whose api never becomes healthy: the engine rolls it back by itself, and prod serves throughout on the gated digest', async () => {
      // What prod runs now: the gated release once promote passed.
      const serving = sw.specImage(service('prod', 'api'));
      assert.equal(await health('prod'), 200, `prod does not serve before the release:\n${prodState()}`);
      const load = startLoad(ports.prod.api, RATE);
      const before = container('prod', 'api');
      const r = await act(deployAction, { environment: 'prod', ref: 'broken' });
      const { ok, failures, versions } = await load.stop();
      assert.notEqual(r.error, undefined, `the deploy of a release that never became healthy succeeded:\n${prodState()}\n${why(r)}`);
      assert.equal(failures.length, 0, `${failures.length} of ${ok + failures.length} requests failed:\n${failureKinds(failures)}\n${prodState()}\n${why(r)}`);
      assert.equal(sw.engine.docker(['service', 'inspect', '--format', '{{.UpdateStatus.State}}', service('prod', 'api')]).trim(), 'rollback_completed');
      assert.equal(sw.specImage(service('prod', 'api')), serving);
      runsOnly('prod', 'api', serving);
      // The task that served before still serves, and no other answered.
      assert.equal(container('prod', 'api'), before);
      assert.deepEqual(versions, ['second']);
      // The engine did start the new release's api: a task on another digest, which ended.
      const tasks = sw.engine
        .docker(['service', 'ps', '--no-trunc', '--format', '{{.Image}} {{.DesiredState}}', service('prod', 'api')])
        .trim()
        .split('\n');
      const others = tasks.filter((t) => !t.startsWith(`${serving} `));
      assert.ok(
        others.some((t) => PINNED.test(t.split(' ')[0]) && / Shutdown$/.test(t)),
        tasks.join('\n'),
      );
      assert.equal(await health('prod'), 200);
      assert.equal(serving, gated?.api, 'prod did not run the gated api before this release');
    });

    it("rollback of prod to the previous release: the engine runs that release's digests again", async () => {
      const r = await act(rollbackAction, { environment: 'prod' });
      assert.equal(r.error, undefined, why(r));
      assert.deepEqual(specImages('prod'), first.images);
      for (const [name, image] of Object.entries(first.images)) runsOnly('prod', name, image);
      const release = latest(hostLog('prod'), 'release');
      assert.equal(release?.release, first.release);
      assert.equal(release?.kind, 'rollback');
      assert.deepEqual({ db: release?.digests?.db, api: release?.digests?.api }, first.images);
      assert.equal(await health('prod'), 200);
    });
  },
);
