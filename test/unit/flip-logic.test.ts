/**
 * The pure parts of flip-the-switch: which images ship and which are rebuilt, the lock holds read from
 * pg_locks samples, the app's database variable pointed at the rehearsal copy, the schema
 * fingerprint, the rows a restore loses, and the migration's own error line.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { buildDefinitions, shipPlan } from '../../src/domain/ship';
import { lockHolds, pointAt } from '../../src/domain/rehearsal';
import { fingerprintOf, rowsWrittenBetween } from '../../src/domain/schema';
import { hitLockTimeout, migrationErrorLine } from '../../src/domain/alembic';

const v2 = (root: string, webArgs: string) => `name: p
services:
  api:
    build:
      context: ${root}
      dockerfile: api/Dockerfile
    image: p-api:local
  web:
    build:
      context: ${root}/web
      args:
${webArgs}
  redis:
    image: redis:7
  caddy:
    image: caddy:2
`;

describe('ship plan', () => {
  const prod = buildDefinitions(v2('/srv/prod', '        NEXT_PUBLIC_API_BASE_URL: https://makapix.club/api'), '/srv/prod');
  const dev = buildDefinitions(v2('/srv/dev', '        NEXT_PUBLIC_API_BASE_URL: https://dev.makapix.club/api'), '/srv/dev');
  dev.delete('caddy');
  const gated = { api: 'sha256:a', web: 'sha256:w', redis: 'sha256:r' };
  const names = { api: 'p-api:local', web: 'p-web', redis: 'redis:7', caddy: 'caddy:2' };

  it('ships what builds the same from two checkouts, rebuilds a differing build arg by name only, leaves what dev does not run', () => {
    const plan = shipPlan(prod, dev, gated, names);
    assert.deepEqual(
      plan.ship.map((s) => [s.service, s.id, s.name]),
      [
        ['api', 'sha256:a', 'p-api:local'],
        ['redis', 'sha256:r', 'redis:7'],
      ],
    );
    assert.deepEqual(plan.rebuild, [{ service: 'web', name: 'p-web', reasons: ['build arg NEXT_PUBLIC_API_BASE_URL differs'] }]);
    assert.deepEqual(plan.asConfigured, [{ service: 'caddy', reason: 'dev does not run it', builds: false }]);
    assert.ok(!JSON.stringify(plan).includes('makapix.club'), 'a build arg value is in the plan');
  });

  it('reads v1 list-form args and string contexts', () => {
    const defs = buildDefinitions(
      'services:\n  api:\n    build: /srv/x/api\n  web:\n    build:\n      context: /srv/x\n      target: prod\n      args: ["A=1", "B"]\n',
      '/srv/x',
    );
    assert.deepEqual(defs.get('api')?.build, { context: 'api', dockerfile: 'Dockerfile', target: '', args: {} });
    assert.deepEqual(defs.get('web')?.build, { context: '.', dockerfile: 'Dockerfile', target: 'prod', args: { A: '1', B: '' } });
  });
});

describe('rehearsal measurements', () => {
  it('takes the longest unbroken hold per table from 100 ms samples', () => {
    const lines = ['1000', '1100', '1100|public.items', '1200', '1200|public.items', '1200|public.users', '1300', '1400', '1400|public.items', '1500'];
    assert.deepEqual(lockHolds(lines), [
      { table: 'public.items', ms: 200 },
      { table: 'public.users', ms: 100 },
    ]);
    assert.deepEqual(lockHolds(['1000', '1100']), []);
  });

  it("points the app's database variable at the copy: a URL keeps its credentials and options", () => {
    assert.equal(
      pointAt('postgresql://u:p@db:5432/makapix?sslmode=disable', 'makapix_twinstack_rehearse'),
      'postgresql://u:p@db:5432/makapix_twinstack_rehearse?sslmode=disable',
    );
    assert.equal(pointAt('postgresql+psycopg://u:p@db/makapix', 'c'), 'postgresql+psycopg://u:p@db/c');
    assert.equal(pointAt('makapix', 'c'), 'c');
  });
});

describe('schema and data', () => {
  it('fingerprints a schema dump without its comments and per-dump keys', () => {
    const a = '--\n-- PostgreSQL database dump\n\\restrict abc\nSET x = 1;\nCREATE TABLE t (id int);\n\\unrestrict abc\n';
    const b = '--\n-- other comment\n\\restrict xyz\nCREATE TABLE t (id int);\n\\unrestrict xyz\n';
    assert.equal(fingerprintOf(a), fingerprintOf(b));
    assert.notEqual(fingerprintOf(a), fingerprintOf('CREATE TABLE t (id bigint);\n'));
  });

  it('counts the row writes since the backup in the tables it holds', () => {
    const r = rowsWrittenBetween({ 'public.items': 10, 'public.users': 5, 'public.gone': 1 }, { 'public.items': 13, 'public.users': 5, 'public.half_done': 7 });
    assert.deepEqual(r, { total: 3, tables: [{ table: 'public.items', rows: 3 }] });
    assert.equal(rowsWrittenBetween({ 'public.items': 10 }, { 'public.items': 2 }).total, 2, 'a reset counter counts from zero');
  });

  it("keeps the migration's exception line, not the traceback, and no row values", () => {
    const out = [
      'INFO  [alembic.runtime.migration] Running upgrade 0001 -> 0002',
      'Traceback (most recent call last):',
      '  File "/usr/lib/python3/dist-packages/sqlalchemy/engine/base.py", line 1900, in _execute_context',
      'psycopg2.errors.UniqueViolation: could not create unique index "items_name_unique"',
      'DETAIL:  Key (name)=(alice@example.com) is duplicated.',
      '',
      'The above exception was the direct cause of the following exception:',
      '',
      'Traceback (most recent call last):',
      '  File "/usr/bin/alembic", line 33, in <module>',
      'sqlalchemy.exc.IntegrityError: (psycopg2.errors.UniqueViolation) could not create unique index "items_name_unique"',
      'DETAIL:  Key (name)=(alice@example.com) is duplicated.',
      '[SQL: CREATE UNIQUE INDEX items_name_unique ON items (name)]',
    ].join('\n');
    const line = migrationErrorLine(out);
    // A quoted value is cut up to the last place it could end (a value may fake an end), here the
    // repeated DETAIL of the chained exception: what stays is the first exception, which says the same.
    assert.equal(
      line,
      'psycopg2.errors.UniqueViolation: could not create unique index "items_name_unique" (DETAIL:  Key (name)=(values not shown) is duplicated.)',
    );
    assert.ok(hitLockTimeout('psycopg2.errors.LockNotAvailable: canceling statement due to lock timeout'));
    assert.ok(!hitLockTimeout(out));
  });
});
