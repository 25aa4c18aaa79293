/** Backups and restores on a real PostgreSQL, driven over the real sshd with the client tools on the host. */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listBackups, pruneBackups, restoreBackup, takeBackup, usableBackup, type BackupManifest } from '../../src/domain/backup';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { OperationFailed } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let pg: TestPostgres;
let host: SshHost;
let dir: string;
let config: Config;
let prod: Environment;

before(async () => {
  [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  host = await connect(sshd);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-backups-'));
  fs.chmodSync(dir, 0o777);
  pg.psql('create role app login');
  pg.psql('create database makapix');
  pg.psql('revoke all on database makapix from public; grant connect on database makapix to app');
  pg.psql(
    `create table users (id int primary key, email text); insert into users select g, 'u' || g || '@example.com' from generate_series(1, 300) g;
     create table posts (id int primary key, owner_id int references users(id), title text); insert into posts select g, 1 + g % 300, 'p' || g from generate_series(1, 900) g;
     grant select on users, posts to app;`,
    'makapix',
  );
  config = parseConfig(
    `state-dir: ${dir}/state
backup: { dir: ${dir}/backups, keep: 2 }
environments:
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
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('backups', () => {
  it('writes a dump, the globals and a manifest with the sha256 of each file, verified by restore', async () => {
    const m = await takeBackup({
      host,
      config,
      env: prod,
      ctx: { release: 'r20260101T000000Z-abcdef0', sha: 'a'.repeat(40) },
      log: new MemoryLogger(),
      verify: 'restore',
    });
    assert.equal(m.status, 'verified');
    assert.equal(m.verification.tables, 2);
    const files = path.join(dir, 'backups', 'prod', m.id);
    for (const name of ['db.dump', 'globals.sql']) {
      const actual = createHash('sha256')
        .update(fs.readFileSync(path.join(files, name)))
        .digest('hex');
      assert.equal(m.files[name].sha256, actual);
      assert.equal(m.files[name].bytes, fs.statSync(path.join(files, name)).size);
    }
    assert.equal((fs.statSync(path.join(files, 'manifest.json')).mode & 0o777).toString(8), '600');
    assert.equal((JSON.parse(fs.readFileSync(path.join(files, 'manifest.json'), 'utf8')) as BackupManifest).release, 'r20260101T000000Z-abcdef0');
    assert.equal(pg.psql("select count(*) from pg_database where datname like '%verify%'").trim(), '0');
  });

  const settingsOf = (db: string) =>
    pg
      .psql(
        `select coalesce(r.rolname, '-') || ' ' || c from pg_db_role_setting s join pg_database d on d.oid = s.setdatabase left join pg_roles r on r.oid = s.setrole, unnest(s.setconfig) c where d.datname = '${db}' order by 1`,
      )
      .trim();

  it('restores exactly the backed-up database: later tables gone, later rows gone, grants kept', async () => {
    const m = await takeBackup({ host, config, env: prod, ctx: {}, log: new MemoryLogger() });
    pg.psql("create table half_done (id int); insert into users values (1000, 'late@example.com')", 'makapix');
    // Database-level settings belong to the database, not to its dump.
    pg.psql("alter database makapix set work_mem = '7MB'; alter role app in database makapix set statement_timeout = '5s'");
    await restoreBackup({ host, config, env: prod, m, log: new MemoryLogger() });
    assert.equal(settingsOf('makapix'), '- work_mem=7MB\napp statement_timeout=5s');
    assert.equal(pg.psql("select to_regclass('public.half_done') is null", 'makapix').trim(), 't');
    assert.equal(pg.psql('select count(*) from users', 'makapix').trim(), '300');
    assert.equal(pg.psql("select has_database_privilege('app', 'makapix', 'CONNECT')").trim(), 't');
    assert.equal(pg.psql("select has_database_privilege('public', 'makapix', 'CONNECT')").trim(), 'f');
    assert.equal(pg.psql("select has_table_privilege('app', 'posts', 'SELECT')", 'makapix').trim(), 't');
    assert.equal(
      pg.psql("select count(*) from pg_database where datname = 'makapix_twinstack_pre_restore'").trim(),
      '1',
      'the database before the restore is kept aside',
    );
  });

  it('puts the database back untouched when the restore fails', async () => {
    const m = await takeBackup({ host, config, env: prod, ctx: {}, log: new MemoryLogger() });
    pg.psql("insert into users values (2000, 'kept@example.com')", 'makapix');
    // A dump that passes the checksum but does not restore: truncate it and fix the manifest's hash.
    const file = path.join(dir, 'backups', 'prod', m.id, 'db.dump');
    fs.truncateSync(file, Math.floor(fs.statSync(file).size / 2));
    await assert.rejects(restoreBackup({ host, config, env: prod, m, log: new MemoryLogger() }), /restoring prod from backup/);
    assert.equal(pg.psql('select count(*) from users where id = 2000', 'makapix').trim(), '1');
  });

  it('refuses a corrupted backup by its checksum', async () => {
    const m = await takeBackup({ host, config, env: prod, ctx: {}, log: new MemoryLogger() });
    fs.appendFileSync(path.join(dir, 'backups', 'prod', m.id, 'db.dump'), 'x');
    await assert.rejects(usableBackup({ host, config, env: prod, id: m.id, log: new MemoryLogger() }), (e: Error) => {
      assert.ok(e instanceof OperationFailed);
      assert.match(e.message, new RegExp(`backup ${m.id} cannot be used: db\\.dump is corrupted`));
      return true;
    });
  });

  it('reads manifests by their schema: one of another shape is no backup, and a good one reads back whole', async () => {
    const m = await takeBackup({ host, config, env: prod, ctx: {}, log: new MemoryLogger() });
    const odd = path.join(dir, 'backups', 'prod', 'b20990101T000000Z-prod');
    fs.mkdirSync(odd, { recursive: true });
    fs.writeFileSync(path.join(odd, 'manifest.json'), JSON.stringify({ id: 'b20990101T000000Z-prod', env: 'prod', status: 'verified', files: 'db.dump' }));
    try {
      const listed = await listBackups(host, config, prod);
      assert.deepEqual(
        listed.map((b) => b.id),
        listed.map((b) => b.id).filter((id) => id !== 'b20990101T000000Z-prod'),
      );
      const read = listed.find((b) => b.id === m.id);
      assert.deepEqual(read, JSON.parse(fs.readFileSync(path.join(dir, 'backups', 'prod', m.id, 'manifest.json'), 'utf8')));
      await assert.rejects(
        usableBackup({ host, config, env: prod, id: 'b20990101T000000Z-prod', log: new MemoryLogger() }),
        /backup b20990101T000000Z-prod of prod does not exist/,
      );
    } finally {
      fs.rmSync(odd, { recursive: true, force: true });
    }
  });

  it('keeps the newest verified backups and never the failed ones past them', async () => {
    const log = new MemoryLogger();
    await pruneBackups(host, config, prod, log);
    const left = await listBackups(host, config, prod);
    assert.equal(left.filter((b) => b.status === 'verified').length, 2);
    assert.deepEqual(
      left.map((b) => b.id),
      [...left.map((b) => b.id)].sort().reverse(),
    );
  });
});
