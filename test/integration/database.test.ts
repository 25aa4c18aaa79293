/** PostgreSQL reached through the SSH connection's port forwarding, and client tools run on the host. */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Database } from '../support/database';
import { Environment } from '../../src/domain/environment';
import { RemoteCommandError } from '../../src/infra/errors';
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
  pg.psql('create database makapix');
  pg.psql('create table users (id int primary key, handle text); insert into users select g, $$u$$ || g from generate_series(1, 500) g', 'makapix');
});
after(async () => {
  await host?.close();
  await Promise.all([sshd?.stop(), pg?.stop()]);
});

describe('databases on the host', () => {
  it('queries PostgreSQL through the SSH port forward, counting the bytes', async () => {
    const before = host.traffic();
    const db = await Database.throughHost(host, { host: '127.0.0.1', port: pg.port, database: 'makapix', user: pg.user });
    const rows = await db.query<{ n: string; handles: string }>('select count(*) as n, string_agg(handle, $1) as handles from users', [',']);
    await db.close();
    assert.equal(rows[0].n, '500');
    const t = host.traffic();
    assert.ok(t.received - before.received >= rows[0].handles.length, 'the result did not cross the forward');
  });

  it("runs client tools against an environment's database on the host, stdin passed through", async () => {
    const config = parseConfig(
      `environments:
  prod: {checkout: /srv/p, project: p, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: ${pg.user}, port: ${pg.port}, via: host}}
  dev: {checkout: /srv/d, project: d, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: ${pg.user}, port: 1, via: host}}
`,
      'test',
    );
    const prod = new Environment('prod', config);
    const r = await host.run(prod.dbTool('psql', ['-X', '-A', '-t', '-d', 'makapix', '-f', '-']), { stdin: 'select max(id) from users;', quiet: true });
    assert.equal(r.stdout.trim(), '500');
    await assert.rejects(
      host.run(prod.dbTool('psql', ['-X', '-d', 'makapix', '-v', 'ON_ERROR_STOP=1', '-c', 'select * from missing_table']), { label: 'psql' }),
      (e: Error) => {
        assert.ok(e instanceof RemoteCommandError);
        assert.match(e.message, /psql exited with code 1: .*relation "missing_table" does not exist/);
        return true;
      },
    );
  });
});
