/**
 * The restore drill (restore with drill: true), against a fake host: it recovers in a scratch
 * server and never touches prod (no lock, no compose command, no command in prod's containers, no
 * restore script), removes the scratch server and directory on success and failure, records a
 * `drill` host-log line, and fails naming what is wrong: a table with fewer rows than the newest
 * verified dump, a smoke query without its value, an RPO or RTO over its threshold, a corrupt WAL
 * segment named from the scratch server's log. The recovery itself is proven against a real
 * PostgreSQL in test/integration/drill.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { restoreAction } from '../../src/actions/restore/restore';
import { runDrill } from '../../src/domain/drill';
import { Environment } from '../../src/domain/environment';
import { MemoryLogger } from '../../src/infra/logger';
import { FakeVps, sha } from '../support/fake-vps';
import { runOnFake } from '../support/run-action';

const LABEL = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
START TIME: 2026-12-04 18:00:00 UTC
LABEL: twinstack base 20261204T180000Z
`;
const SCRATCH = 'makapix-prod-twinstack-pitr';
const REPLAYED_TO_END = `LOG:  restored log file "000000010000000000000003" from archive
LOG:  restored log file "000000010000000000000004" from archive
LOG:  invalid record length at 0/4000148: wanted 24, got 0
LOG:  redo done at 0/4000110 system usage: CPU: user: 0.01 s
`;
const CORRUPT_3 = `LOG:  restored log file "000000010000000000000003" from archive
LOG:  incorrect resource manager data checksum in record at 0/3012A40
LOG:  redo done at 0/3012A08 system usage: CPU: user: 0.01 s
`;

interface Scene {
  config?: string;
  /** The recovered copy's counts (the dump has users 10, posts 20). */
  recovered?: string;
  /** The last transaction replayed. */
  point?: Date;
  log?: string;
  smoke?: string;
}

function scene(s: Scene = {}): FakeVps {
  const vps = new FakeVps(`backup:\n  dir: /var/backups/twinstack\n  verify: restore\n  wal: { enabled: true }\n${s.config ?? ''}`);
  vps.runRelease('prod', sha('a'), 'r20260101T000000Z-aaaaaaa');
  const h = vps.host;
  const manifest = {
    id: 'b20261204T170000Z-prod',
    env: 'prod',
    status: 'verified',
    time: '2026-12-04T17:00:00Z',
    finishedAt: '2026-12-04T17:00:05Z',
    database: 'makapix',
    rowCounts: { 'public.posts': 20, 'public.users': 10 },
    files: {},
    durationSeconds: 5,
    timings: { dump: 1, globals: 1, verify: 3 },
    tools: {},
    verification: { method: 'restore', ok: true, detail: '' },
  };
  h.on('list manifests', /^BASE=\/var\/backups\/twinstack\/prod\n/, { stdout: `${JSON.stringify(manifest)}\n@@twinstack-manifest@@\n` });
  const finished = Date.parse('2026-12-04T18:01:00Z') / 1000 - 1;
  h.on('list base backups', /^ROOT=\/var\/backups\/twinstack\/prod\/base\n/, {
    stdout: `@@base ${finished} /var/backups/twinstack/prod/base/20261204T180000Z\n${LABEL}`,
  });
  h.on('list the archive', /^find \/var\/backups\/twinstack\/prod\/wal /, {
    stdout: '000000010000000000000002\n000000010000000000000003\n000000010000000000000004.partial\n',
  });
  h.on('inspect prod db', /^docker inspect --type container \S+$/, (c) => ({
    stdout: JSON.stringify([
      {
        Id: c.script.split(' ').at(-1),
        Name: '/makapix-prod-db-1',
        Image: 'sha256:db',
        HostConfig: { NetworkMode: 'makapix-prod_default' },
        NetworkSettings: { Networks: { 'makapix-prod_default': {} } },
      },
    ]),
  }));
  h.on('scratch root', /^install -d -m 700 \/var\/backups\/twinstack\/prod\/pitr$/, {});
  h.on('scratch dir', /^mkdir -m 700 \/var\/backups\/twinstack\/prod\/pitr\//, {});
  h.on('old scratch', new RegExp(`^docker rm -f ${SCRATCH}$`), {});
  h.on('unpack', new RegExp(`^docker run --rm --name ${SCRATCH} `), {});
  h.on('scratch server', new RegExp(`^docker run -d --init --name ${SCRATCH} `), {});
  const point = (s.point ?? new Date(Date.now() - 60_000)).toISOString();
  h.on('in recovery?', /pg_is_in_recovery/, { stdout: 'f\n' });
  h.on('point and revision', /pg_last_xact_replay_timestamp/, { stdout: `${point}\nr1\n` });
  h.on('row counts', (script, call) => script.includes(SCRATCH) && (call.stdin ?? '').includes('gexec'), {
    stdout: s.recovered ?? 'count:public.posts:25\ncount:public.users:10\n',
  });
  h.on('scratch log', new RegExp(`^docker logs .*${SCRATCH}`), { stdout: s.log ?? REPLAYED_TO_END });
  h.on('smoke', /default_transaction_read_only/, { stdout: s.smoke ?? '10\n' });
  h.on('clean up', new RegExp(`^NAME=${SCRATCH};`), {});
  return vps;
}

/** No command reached prod: its containers, its compose project, its database, its lock. */
function assertProdUntouched(vps: FakeVps): void {
  const h = vps.host;
  assert.deepEqual(h.scripts(/docker-compose|docker compose/), [], 'a compose command ran');
  assert.deepEqual(h.scripts(/makapix-prod-db|restore-backup|pg_restore|flock|lock-holder|pending/), [], 'prod was touched');
  assert.deepEqual(
    h.scripts(/^docker (run|exec|start|stop|restart|rm)/).filter((x) => !x.includes(SCRATCH)),
    [],
    'a container other than the scratch server was run or changed',
  );
}

function cleanedUp(vps: FakeVps): boolean {
  const h = vps.host;
  return h.lastIndexOf(new RegExp(`^NAME=${SCRATCH};`)) > h.lastIndexOf(new RegExp(`^docker (run|exec) .*${SCRATCH}`, 's'));
}

describe('restore drill', () => {
  it('passes, reports RTO and RPO, removes the scratch recovery and never touches prod', async () => {
    const vps = scene({ config: "  drill: { smoke: [{ sql: 'SELECT count(*) FROM users', expect: '10' }] }\n" });
    const r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.equal(r.error, undefined, r.failure);
    vps.host.assertAllScripted();
    assertProdUntouched(vps);
    assert.ok(cleanedUp(vps), 'the scratch recovery was not removed');
    assert.ok(Number(r.outputs['rpo-seconds']) >= 60, r.outputs['rpo-seconds']);
    assert.ok(Number(r.outputs['rto-seconds']) >= 0);
    const rec = vps.last('prod', 'drill');
    assert.deepEqual([rec?.status, rec?.backup, rec?.problems], ['passed', 'b20261204T170000Z-prod', []]);
    assert.match(r.summary, /RTO \*\*[\d.]+ s\*\* \(limit 1800\), RPO \*\*[\d.]+ s\*\* \(limit 86400\)/);
    assert.match(r.summary, /public\.posts \| 20 \| 25/);
  });

  it('fails naming a table with fewer rows than the dump and a missing one', async () => {
    const vps = scene({ recovered: 'count:public.posts:19\n' });
    const r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.match(r.failure, /restore drill failed: table public\.posts has 19 rows, 20 in the dump \(and 1 more\)/);
    assert.deepEqual(vps.last('prod', 'drill')?.problems, ['table public.posts has 19 rows, 20 in the dump', 'table public.users is missing']);
    assert.ok(cleanedUp(vps));
    assertProdUntouched(vps);
  });

  it('fails naming a corrupt WAL segment from the scratch server log', async () => {
    const vps = scene({ log: CORRUPT_3 });
    const r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.match(r.failure, /WAL segment 000000010000000000000003 is corrupt: .*incorrect resource manager data checksum in record at 0\/3012A40/);
    assert.ok(!r.failure.includes('\n'));
    assert.ok(cleanedUp(vps));
  });

  it('fails when the RPO is over backup.drill.max-rpo-seconds', async () => {
    const vps = scene({ point: new Date(Date.now() - 3 * 86400_000), config: '  drill: { max-rpo-seconds: 86400 }\n' });
    const r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.match(r.failure, /restore drill failed: RPO 2592\d\d(\.\d)? s is over backup\.drill\.max-rpo-seconds \(86400\)/);
    assert.equal(vps.last('prod', 'drill')?.status, 'failed');
    assertProdUntouched(vps);
  });

  it('fails when the RTO is over backup.drill.max-rto-seconds', async () => {
    const vps = scene({ config: '  drill: { max-rto-seconds: 600 }\n' });
    // The drill's clock: started now, checks answered 601 s later.
    const t0 = Date.now();
    const times = [t0, t0 + 601_000];
    const report = await runDrill(
      { host: vps.host, config: vps.config, env: new Environment('prod', vps.config), log: new MemoryLogger() },
      vps.config.backup.drill,
      () => new Date(times.shift() ?? t0),
    );
    assert.equal(report.rtoSeconds, 601);
    assert.deepEqual(report.problems, ['RTO 601 s is over backup.drill.max-rto-seconds (600)']);
    assert.ok(cleanedUp(vps));
  });

  it('fails naming a smoke query that returns another value', async () => {
    const vps = scene({ config: "  drill: { smoke: [{ sql: 'SELECT count(*) FROM users', expect: '11' }] }\n" });
    const r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.match(r.failure, /smoke query "SELECT count\(\*\) FROM users" returned 10, expected 11/);
  });

  it('a recovery that fails is reported, recorded and cleaned up', async () => {
    const vps = scene();
    vps.host.on('scratch stopped', new RegExp(`State\\.Running.* ${SCRATCH}$`), { stdout: 'false\n' });
    vps.host.on('in recovery (never)', /pg_is_in_recovery/, { exitCode: 2, stderr: 'no server' });
    const r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.match(r.failure, /restore drill: the recovery failed: the scratch server .* stopped before its recovery ended/);
    assert.equal(vps.last('prod', 'drill')?.status, 'failed');
    assert.ok(cleanedUp(vps));
    assertProdUntouched(vps);
  });

  it('refuses a target other than latest, or backups without row counts, before connecting', async () => {
    let r = await runOnFake(restoreAction, scene(), { target: '2026-12-04T18:00:30Z', drill: 'true' });
    assert.match(r.failure, /input target must be latest for a drill/);
    const vps = new FakeVps('backup:\n  wal: { enabled: true }\n');
    r = await runOnFake(restoreAction, vps, { target: 'latest', drill: 'true' });
    assert.match(r.failure, /set backup\.verify: restore/);
    assert.deepEqual(vps.host.scripts(), []);
  });
});
