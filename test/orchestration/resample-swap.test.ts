/**
 * resample's swap against a fake host: staging takes dev's place and dev's own database is
 * dropped only once the app is up on it; a failed migration or health check, or a cut run, puts
 * dev's database back. Each outcome is asserted on the databases the fake server holds afterwards
 * and on the commands that ran. The same swap on a real PostgreSQL is proven in
 * test/integration/resample.test.ts and test/e2e/resample.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Environment } from '../../src/domain/environment';
import { MemoryLogger } from '../../src/infra/logger';
import { appServices, composeMigrate, databaseNames, DevServer, recoverLeftovers, SwapBackFailed, swapIn } from '../../src/resample/swap';
import { FakeVps, sha, shellValue } from '../support/fake-vps';

const NAMES = databaseNames('makapix_dev');
const MARKER = '/var/lib/twinstack/dev/pending/resample-swap.sh';
const DEV = (sub: string) => new RegExp(`^docker-compose .* -p makapix-dev ${sub}$`);
const APP = 'api cache mqtt web worker';

/** dev runs a release on makapix_dev; the sample is loaded into staging. */
function scene(): FakeVps {
  const vps = new FakeVps();
  vps.runRelease('prod', sha('a'), 'r20260101T000000Z-aaaaaaa');
  vps.runRelease('dev', sha('a'), 'r20260101T000000Z-aaaaaab');
  // The fixture's caddy runs in prod only (an inactive profile on dev).
  vps.env.dev.containers = vps.env.dev.containers.filter((c) => c.service !== 'caddy');
  vps.databases.dev.add(NAMES.staging);
  return vps;
}

async function swap(vps: FakeVps) {
  const log = new MemoryLogger();
  const dev = new Environment('dev', vps.config);
  const records: string[] = [];
  let error: unknown;
  try {
    await swapIn({
      server: new DevServer(vps.host, dev, 'postgres'),
      names: NAMES,
      services: appServices(vps.host, dev, log, true),
      migrate: composeMigrate(vps.host, dev, ['alembic', 'upgrade', 'head'], log),
      log,
      record: (event) => Promise.resolve(records.push(event)),
      pendingDir: '/var/lib/twinstack/dev/pending',
    });
  } catch (e) {
    error = e;
  }
  vps.host.assertAllScripted();
  return { error, records, log };
}

const databases = (vps: FakeVps) => [...vps.databases.dev].sort();

describe("resample's swap", () => {
  it('swaps staging in: app stopped, renames, migration, app started and healthy, then the old database dropped', async () => {
    const vps = scene();
    const r = await swap(vps);
    assert.equal(r.error, undefined);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres']);
    const h = vps.host;
    const stop = h.indexOf(DEV(`stop ${APP}`));
    // One round trip writes the undo, then renames dev's database aside and staging into its place, in that order.
    const begin = h.calls.findIndex((c) => c.rule === 'begin swap');
    const renames = [...(h.calls[begin]?.stdin ?? '').matchAll(/ALTER DATABASE "?(\w+)"? RENAME TO "?(\w+)"?;/g)].map((m) => `${m[1]} > ${m[2]}`);
    assert.deepEqual(renames, ['makapix_dev > makapix_dev__ts_previous', 'makapix_dev__ts_staging > makapix_dev']);
    assert.match(h.calls[begin].script, /^MARKER=\S+resample-swap\.sh; .*UNDO=/);
    const migrate = h.indexOf(DEV('run --rm --no-deps -T api alembic upgrade head'));
    const start = h.indexOf(DEV(`start ${APP}`));
    const probe = h.indexOf(/^curl .*development\.makapix\.club/);
    const dropOld = h.calls.findIndex((c) => c.rule === 'pass swap' && /DROP DATABASE IF EXISTS/.test(c.script));
    const seq = [stop, begin, migrate, start, probe, dropOld];
    assert.ok(
      seq.every((x, i) => x >= 0 && (i === 0 || x > seq[i - 1])),
      `the swap's order: ${seq.join(' ')}`,
    );
    assert.deepEqual(r.records, ['swapped']);
    assert.equal(vps.host.files.has(MARKER), false, 'the undo script is gone once the swap passed');
  });

  it('on the first resample (no dev database yet) renames staging in and has nothing to drop', async () => {
    const vps = scene();
    vps.databases.dev.delete('makapix_dev');
    const r = await swap(vps);
    assert.equal(r.error, undefined);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres']);
    assert.equal(
      vps.host.calls.findIndex((c) => /__ts_previous/.test(c.stdin ?? '')),
      -1,
    );
  });

  it("swaps back when the migration fails: dev's own database returns, staging is dropped, the app starts on it", async () => {
    const vps = scene();
    vps.host.on('migration fails', DEV('run --rm --no-deps -T api alembic upgrade head'), { exitCode: 1, stderr: 'alembic.util.exc.CommandError: boom' });
    const r = await swap(vps);
    assert.match(String(r.error), /dev migrations .* exited with code 1/);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres'], "dev's own database, renamed back");
    const h = vps.host;
    const back = h.calls.findIndex((c) => /ALTER DATABASE "?makapix_dev__ts_previous"? RENAME TO "?makapix_dev"?;/.test(c.stdin ?? ''));
    assert.ok(back > h.indexOf(DEV('run --rm --no-deps -T api alembic upgrade head')));
    assert.ok(h.lastIndexOf(DEV(`start ${APP}`)) > back, 'the app starts again after the way back');
    assert.deepEqual(r.records, ['swapped', 'swapped-back']);
    assert.equal(vps.host.files.has(MARKER), false);
  });

  it('swaps back when the app is unhealthy on the sample', async () => {
    const vps = scene();
    let swapped = false;
    vps.host.on('migration (the sample is in)', DEV('run --rm --no-deps -T api alembic upgrade head'), () => {
      swapped = true;
      return {};
    });
    vps.health = (_env, service) =>
      swapped && service === 'api' ? { status: 'running', health: 'unhealthy', exitCode: 0 } : { status: 'running', health: 'healthy', exitCode: 0 };
    const r = await swap(vps);
    assert.match(String(r.error), /service api is unhealthy/);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres']);
    assert.deepEqual(r.records, ['swapped', 'swapped-back']);
    assert.equal(
      vps.host.calls.findIndex((c) => /DROP DATABASE IF EXISTS "?makapix_dev__ts_previous"?;/.test(c.stdin ?? '')),
      -1,
      "dev's own database was never dropped",
    );
  });

  it('when the way back fails too, says so and leaves the undo script for the next operation on dev', async () => {
    const vps = scene();
    vps.host.on('migration fails', DEV('run --rm --no-deps -T api alembic upgrade head'), { exitCode: 1, stderr: 'boom' });
    vps.host.on('rename back fails', (s, c) => /RENAME TO "?makapix_dev__ts_staging"?;/.test(c.stdin ?? ''), {
      exitCode: 1,
      stderr: 'ERROR:  could not connect',
    });
    const r = await swap(vps);
    assert.ok(r.error instanceof SwapBackFailed, String(r.error));
    assert.match(String(r.error), /dev's own database is makapix_dev__ts_previous/);
    assert.ok(vps.databases.dev.has(NAMES.previous));
    assert.match(vps.host.files.get(MARKER)?.toString() ?? '', /put dev's database back/);
  });

  it('keeps the sample when only the drop of the old database fails, leaving that drop to the next operation', async () => {
    const vps = scene();
    // The finish script is written in place of the undo, then its drop fails (swap-pass.sh, exit 6).
    vps.host.on('drop fails', /^MARKER=(\S+); DIR=\S+; TMP=\S+; FINISH=/, (c, m) => {
      vps.host.files.set(m?.[1] ?? '', Buffer.from(shellValue(c.script, 'FINISH')));
      return { exitCode: 6, stderr: 'ERROR: busy' };
    });
    const r = await swap(vps);
    assert.equal(r.error, undefined);
    assert.match(r.log.text, /could not drop the previous dev database/);
    assert.match(vps.host.files.get(MARKER)?.toString() ?? '', /drop the database dev had before/);
  });
});

describe("resample's leftovers of a cut swap", () => {
  const recover = async (vps: FakeVps) => {
    const log = new MemoryLogger();
    const notes = await recoverLeftovers(new DevServer(vps.host, new Environment('dev', vps.config), 'postgres'), NAMES, log);
    vps.host.assertAllScripted();
    return notes;
  };

  it('puts the previous database back when the swap was cut after the first rename', async () => {
    const vps = scene();
    vps.databases.dev.delete('makapix_dev');
    vps.databases.dev.add(NAMES.previous);
    const notes = await recover(vps);
    assert.match(notes.join(), /found makapix_dev__ts_previous and no makapix_dev/);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres']);
  });

  it('puts the previous database back and drops the half-swapped one when both exist', async () => {
    const vps = scene();
    vps.databases.dev.add(NAMES.previous);
    const notes = await recover(vps);
    assert.match(notes.join(), /beside makapix_dev/);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres']);
    const renamed = vps.host.calls.filter((c) => /RENAME TO/.test(c.stdin ?? '')).map((c) => /RENAME TO "?(\w+)"?/.exec(c.stdin ?? '')?.[1]);
    assert.deepEqual(renamed, [NAMES.staging, 'makapix_dev']);
  });

  it('drops a staging database left by an earlier run', async () => {
    const vps = scene();
    const notes = await recover(vps);
    assert.match(notes.join(), /dropped a staging database/);
    assert.deepEqual(databases(vps), ['makapix_dev', 'postgres']);
  });
});
