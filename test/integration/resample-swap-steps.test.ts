/**
 * The swap's merged steps on a real PostgreSQL through a real sshd: the undo and the renames run
 * as one host script, and the finish script and the drop as another. A failure inside either
 * leaves what the steps it merged left before: dev's own database comes back when the renames
 * stop partway, and a drop that fails stays on the host for the next operation on dev.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { Environment } from '../../src/domain/environment';
import { underLock } from '../../src/domain/operation';
import { DevServer, NO_SERVICES, databaseNames, swapIn } from '../../src/resample/swap';
import { RUN, runSql, startWorld, type World } from './resample-support';

let w: World;
const NAMES = databaseNames('makapix_dev');

before(async () => {
  w = await startWorld(20);
});
after(async () => {
  await w?.stop();
});

const pendingFile = () => path.join(w.config()['state-dir'], 'dev', 'pending', 'resample-swap.sh');
const devMarker = () => runSql(w.dev, 'makapix_dev', "SELECT string_agg(what, ',') FROM swap_marker").trim();
const leftovers = () => w.databases(w.dev).filter((d) => d.includes('__ts_'));

/** dev's database says "own", a staging database beside it says "sample". */
beforeEach(() => {
  for (const d of [NAMES.staging, NAMES.previous]) w.dev.psql(`DROP DATABASE IF EXISTS ${d}`);
  runSql(w.dev, 'makapix_dev', "DROP TABLE IF EXISTS swap_marker; CREATE TABLE swap_marker (what text); INSERT INTO swap_marker VALUES ('own');");
  w.dev.psql(`CREATE DATABASE ${NAMES.staging}`);
  runSql(w.dev, NAMES.staging, "CREATE TABLE swap_marker (what text); INSERT INTO swap_marker VALUES ('sample');");
});

function swap(records: string[]) {
  const config = w.config();
  return swapIn({
    server: new DevServer(w.host, new Environment('dev', config), 'postgres'),
    names: NAMES,
    services: NO_SERVICES,
    migrate: () => Promise.resolve(),
    log: w.log,
    record: (event) => Promise.resolve(records.push(event)),
    pendingDir: path.dirname(pendingFile()),
    hadDev: true,
  });
}

describe("the swap's renames, in one round trip after the undo", () => {
  it('put staging in place and drop the database dev had, leaving no undo', async () => {
    const records: string[] = [];
    await swap(records);
    assert.equal(devMarker(), 'sample');
    assert.deepEqual(leftovers(), []);
    assert.ok(!fs.existsSync(pendingFile()));
    assert.deepEqual(records, ['swapped']);
  });

  it("stopped after dev's database went aside (staging's rename fails): dev's own database comes back", async () => {
    // Someone dropped staging: the session renames dev aside, then fails on staging.
    w.dev.psql(`DROP DATABASE ${NAMES.staging}`);
    const records: string[] = [];
    await assert.rejects(swap(records), /makapix_dev__ts_staging/);
    assert.equal(devMarker(), 'own');
    assert.deepEqual(leftovers(), []);
    assert.ok(!fs.existsSync(pendingFile()), 'the undo goes once dev is back');
    assert.deepEqual(records, ['swapped-back']);
  });
});

describe("the swap's finish, in one round trip", () => {
  it('leaves a drop that fails on the host, and the next operation on dev drops that database', async () => {
    // A template database cannot be dropped: the finish script fails once it is in place.
    w.dev.psql('ALTER DATABASE makapix_dev IS_TEMPLATE true');
    await swap([]);
    assert.equal(devMarker(), 'sample', 'the swap passed: dev runs on the sample');
    assert.deepEqual(leftovers(), [NAMES.previous]);
    assert.match(fs.readFileSync(pendingFile(), 'utf8'), /^# resample swap of dev passed .*: drop the database dev had before/);
    assert.match(w.log.text, /could not drop the previous dev database makapix_dev__ts_previous: .*template/);

    w.dev.psql(`ALTER DATABASE ${NAMES.previous} IS_TEMPLATE false`);
    const config = w.config();
    await underLock(
      {
        host: w.host,
        stateDir: config['state-dir'],
        env: 'dev',
        project: config.environments.dev.project,
        action: 'deploy',
        run: RUN,
        log: w.log,
        lockTimeoutSeconds: 30,
      },
      () => Promise.resolve(),
    );
    assert.deepEqual(leftovers(), []);
    assert.equal(devMarker(), 'sample');
    assert.ok(!fs.existsSync(pendingFile()));
  });
});
