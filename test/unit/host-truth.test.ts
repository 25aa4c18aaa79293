/** The pure logic behind "the host is the source of truth": drift, the release stack, the run deadline. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { runDeadline } from '../../src/actions/runner';
import type { LogRecord } from '../../src/domain/host-log';
import { releaseStack } from '../../src/domain/release';
import { drift, type ObservedState } from '../../src/domain/state';

let t = 0;
function rec(fields: Record<string, unknown>): LogRecord {
  t++;
  return { v: 1, time: `2026-01-01T00:00:${String(t).padStart(2, '0')}Z`, env: 'prod', action: 'x', op: `op${t}`, event: 'release', ...fields } as LogRecord;
}
const img = (id: string) => ({ api: { name: 'p-api:local', id, tag: `twinstack/p-api:${id}` } });

describe('releaseStack', () => {
  it('promote A→B, rollback (→A), rollback again: never back to B', () => {
    const records = [
      rec({ release: 'A', sha: 'a', kind: 'deploy', images: img('a') }),
      rec({ release: 'B', sha: 'b', kind: 'promote', images: img('b'), previous: 'A' }),
    ];
    let s = releaseStack(records);
    assert.equal(s.current?.release, 'B');
    assert.equal(s.target?.release, 'A');
    records.push(rec({ release: 'A', sha: 'a', kind: 'rollback', images: img('a'), rolledBackFrom: 'B' }));
    s = releaseStack(records);
    assert.equal(s.current?.release, 'A');
    assert.equal(s.target, undefined, 'A replaced nothing: there is nowhere to go, and certainly not B');
  });

  it('three releases, two rollbacks: R3→R2→R1', () => {
    const records = [
      rec({ release: 'R1', sha: '1', kind: 'deploy', images: img('1') }),
      rec({ release: 'R2', sha: '2', kind: 'deploy', images: img('2'), previous: 'R1' }),
      rec({ release: 'R3', sha: '3', kind: 'deploy', images: img('3'), previous: 'R2' }),
    ];
    assert.equal(releaseStack(records).target?.release, 'R2');
    records.push(rec({ release: 'R2', sha: '2', kind: 'rollback', images: img('2'), previous: 'R1', rolledBackFrom: 'R3' }));
    assert.equal(releaseStack(records).target?.release, 'R1');
    records.push(rec({ release: 'R1', sha: '1', kind: 'rollback', images: img('1'), rolledBackFrom: 'R2' }));
    const s = releaseStack(records);
    assert.equal(s.current?.release, 'R1');
    assert.equal(s.target, undefined);
    assert.deepEqual([...s.rolledBackFrom].sort(), ['R2', 'R3']);
  });

  it('a new deploy after rollbacks replaces the release that ran; a rolled-back-from release in the chain is passed over', () => {
    const records = [
      rec({ release: 'R1', sha: '1', kind: 'deploy', images: img('1') }),
      rec({ release: 'R2', sha: '2', kind: 'deploy', images: img('2'), previous: 'R1' }),
      rec({ release: 'R3', sha: '3', kind: 'deploy', images: img('3'), previous: 'R2' }),
      rec({ release: 'R1', sha: '1', kind: 'rollback', images: img('1'), rolledBackFrom: 'R3' }),
      rec({ release: 'R2', sha: '2', kind: 'rollback', images: img('2'), rolledBackFrom: 'R1' }),
    ];
    // R2 runs; it replaced R1, which a rollback left: passed over, and R1 replaced nothing.
    const s = releaseStack(records);
    assert.equal(s.target, undefined);
    assert.deepEqual(s.skipped, ['R1']);
    records.push(rec({ release: 'R4', sha: '4', kind: 'deploy', images: img('4'), previous: 'R2' }));
    assert.equal(releaseStack(records).target?.release, 'R2');
  });

  it('records written before releases knew their predecessor: the release that ran before', () => {
    const records = [rec({ release: 'R1', sha: '1', kind: 'deploy', images: img('1') }), rec({ release: 'R2', sha: '2', kind: 'deploy', images: img('2') })];
    assert.equal(releaseStack(records).target?.release, 'R1');
    // The old rollback records said `from`.
    records.push(rec({ release: 'R1', sha: '1', kind: 'rollback', images: img('1'), from: 'R2' }));
    assert.equal(releaseStack(records).target, undefined);
  });

  it("promote's automatic rollback (the failed release was never recorded) is not a rollback from anything", () => {
    const records = [
      rec({ release: 'R1', sha: '1', kind: 'deploy', images: img('1') }),
      rec({ release: 'R2', sha: '2', kind: 'promote', images: img('2'), previous: 'R1' }),
      rec({ release: 'R2', sha: '2', kind: 'rollback', images: img('2'), previous: 'R1' }),
    ];
    const s = releaseStack(records);
    assert.equal(s.rolledBackFrom.size, 0);
    assert.equal(s.target?.release, 'R1');
  });
});

describe('drift', () => {
  const observed = (over: Partial<ObservedState> = {}): ObservedState => ({
    environment: 'dev',
    head: 'a'.repeat(40),
    containers: [],
    images: { api: 'sha256:1111', db: 'sha256:2222' },
    time: '',
    ...over,
  });
  const release = {
    release: 'R1',
    sha: 'a'.repeat(40),
    images: { api: { name: 'x', id: 'sha256:1111', tag: 't' }, db: { name: 'y', id: 'sha256:2222', tag: 'u' } },
  };

  it('none when the checkout and every image match', () => {
    assert.deepEqual(drift(observed(), release), []);
  });
  it('names the checkout, a changed image, a missing and an extra service', () => {
    const d = drift(observed({ head: 'b'.repeat(40), images: { api: 'sha256:9999', worker: 'sha256:3333' } }), release);
    assert.equal(d.length, 4, d.join('\n'));
    assert.match(d[0], /checkout is at bbbbbbbbbbbb, not at the release's commit aaaaaaaaaaaa/);
    assert.match(d.join('\n'), /service api runs image 9999, not the release's 1111/);
    assert.match(d.join('\n'), /service db has no container/);
    assert.match(d.join('\n'), /service worker runs, but is not part of the release/);
  });
  it('names a release directory the containers run from when it moved to another commit, or is gone', () => {
    const dir = '/srv/state/releases/prod/' + 'a'.repeat(40);
    assert.deepEqual(drift(observed({ runsFrom: [{ dir, head: 'a'.repeat(40), services: ['api', 'db'] }] }), release), []);
    const moved = drift(observed({ runsFrom: [{ dir, head: 'c'.repeat(40), services: ['api', 'db'] }] }), release);
    assert.deepEqual(moved, [`services api, db run from ${dir}, at cccccccccccc, not at the release's commit aaaaaaaaaaaa`]);
    const gone = drift(observed({ runsFrom: [{ dir, head: 'missing', services: ['api'] }] }), release);
    assert.deepEqual(gone, [`service api runs from ${dir}, which no longer exists`]);
  });
  it('containers without any release on record are drift; an empty host with no record is not', () => {
    assert.equal(drift(observed({ containers: [{} as never] }), undefined).length, 1);
    assert.deepEqual(drift(observed({ containers: [], images: {} }), undefined), []);
  });
});

describe('the run deadline', () => {
  it('reads seconds since the epoch and refuses anything else in one line', () => {
    assert.equal(runDeadline('1700000000'), 1_700_000_000_000);
    assert.equal(runDeadline(''), undefined);
    assert.throws(() => runDeadline('soon'), /TWINSTACK_DEADLINE "soon" must be a time in seconds since the epoch/);
  });

  it('every workflow job that runs a twinstack action sets the deadline first, 5 minutes or more before its timeout', () => {
    const dir = path.resolve(__dirname, '../../.github/workflows');
    let checked = 0;
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.yml'))) {
      const wf = parse(fs.readFileSync(path.join(dir, file), 'utf8')) as {
        jobs: Record<string, { 'timeout-minutes'?: number; steps?: Array<{ uses?: string; run?: string }> }>;
      };
      for (const [name, job] of Object.entries(wf.jobs)) {
        const steps = job.steps ?? [];
        if (!steps.some((s) => /\/twinstack\/actions\//.test(s.uses ?? ''))) continue;
        checked++;
        const timeout = job['timeout-minutes'];
        assert.ok(timeout && timeout <= 360, `${file} ${name}: timeout-minutes ${timeout} (GitHub-hosted jobs stop at 360)`);
        const m = /TWINSTACK_DEADLINE=\$\(\( \$\(date \+%s\) \+ \((\d+) - (\d+)\) \* 60 \)\)/.exec(steps[0].run ?? '');
        assert.ok(m, `${file} ${name}: the first step does not set TWINSTACK_DEADLINE`);
        assert.equal(Number(m[1]), timeout, `${file} ${name}: the deadline is computed from ${m[1]} minutes, the job's timeout is ${timeout}`);
        assert.ok(Number(m[2]) >= 5, `${file} ${name}: the deadline leaves only ${m[2]} minutes`);
      }
    }
    assert.ok(checked >= 5, `only ${checked} jobs checked`);
  });
});
