/**
 * The rows a restore loses, as promote counts them from PostgreSQL's write counters: the app's writes
 * since the backup, and not the migration's own backfill, which the restore is meant to undo. A real
 * PostgreSQL, read through the host over a real OpenSSH server; each write is a session of its own,
 * as the app's and the migration's are.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { rowsLostToRestore, rowsWrittenBetween, writeCounters } from '../../src/domain/schema';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let pg: TestPostgres;
let host: SshHost;
let prod: Environment;

before(async () => {
  [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  host = await connect(sshd);
  pg.psql('create database makapix');
  pg.psql('create table items (id serial primary key, name text); insert into items (name) select $$item $$ || g from generate_series(1, 200) g', 'makapix');
  const config = parseConfig(
    `environments:
  prod: {checkout: /srv/p, project: p, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: ${pg.user}, port: ${pg.port}, via: host}}
  dev: {checkout: /srv/d, project: d, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: ${pg.user}, port: 1, via: host}}
`,
    'test',
  );
  prod = new Environment('prod', config);
});
after(async () => {
  await host?.close();
  await Promise.all([sshd?.stop(), pg?.stop()]);
});

describe('the rows a restore loses', () => {
  it("counts the app's writes since the backup, before and after the migration, and not the migration's own backfill", async () => {
    const atBackup = await writeCounters(host, prod);
    pg.psql("insert into items (name) values ('app 1'), ('app 2'), ('app 3')", 'makapix');
    const beforeMigration = await writeCounters(host, prod);
    // The migration: a new table and a backfill of every item (203 rows), committed.
    pg.psql('create table half_done (id serial primary key); update items set name = name', 'makapix');
    const afterMigration = await writeCounters(host, prod);
    pg.psql("insert into items (name) values ('app 4'), ('app 5')", 'makapix');
    const now = await writeCounters(host, prod);

    const lost = rowsLostToRestore(atBackup, now, { before: beforeMigration, after: afterMigration });
    assert.equal(lost.total, 5);
    assert.deepEqual(lost.tables, [{ table: 'public.items', rows: 5 }]);
    assert.equal(lost.duringMigration, 203);
    // What promote counted before: every write since the backup, the backfill's 203 included.
    assert.equal(rowsWrittenBetween(atBackup, now).total, 208);
  });
});
