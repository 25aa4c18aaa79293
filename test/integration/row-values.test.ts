/**
 * Row values that hold newlines, in the errors of a real PostgreSQL reached over the real sshd: no
 * fragment of a value reaches an error message, its stderr, a tail of lines or a migration's error line.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { migrationErrorLine } from '../../src/domain/alembic';
import { RemoteCommandError, tailLines } from '../../src/infra/errors';
import { argv } from '../../src/infra/shell';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let pg: TestPostgres;
let host: SshHost;

before(async () => {
  [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  host = await connect(sshd);
  pg.psql('create database rows');
});
after(async () => {
  await host?.close();
  await Promise.all([sshd?.stop(), pg?.stop()]);
});

const PEM = '-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n-----END PUBLIC KEY-----';
const literal = (v: string) => `E'${v.replace(/\\/g, '\\\\').replace(/'/g, "''").replace(/\n/g, '\\n')}'`;

/**
 * psql on the host over SSH, as twinstack runs it: `raw` is PostgreSQL's message as it came back, and
 * `e` the RemoteCommandError that host.run throws for that result (built the same way).
 */
async function failing(sql: string): Promise<{ e: RemoteCommandError; raw: string }> {
  const psql = argv(`${pg.bin}/psql`, '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', pg.port, '-U', pg.user, '-d', 'rows');
  const r = await host.run(psql, { stdin: sql, quiet: true, check: false });
  assert.notEqual(r.exitCode, 0, `expected psql to fail: ${r.stdout}`);
  return { e: new RemoteCommandError({ ...r, label: 'psql' }), raw: r.stderr };
}

/** Every piece of a value worth finding: each line of it, and each word of 4 characters or more. */
function fragments(...values: string[]): string[] {
  return [...new Set(values.flatMap((v) => [...v.split('\n'), ...v.split(/[\s,()]+/)]).filter((f) => f.trim().length >= 4))];
}

/** The ways an error reaches the log, the summary and the host log. */
function assertNoFragment({ e, raw }: { e: RemoteCommandError; raw: string }, values: string[]): void {
  // The value really was in PostgreSQL's message: the test shows the scrub, not a message without one.
  assert.ok(
    fragments(...values).some((f) => raw.includes(f)),
    `PostgreSQL's own message holds no value: ${raw}`,
  );
  const sqlalchemy = [
    'Traceback (most recent call last):',
    '  File "/usr/bin/alembic", line 8, in <module>',
    `psycopg2.errors.IntegrityError: ${raw.trim().replace(/^ERROR: {2}/, '')}`,
    '',
    'The above exception was the direct cause of the following exception:',
    '',
    'Traceback (most recent call last):',
    `sqlalchemy.exc.IntegrityError: (psycopg2.errors.IntegrityError) ${raw.trim().replace(/^ERROR: {2}/, '')}`,
    '[SQL: INSERT INTO t VALUES (%(a)s)]',
  ].join('\n');
  const outputs = { message: e.message, stderr: e.stderr, tail: tailLines(raw, 5), migration: migrationErrorLine(sqlalchemy) };
  for (const [where, text] of Object.entries(outputs)) {
    for (const f of fragments(...values)) assert.ok(!text.includes(f), `${where} carries "${f}": ${text}`);
  }
}

describe('PostgreSQL errors quoting a value that holds newlines', () => {
  it('a failing row (CHECK) keeps the constraint, not one fragment of the row', async () => {
    const note = 'first-line-of-a-note-9d1\nsecond-line-of-it-9d2';
    pg.psql('create table keys (id int primary key, a text, note text, ok bool, b text, pem text, check (length(note) < 5))', 'rows');
    const f = await failing(`insert into keys values (2, null, ${literal(note)}, true, null, ${literal(PEM)});\n`);
    assert.match(f.e.message, /violates check constraint "keys_note_check"/);
    assert.match(f.e.message, /Failing row contains \(values not shown; find the row on the host with the constraint named above\)\./);
    assertNoFragment(f, [note, PEM]);
  });

  it('a duplicate key, an exclusion conflict and a partition key', async () => {
    const handle = 'ada\nlovelace-private-handle';
    pg.psql(`create table u (handle text unique); insert into u values (${literal(handle)})`, 'rows');
    const dup = await failing(`insert into u values (${literal(handle)});\n`);
    assert.match(dup.e.message, /Key \(handle\)=\(values not shown\) already exists/);
    assertNoFragment(dup, [handle]);
    const span = ['[secret-range-one\n,zz]', '[secret-range-two\n,zz]'];
    pg.psql(`create table ex (r text, exclude using hash (r with =)); insert into ex values (${literal(span[0])})`, 'rows');
    const excl = await failing(`insert into ex values (${literal(span[0])});\n`);
    assert.match(excl.e.message, /Key \(r\)=\(values not shown\) conflicts with existing key \(r\)=\(values not shown\)/);
    assertNoFragment(excl, [span[0]]);
    pg.psql("create table pp (a text) partition by list (a); create table pp1 partition of pp for values in ('x')", 'rows');
    const part = await failing(`insert into pp values (${literal(span[1])});\n`);
    assert.match(part.e.message, /Partition key of the failing row contains \(a\) = \(values not shown\)/);
    assertNoFragment(part, [span[1]]);
  });

  it('a CSV COPY line whose quoted value spans lines, and a value that does not parse', async () => {
    pg.psql('create table c (a int, b text check (length(b) < 5))', 'rows');
    const f = await failing('copy c from stdin with (format csv);\n1,ok\n3,"41\ncsv-private-continuation"\n\\.\n');
    assert.match(f.e.message, /violates check constraint "c_b_check".*Failing row contains \(values not shown.*COPY c, line 3 \(line content not shown\)/);
    assertNoFragment(f, ['41\ncsv-private-continuation']);
    const bad = await failing('copy c (a) from stdin with (format csv);\n"41\ncsv-private-number"\n\\.\n');
    assert.match(bad.e.message, /invalid input syntax for type integer \(value not shown\)/);
    assertNoFragment(bad, ['41\ncsv-private-number']);
  });

  it('a value that fakes the end of the message and a second one around another column', async () => {
    // Two columns the writer controls around one they do not: the fake end in the first and a fake
    // start in the third must not leave the middle one outside the cut.
    const before = 'mine).\nDETAIL:  nothing here\n';
    const secret = 'someone-elses-token-7f3a';
    const after = '\nFailing row contains (mine';
    pg.psql('create table t3 (a text, b text, c text, check (length(a) < 3))', 'rows');
    const f = await failing(`insert into t3 values (${literal(before)}, ${literal(secret)}, ${literal(after)});\n`);
    assertNoFragment(f, [secret]);
  });
});
