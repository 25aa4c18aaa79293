/** The one layer for remote operations: host-log records checked when read, and psql built in one place. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { latest, parseLog } from '../../src/domain/host-log';
import { MemoryLogger } from '../../src/infra/logger';
import { dropDatabaseSql, psql, renameDatabaseSql, STDIN_SCRIPT, type DbClient } from '../../src/infra/postgres';
import type { Arg } from '../../src/infra/shell';
import { Summary } from '../../src/infra/summary';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gateSummary } from '../../src/actions/gate/gate';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import type { TestCase } from '../../src/infra/junit';
import type { ResampleReport } from '../../src/resample/engine';
import { resampleSummary } from '../../src/resample/report';

const CONFIG = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');

const line = (fields: Record<string, unknown>) => JSON.stringify({ v: 1, time: '2026-01-01T00:00:00Z', env: 'dev', action: 'gate', op: 'o1', ...fields });

describe('host log schema', () => {
  it('keeps well-formed records, with the fields it does not know passing through', () => {
    const text = [
      line({ event: 'started' }),
      line({ event: 'gate', sha: 'a'.repeat(40), passed: true, images: { api: 'sha256:1' }, apiImage: 'sha256:1', tests: { passed: 3 } }),
      line({ event: 'finished', outcome: 'success' }),
    ].join('\n');
    const records = parseLog(text, 'log.jsonl');
    assert.deepEqual(
      records.map((r) => r.event),
      ['started', 'gate', 'finished'],
    );
    const gate = latest(records, 'gate');
    assert.equal(gate?.images?.api, 'sha256:1');
    assert.deepEqual(gate?.tests, { passed: 3 });
  });

  it('skips and reports a record whose decisive fields are wrong, an unknown event and a cut line', () => {
    const log = new MemoryLogger();
    const text = [
      line({ event: 'gate', sha: 'a'.repeat(40), passed: 'yes' }),
      line({ event: 'release', release: 'r1', sha: 'b'.repeat(40), kind: 'deploy' }),
      line({ event: 'teleported' }),
      '{"v":1,"time":"2026-01-01T00:',
      line({ event: 'release', release: 'r2', sha: 'c'.repeat(40), kind: 'promote', images: { api: { name: 'x', id: 'sha256:2', tag: 't' } } }),
    ].join('\n');
    const records = parseLog(text, 'log.jsonl', log);
    assert.deepEqual(
      records.map((r) => (r.event === 'release' ? r.release : r.event)),
      ['r2'],
      'a gate that did not say passed: true, a release without images: never trusted',
    );
    const warning = log.lines.find((l) => /warning/.test(l)) ?? '';
    assert.match(warning, /4 line\(s\) are not twinstack records/);
    assert.match(warning, /line 1: gate: passed: Expected boolean/);
    assert.match(warning, /line 2: release: images: Required/);
    assert.match(warning, /line 3: unknown event "teleported"/);
  });
});

describe('psql wrapper', () => {
  const client: DbClient = { dbTool: (tool: string, args: readonly Arg[]) => [tool, ...args.map(String)].join(' ') };

  it('always runs without psqlrc, quietly, stopping at the first error, with standard strings, reading a script from stdin by default', () => {
    assert.equal(psql(client, 'app'), 'psql -X -q -v ON_ERROR_STOP=1 -d app -c SET standard_conforming_strings = on -f -');
  });

  it('keeps the order of commands and the stdin script, and may replay lines expected to fail', () => {
    assert.equal(
      psql(client, 'st', { tuples: true, run: ['SET x = 1', STDIN_SCRIPT, 'SELECT 1'] }),
      'psql -X -q -v ON_ERROR_STOP=1 -A -t -d st -c SET standard_conforming_strings = on -c SET x = 1 -f - -c SELECT 1',
    );
    assert.equal(psql(client, 'st', { output: '/dev/null', stopOnError: false }), 'psql -X -q -o /dev/null -d st -c SET standard_conforming_strings = on -f -');
    assert.equal(psql(client, 'st', { run: [] }), 'psql -X -q -v ON_ERROR_STOP=1 -d st');
  });

  it('quotes database names in the shared rename and drop SQL', () => {
    const sql = renameDatabaseSql('a"b', "c'd");
    assert.match(sql, /WHERE a\.datname = 'a"b'/);
    assert.match(sql, /ALTER DATABASE "a""b" RENAME TO "c'd";\n$/);
    assert.match(dropDatabaseSql("x'y"), /datname = 'x''y'[\s\S]*DROP DATABASE IF EXISTS "x'y";/);
  });
});

describe('job summaries', () => {
  it('keep app output inside its code block, whatever backticks it prints', () => {
    const logs = 'ok\n```\n# Deployed fine, ignore the error\n````\n</details>\n[click](https://example.test)';
    const md = new Summary().detailsCode('last log lines of api', logs).toMarkdown();
    const fence = /\n(`{5,})\n/.exec(md)?.[1];
    assert.equal(fence, '`````', 'the fence is longer than the longest backtick run in the logs');
    const inside = md.slice(md.indexOf(`${fence}\n`) + fence.length + 1, md.lastIndexOf(`\n${fence}`));
    assert.equal(inside, logs);
    assert.equal(md.split(fence).length, 3, 'exactly one opening and one closing fence');
  });
});

describe("the biggest job summaries stay under GitHub's 1 MiB a step", () => {
  const MiB = 1024 * 1024;

  it('a failing gate with 500 failed tests, each with a long message', () => {
    const cases: TestCase[] = Array.from({ length: 500 }, (_, i) => ({
      id: `tests.test_big::test_${i}`,
      name: `test_${i}`,
      classname: 'tests.test_big',
      file: 'tests/test_big.py',
      line: i + 1,
      seconds: i / 100,
      result: 'failed',
      message: `AssertionError: ${'x'.repeat(3000)}`,
    }));
    const md = gateSummary(new Environment('dev', parseConfig(CONFIG, 'c')), {
      sha: 'a'.repeat(40),
      release: 'r1',
      images: { api: 'sha256:1' },
      tests: { cases, passed: 0, failed: 500, skipped: 0 },
      problems: ['500 tests failed'],
    }).toMarkdown();
    assert.ok(Buffer.byteLength(md) < MiB / 2, `${Buffer.byteLength(md)} bytes`);
    assert.match(md, /… and 400 more rows, not shown here/);
    assert.match(md, /tests\.test_big::test_0 /);
  });

  it('a resample report of a 60-table schema with 200 foreign keys', () => {
    const tables = Array.from({ length: 60 }, (_, i) => ({
      table: `public.table_${i}`,
      mode: 'owned',
      prodRows: 1e6,
      prodRowsExact: true,
      copied: 1e5,
      rules: [`email: sql: ${'y'.repeat(800)}`],
      note: 'rows of sampled users',
      ownersCleared: [{ key: 'author_id → public.users', rows: 12 }],
      checkDrops: [],
    }));
    const foreignKeys = Array.from({ length: 200 }, (_, i) => ({
      name: `fk_${i}`,
      table: `public.table_${i % 60}`,
      columns: ['user_id'],
      refTable: 'public.users',
      policy: 'include',
      source: 'catalog',
      orphans: 0,
    }));
    const report = {
      dryRun: false,
      root: 'public.users',
      fraction: 0.1,
      seed: 's',
      tables,
      foreignKeys,
      leaks: [],
      probes: 10,
      warnings: [],
      swapped: true,
      sshBytes: { sent: 1, received: 1 },
      rowsCopied: 6e6,
      seconds: 100,
      phases: [],
      afterLoad: [],
    } as unknown as ResampleReport;
    const md = resampleSummary(report, { ok: true }).toMarkdown();
    assert.ok(Buffer.byteLength(md) < MiB / 2, `${Buffer.byteLength(md)} bytes`);
    assert.match(md, /public\.table_59/);
    assert.match(md, /… and 100 more rows/);
  });

  it('cuts whatever would still be too big, saying so', () => {
    const s = new Summary();
    for (let i = 0; i < 400; i++) s.text(`section ${i}: ${'z'.repeat(4000)}`);
    const md = s.toMarkdown();
    assert.ok(Buffer.byteLength(md) <= 512 * 1024 + 1024);
    assert.match(md, /more section\(s\) cut: the summary reached 512 KiB/);
  });
});

describe('errors from PostgreSQL in remote command errors', () => {
  it('never carry the values of a duplicated key, even under an expression index', async () => {
    const { scrubRowValues } = await import('../../src/infra/errors');
    const out = scrubRowValues('ERROR:  could not create unique index "users_handle_lower"\nDETAIL:  Key (lower(handle))=(ada lovelace) is duplicated.');
    assert.ok(!out.includes('ada lovelace'), out);
    assert.match(out, /Key \(lower\(handle\)\)=\(values not shown\) is duplicated/);
    assert.match(scrubRowValues('DETAIL:  Key (email)=(a@b.c) already exists.'), /Key \(email\)=\(values not shown\) already exists/);
  });

  it('never carry a value that holds newlines, in the message, the stderr, a tail of lines or a migration line', async () => {
    const { RemoteCommandError, scrubRowValues, tailLines } = await import('../../src/infra/errors');
    const { migrationErrorLine } = await import('../../src/domain/alembic');
    // As PostgreSQL 15 prints it (psql), a row whose text value and PEM key span lines.
    const stderr = [
      'ERROR:  new row for relation "keys" violates check constraint "keys_note_check"',
      'DETAIL:  Failing row contains (2, null, first line | second line, t, null, -----BEGIN PUBLIC KEY-----',
      'MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo',
      '-----END PUBLIC KEY-----).',
      'ERROR:  duplicate key value violates unique constraint "u_handle_key"',
      'DETAIL:  Key (handle)=(ada',
      'lovelace) already exists.',
    ].join('\n');
    const e = new RemoteCommandError({ command: 'psql', exitCode: 3, signal: null, stderr });
    const outputs = [scrubRowValues(stderr), e.message, e.stderr, tailLines(stderr, 5), migrationErrorLine(`sqlalchemy.exc.IntegrityError: ${stderr}`)];
    for (const out of outputs) {
      for (const fragment of ['first line', 'second line', 'BEGIN PUBLIC KEY', 'MIIBIjAN', 'END PUBLIC KEY', 'ada', 'lovelace']) {
        assert.ok(!out.includes(fragment), `"${fragment}" in ${out}`);
      }
    }
    assert.match(e.message, /violates check constraint "keys_note_check" \| DETAIL: {2}Failing row contains \(values not shown;/);
  });
});
