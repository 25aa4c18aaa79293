/**
 * restore's refusals, against a fake host: a target no base backup is old enough for is refused
 * after reading the base backups and before anything is created (no scratch directory, no
 * container, prod's services never stopped), recorded in the host log, and the summary says prod's
 * database was not touched. The recovery itself is proven in test/integration/pitr.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { restoreAction } from '../../src/actions/restore/restore';
import { OperationFailed } from '../../src/infra/errors';
import { FakeVps } from '../support/fake-vps';
import { runOnFake } from '../support/run-action';

const LABEL = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
START TIME: 2026-12-04 18:00:00 UTC
LABEL: twinstack base 20261204T180000Z
`;

function scene(): FakeVps {
  const vps = new FakeVps('backup:\n  dir: /var/backups/twinstack\n  wal: { enabled: true }\n');
  // One base backup, whole at 18:01:00 (its backup_manifest's mtime).
  const finished = Date.parse('2026-12-04T18:01:00Z') / 1000 - 1;
  vps.host.on('list base backups', /^ROOT=\/var\/backups\/twinstack\/prod\/base\n/, {
    stdout: `@@base ${finished} /var/backups/twinstack/prod/base/20261204T180000Z\n${LABEL}`,
  });
  return vps;
}

describe('restore: refusals', () => {
  it('refuses a target before the oldest base backup was whole, before anything is created or stopped', async () => {
    const vps = scene();
    const r = await runOnFake(restoreAction, vps, { target: '2026-12-04T18:00:30Z' });
    assert.ok(r.error instanceof OperationFailed, String(r.error));
    assert.match(
      r.failure,
      /no base backup was whole before 2026-12-04T18:00:30\.000Z: the oldest, .*finished at 2026-12-04T18:01:00\.000Z; choose a later target/,
    );
    const h = vps.host;
    assert.equal(h.indexOf(/^docker run /), -1, 'a container was started');
    assert.ok(h.indexOf(/^ROOT=/) >= 0, 'the base backups were not read');
    assert.equal(h.scripts().filter((s) => /prod\/pitr|compose.* stop /.test(s)).length, 0, 'a scratch directory was made or prod was stopped');
    vps.host.assertAllScripted();
    const rec = vps.last('prod', 'restore');
    assert.deepEqual([rec?.status, rec?.stage, rec?.target], ['failed', 'recover', '2026-12-04T18:00:30.000Z']);
    assert.match(r.summary, /prod's database was not touched/);
  });

  it('refuses an unknown target before connecting', async () => {
    const vps = scene();
    const r = await runOnFake(restoreAction, vps, { target: 'before the migration' });
    assert.match(r.failure, /input target "before the migration" must be latest or a UTC time/);
    assert.deepEqual(vps.host.scripts(), []);
  });
});
