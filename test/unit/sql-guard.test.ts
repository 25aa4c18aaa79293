/**
 * SQL from the config, through PostgreSQL's own parser and an allowlist: every hostile spelling of a
 * function that acts outside the snapshot is refused, whatever its quoting; everything twinstack's
 * own docs and fixtures write is admitted.
 */
import { strict as assert } from 'node:assert';
import { before, describe, it } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { sqlParserReady } from '../../src/infra/pg-parser';
import { fragmentProblem, type SqlFragmentKind } from '../../src/config/sql-guard';
import { SAMPLE_CONFIG } from '../fixtures/sample-schema/generate';

before(() => sqlParserReady);

/** [kind, text, what the refusal must name]. */
const HOSTILE: Array<[SqlFragmentKind, string, RegExp]> = [
  // Quoted, Unicode-escaped and schema-qualified names of functions that act outside the snapshot.
  ['expression', `"pg_read_file"('/etc/passwd')`, /a call of pg_read_file\(\) at character 1/],
  ['expression', `pg_catalog."lo_export"(1, '/tmp/x')`, /pg_catalog\.lo_export\(\)/],
  ['expression', `U&"lo!005fimport" UESCAPE '!' ('/etc/passwd')`, /lo_import\(\)/],
  ['expression', `U&"\\006co_import"('/etc/passwd')`, /backslash/],
  ['expression', `"set_config"('default_transaction_read_only', 'on', false)`, /set_config\(\)/],
  ['expression', `pg_catalog.set_config('search_path', 'evil', false)`, /set_config\(\)/],
  ['expression', `"PG_READ_FILE"('/etc/passwd')`, /PG_READ_FILE\(\)/],
  ['expression', `pg_reload_conf()::text`, /pg_reload_conf\(\)/],
  ['expression', `pg_terminate_backend(1)::text`, /pg_terminate_backend\(\)/],
  ['expression', `pg_cancel_backend(1)::text`, /pg_cancel_backend\(\)/],
  ['expression', `(pg_create_physical_replication_slot('s')).slot_name`, /pg_create_physical_replication_slot\(\)/],
  ['expression', `pg_catalog.pg_create_logical_replication_slot('s', 'pgoutput')::text`, /pg_create_logical_replication_slot\(\)/],
  ['expression', `lo_create(0)::text`, /lo_create\(\)/],
  ['expression', `lo_from_bytea(0, 'x')::text`, /lo_from_bytea\(\)/],
  ['expression', `lo_put(1, 0, 'x')::text`, /lo_put\(\)/],
  ['expression', `dblink('host=127.0.0.1', 'DELETE FROM users')`, /dblink\(\)/],
  ['expression', `dblink_exec('host=127.0.0.1', 'DELETE FROM users')`, /dblink_exec\(\)/],
  ['expression', `query_to_xml('DELETE FROM users RETURNING 1', true, true, '')::text`, /query_to_xml\(\)/],
  ['expression', `pg_sleep(3600)::text`, /pg_sleep\(\)/],
  ['expression', `pg_ls_dir('/root/.ssh')`, /pg_ls_dir\(\)/],
  ['expression', `pg_stat_file('/etc/shadow')::text`, /pg_stat_file\(\)/],
  ['expression', `encode(pg_read_binary_file('/etc/shadow'), 'base64')`, /pg_read_binary_file\(\)/],
  ['expression', `current_setting('data_directory')`, /current_setting\(\)/],
  ['expression', `nextval('users_id_seq')::text`, /nextval\(\)/],
  ['expression', `setval('users_id_seq', 1)::text`, /setval\(\)/],
  ['expression', `txid_current()::text`, /txid_current\(\)/],
  ['expression', `pg_advisory_lock(1)::text`, /pg_advisory_lock\(\)/],
  ['expression', `public.lower(email)`, /public\.lower\(\)/],
  // Nested inside allowed ones.
  ['expression', `lower(pg_read_file('/etc/passwd'))`, /pg_read_file\(\) at character 7/],
  ['expression', `coalesce(email, lo_import('/etc/passwd')::text)`, /lo_import\(\)/],
  ['expression', `CASE WHEN true THEN pg_reload_conf()::text END`, /pg_reload_conf\(\)/],
  ['expression', `format('%s', pg_read_file('/etc/passwd'))`, /pg_read_file\(\)/],
  // Casts that resolve names or run an input function twinstack does not know.
  ['expression', `'pg_read_file'::regproc::text`, /a cast to regproc/],
  ['expression', `CAST('lo_export' AS pg_catalog.regprocedure)::text`, /a cast to pg_catalog\.regprocedure/],
  ['expression', `'users'::regclass::text`, /a cast to regclass/],
  ['expression', `email::public.evil_type`, /a cast to public\.evil_type/],
  // Reading other rows, other tables, the catalogs.
  ['expression', `(SELECT password_hash FROM users LIMIT 1)`, /a subquery/],
  ['expression', `EXISTS (SELECT 1 FROM pg_authid)`, /a subquery/],
  ['expression', `id IN (SELECT id FROM users)`, /a subquery/],
  ['expression', `ARRAY(SELECT email FROM users)::text`, /a subquery/],
  ['expression', `count(*)::text`, /the aggregate count\(\)/],
  ['expression', `row_number() OVER ()`, /row_number\(\)/],
  // Leaving the expression's place.
  ['expression', `1 FROM pg_read_file('/etc/passwd')`, /must be one expression/],
  ['expression', `true; DELETE FROM users`, /holds 2 statements/],
  ['expression', `email, password_hash`, /must be one expression/],
  ['expression', `email AS x`, /no AS/],
  ['expression', `1) FROM users; SELECT (1`, /does not parse as PostgreSQL: syntax error at or near "\)" at character 2/],
  ['expression', `id -- and the rest of twinstack's line`, /ends in a comment/],
  ['expression', `id /* unterminated`, /does not parse/],
  ['expression', `id OPERATOR(public.+) 1`, /the operator OPERATOR\(public\.\+\)/],
  ['expression', `xmlelement(name x, pg_read_file('/etc/passwd'))::text`, /XmlExpr/],
  ['expression', `$1`, /"\$"/],
  // psql's own syntax around the SQL.
  ['expression', `$$x$$`, /"\$"/],
  ['expression', `$a$ $b$ nested $b$ $a$`, /"\$"/],
  ['expression', `:'ON_ERROR_STOP'`, /psql variable/],
  ['expression', `'x' || :DBNAME`, /psql variable/],
  ['expression', `email \\! id`, /backslash/],
  ['expression', `email\u0007`, /control character/],
  // vault-sync's query (on dev).
  ['query', `SELECT rolpassword FROM pg_authid`, /the table pg_authid/],
  ['query', `SELECT * FROM pg_catalog.pg_shadow`, /pg_catalog\.pg_shadow/],
  ['query', `SELECT pg_read_file('/etc/passwd')`, /pg_read_file\(\)/],
  ['query', `WITH d AS (DELETE FROM posts RETURNING *) SELECT 1`, /DeleteStmt where a SELECT was expected/],
  ['query', `SELECT 1 INTO evil`, /SELECT INTO/],
  ['query', `SELECT storage_key FROM posts FOR UPDATE`, /locking clause/],
  ['query', `SELECT * FROM dblink('host=127.0.0.1', 'SELECT 1') AS t(x text)`, /RangeFunction in FROM/],
  ['query', `SELECT 1; SELECT 2`, /holds 2 statements/],
  ['query', `DELETE FROM posts`, /DeleteStmt where a SELECT was expected/],
  // after-load (in staging, by psql).
  ['statement', `UPDATE person SET name = 'x' \\! id`, /backslash/],
  ['statement', `COPY person TO PROGRAM 'id'`, /CopyStmt/],
  ['statement', `ALTER SYSTEM SET default_transaction_read_only = on`, /AlterSystemStmt/],
  ['statement', `CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'`, /CreateFunctionStmt/],
  ['statement', `DO 'BEGIN PERFORM 1; END'`, /DoStmt/],
  ['statement', `SELECT pg_reload_conf()`, /SelectStmt/],
  ['statement', `UPDATE person SET name = pg_read_file('/etc/passwd')`, /pg_read_file\(\)/],
  ['statement', `INSERT INTO person (name) SELECT lo_import('/etc/passwd')::text`, /lo_import\(\)/],
  ['statement', `UPDATE person SET name = 'x'; DROP TABLE person`, /holds 2 statements/],
  ['statement', `DELETE FROM person WHERE id IN (SELECT oid FROM pg_catalog.pg_authid)`, /pg_catalog\.pg_authid/],
  ['statement', `UPDATE person SET name = 'x' -- ;`, /ends in a comment/],
  ['statement', `SET ROLE postgres`, /VariableSetStmt/],
  ['statement', `GRANT ALL ON person TO PUBLIC`, /GrantStmt/],
  ['statement', `CALL evil()`, /CallStmt/],
  ['statement', `WITH d AS (DELETE FROM person RETURNING id) UPDATE post SET person_id = NULL`, /DeleteStmt where a SELECT was expected/],
];

/** What twinstack's docs, fixtures and tests write: all of it must pass. */
const ADMITTED: Array<[SqlFragmentKind, string]> = [
  ['expression', `'user' || id || '@dev.example.test'`],
  ['expression', `'user' || id::text || '@dev.example.test'`],
  ['expression', `lower(email)`],
  ['expression', `'{}'`],
  ['expression', `banned_until IS NULL`],
  ['expression', `id IS DISTINCT FROM 0 AND handle NOT SIMILAR TO 'x%' AND substring(handle FROM 1 FOR 1) <> ';'`],
  ['expression', `string_to_array(ltree2text(subpath(path, 1)), '.')`],
  ['expression', `CASE WHEN kind = 'a' THEN coalesce(title, nullif(slug, '')) ELSE left(md5(title), 12) END`],
  ['expression', `extract(year FROM created_at) > 2020 AND created_at < now() - interval '1 day'`],
  ['expression', `jsonb_build_object('id', id, 'at', to_char(created_at, 'YYYY-MM-DD'))`],
  ['expression', `encode(digest(email, 'sha256'), 'hex')`],
  ['expression', `tag_ids[1:2] || ARRAY[id]`],
  ['expression', `'a--b' || 'c/*d' || ':e'`],
  ['query', `SELECT storage_shard || '/' || storage_key || '.' || format FROM posts`],
  ['query', `SELECT p.storage_key FROM posts p JOIN users u ON u.id = p.owner_id WHERE p.id IN (SELECT post_id FROM reactions) ORDER BY 1`],
  ['statement', `UPDATE person p SET post_count = (SELECT count(*) FROM post WHERE person_id = p.id)`],
  ['statement', `DELETE FROM post_stats WHERE post_id NOT IN (SELECT id FROM post)`],
  [
    'statement',
    `INSERT INTO person_totals (person_id, n) SELECT person_id, count(*) FROM post GROUP BY person_id ON CONFLICT (person_id) DO UPDATE SET n = excluded.n`,
  ],
  ['statement', `REFRESH MATERIALIZED VIEW hot_posts`],
];

describe('config SQL through PostgreSQL parser and an allowlist', () => {
  it(`refuses ${HOSTILE.length} hostile fragments, each in one line naming the node and where it stands`, () => {
    assert.ok(HOSTILE.length >= 40);
    for (const [kind, text, why] of HOSTILE) {
      const problem = fragmentProblem(text, kind);
      assert.ok(problem, `${kind} admitted: ${text}`);
      assert.match(problem, why, `${kind}: ${text}`);
      assert.equal(problem.split('\n').length, 1);
    }
  });

  it('admits what the docs and fixtures write', () => {
    for (const [kind, text] of ADMITTED) assert.equal(fragmentProblem(text, kind), undefined, text);
  });

  it("admits every column rule of the README's sample section and the fixture config", () => {
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const block = /```yaml\n(# Written by twinstack resample \(init\)[\s\S]*?)```/.exec(readme);
    assert.ok(block, "the README's init output");
    const sample = (parseYaml(block[1]) as { sample: { columns: Record<string, unknown> } }).sample;
    const rules = [...Object.values(sample.columns), ...Object.values(SAMPLE_CONFIG.columns ?? {})].filter(
      (r): r is { sql: string } => typeof r === 'object' && r !== null && 'sql' in r,
    );
    assert.ok(rules.length >= 2);
    for (const r of rules) assert.equal(fragmentProblem(r.sql, 'expression'), undefined, r.sql);
    assert.equal(fragmentProblem(String(SAMPLE_CONFIG.filter), 'expression'), undefined);
  });
});
