/**
 * resample's swap when dev runs on a swarm (target: swarm), against a fake host that models the
 * manager (test/support/fake-swarm.ts): compose finds no containers there, so dev's app services
 * are scaled to 0 before the databases move and back to the replicas their specs had afterwards;
 * what a cut swap leaves to the next operation on dev scales them back too. Asserted on the
 * engine's model (specs, running tasks) and the databases the fake server holds. The same on a
 * real single-node swarm: test/integration/resample-swarm.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Environment } from '../../src/domain/environment';
import { MemoryLogger } from '../../src/infra/logger';
import { appServices, databaseNames, DevServer, swapIn } from '../../src/resample/swap';
import { sha, shellValue } from '../support/fake-vps';
import { FakeSwarm, SWARM_SERVICES } from '../support/fake-swarm';

const NAMES = databaseNames('makapix_dev');
const PENDING = '/var/lib/twinstack/dev/pending';
const MARKER = `${PENDING}/resample-swap.sh`;
const APPS = SWARM_SERVICES.map((s) => s.service).filter((s) => s !== 'db');

/** dev runs a swarm release, its api at 2 replicas; the sample is loaded into staging. */
async function scene(): Promise<FakeSwarm> {
  const vps = new FakeSwarm();
  vps.runSwarmRelease(sha('a'), 'r20260101T000000Z-aaaaaaa');
  await vps.host.run('docker service scale --detach=false makapix-dev_api=2');
  vps.scales.length = 0;
  vps.databases.dev.add(NAMES.staging);
  return vps;
}

/** Running tasks per app service now. */
const running = (vps: FakeSwarm) => Object.fromEntries(APPS.map((s) => [s, vps.runningImages(s).length]));

async function swap(vps: FakeSwarm, migrate: () => Promise<void>) {
  const log = new MemoryLogger();
  const dev = new Environment('dev', vps.config);
  let error: unknown;
  try {
    await swapIn({
      server: new DevServer(vps.host, dev, 'postgres'),
      names: NAMES,
      services: appServices(vps.host, dev, log, true),
      migrate,
      log,
      record: () => Promise.resolve(),
      pendingDir: PENDING,
    });
  } catch (e) {
    error = e;
  }
  vps.host.assertAllScripted();
  return { error, log };
}

describe("resample's swap on a swarm dev", () => {
  it('scales the app services to 0 before the databases move and back to the replicas they had after the migration', async () => {
    const vps = await scene();
    const before = running(vps);
    assert.equal(before.api, 2);
    let during: Record<string, number> = {};
    const r = await swap(vps, () => {
      during = running(vps);
      return Promise.resolve();
    });
    assert.equal(r.error, undefined, String(r.error));
    assert.deepEqual([...vps.databases.dev].sort(), ['makapix_dev', 'postgres'], 'staging is dev, the old one dropped');
    assert.deepEqual(during, Object.fromEntries(APPS.map((s) => [s, 0])), 'no app task ran while the sample went in');
    assert.deepEqual(running(vps), before, 'each app service runs the tasks it had');
    assert.equal(vps.runningImages('db').length, 1, 'the database kept running');
    // The order on the host: scale to 0 (the engine waited), the renames, the scale back, the health URL.
    const h = vps.host;
    const down = h.indexOf(/^docker service scale --detach=false (\S+=0 ?)+$/);
    const begin = h.calls.findIndex((c) => c.rule === 'begin swap');
    const up = h.lastIndexOf(/^docker service scale --detach=false .*makapix-dev_api=2/);
    const probe = h.indexOf(/^curl .*development\.makapix\.club/);
    assert.ok(down >= 0 && down < begin && begin < up && up < probe, `order: ${[down, begin, up, probe].join(' ')}`);
    assert.deepEqual(vps.scales, [Object.fromEntries(APPS.map((s) => [s, 0])), Object.fromEntries(APPS.map((s) => [s, s === 'api' ? 2 : 1]))]);
    assert.equal(h.indexOf(/^docker-compose .* (stop|start) /), -1, 'no compose stop or start on a stack');
    assert.equal(h.files.has(MARKER), false);
  });

  it('when the migration fails, puts dev back and scales the services back to what they had', async () => {
    const vps = await scene();
    const before = running(vps);
    const r = await swap(vps, () => Promise.reject(new Error('alembic: boom')));
    assert.match(String(r.error), /boom/);
    assert.deepEqual([...vps.databases.dev].sort(), ['makapix_dev', 'postgres']);
    assert.deepEqual(running(vps), before);
  });

  it("a cut swap's undo scales the services back to the replicas they had", async () => {
    const vps = await scene();
    const before = running(vps);
    // The run is cut during the migration: what the next operation on dev would run is the undo on the host.
    let undo = '';
    await swap(vps, () => {
      undo = vps.host.files.get(MARKER)?.toString() ?? '';
      return Promise.reject(new Error('cut'));
    });
    await vps.host.run(`docker service scale --detach=false ${APPS.map((s) => `makapix-dev_${s}=0`).join(' ')}`);
    for (const s of APPS) assert.equal(vps.runningImages(s).length, 0);
    const restart = shellValue(undo, 'RESTART');
    assert.equal(shellValue(undo, 'RESTART_DIR'), '/opt/makapix-dev');
    assert.match(restart, /^docker service scale --detach=true /);
    await vps.host.run(restart);
    assert.deepEqual(running(vps), before, 'the undo brings each service back to its replicas');
  });
});
