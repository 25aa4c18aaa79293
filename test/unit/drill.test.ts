/**
 * The restore drill's pure parts: backup.drill in the config (smoke queries go through
 * PostgreSQL's parser and the allowlist, as sample SQL does; thresholds have defaults), where the
 * scratch server's replay ended as its log says, which WAL segment that makes corrupt or missing,
 * and the row-count comparison with the dump's manifest (rows may only grow).
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { compareWithManifest, replayEnd, walProblem } from '../../src/domain/drill';
import { ConfigurationError } from '../../src/infra/errors';

const ENV = { checkout: '/srv/x', project: 'x', 'compose-files': ['a.yml'], 'env-file': '.env', url: 'https://x.example', database: { name: 'x', user: 'x' } };
const envs = `environments:\n  prod: ${JSON.stringify(ENV)}\n  dev: ${JSON.stringify({ ...ENV, checkout: '/srv/y', project: 'y', database: { name: 'y', user: 'y' } })}\n`;
const withDrill = (drill: string) => parseConfig(`${envs}backup:\n  drill: ${drill}\n`, 'twinstack.yml');

describe('backup.drill in the config', () => {
  it('has thresholds by default and takes SELECTs with or without an expected value', () => {
    const d = parseConfig(envs, 't').backup.drill;
    assert.deepEqual(d, { 'max-rto-seconds': 1800, 'max-rpo-seconds': 86400, smoke: [] });
    const s = withDrill(`{ max-rpo-seconds: 3600, smoke: ['SELECT count(*) FROM users', { sql: "SELECT max(id) > 0 FROM posts", expect: 't' }] }`).backup.drill;
    assert.deepEqual(s.smoke, [
      { sql: 'SELECT count(*) FROM users', expect: undefined },
      { sql: 'SELECT max(id) > 0 FROM posts', expect: 't' },
    ]);
    assert.equal(s['max-rpo-seconds'], 3600);
  });
  it('refuses a smoke query that writes or calls a function off the allowlist, in one line', () => {
    for (const bad of [
      'DELETE FROM users',
      "SELECT pg_read_file('/etc/passwd')",
      'SELECT 1; DROP TABLE users',
      'SELECT "pg_catalog".lo_export(1, \'/tmp/x\')',
    ]) {
      assert.throws(
        () => withDrill(`{ smoke: [${JSON.stringify(bad)}] }`),
        (e: Error) => e instanceof ConfigurationError && /backup\.drill\.smoke/.test(e.message) && !e.message.includes('\n'),
        bad,
      );
    }
  });
});

describe('where the replay ended', () => {
  it('names the segment of the record it could not read, else the last one restored', () => {
    const log = 'LOG:  restored log file "000000010000000000000003" from archive\nLOG:  incorrect resource manager data checksum in record at 0/3012A40\n';
    assert.deepEqual(replayEnd(log, 1), { segment: '000000010000000000000003', line: 'incorrect resource manager data checksum in record at 0/3012A40' });
    assert.deepEqual(replayEnd('LOG:  restored log file "000000010000000000000005" from archive\nLOG:  redo done at 0/5000110\n', 1), {
      segment: '000000010000000000000005',
    });
  });
  it('is a problem only before the last archived segment: a corrupt one, or the next one missing', () => {
    const archive = ['000000010000000000000002', '000000010000000000000003', '000000010000000000000005'];
    assert.equal(walProblem({ segment: '000000010000000000000005' }, archive), undefined);
    assert.match(walProblem({ segment: '000000010000000000000003' }, archive) ?? '', /^WAL segment 000000010000000000000004 is missing from the archive/);
    assert.match(
      walProblem({ segment: '000000010000000000000002', line: 'invalid magic number 0000 in log segment' }, archive) ?? '',
      /^WAL segment 000000010000000000000002 is corrupt: .*invalid magic/,
    );
    assert.match(
      walProblem({ segment: '0000000100000000000000FF' }, ['0000000100000000000000FF', '000000010000000100000001']) ?? '',
      /000000010000000100000000 is missing/,
    );
  });
});

describe('row counts against the manifest', () => {
  it('allows more rows, names fewer and missing tables', () => {
    const r = compareWithManifest(
      { 'public.a': 5, 'public.b': 5, 'public.c': 5 },
      new Map([
        ['public.a', 6],
        ['public.b', 4],
      ]),
    );
    assert.deepEqual(r.problems, ['table public.b has 4 rows, 5 in the dump', 'table public.c is missing']);
    assert.equal(r.checks.length, 3);
  });
});
