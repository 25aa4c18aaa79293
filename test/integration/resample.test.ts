/**
 * The resample engine against real servers: sshd, a production and a dev PostgreSQL cluster, the
 * Makapix-shaped schema (cycle, self-reference, composite keys, partitioned table, two-user tables).
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ConfigurationError, RemoteCommandError } from '../../src/infra/errors';
import { Environment } from '../../src/domain/environment';
import { psql } from '../../src/infra/postgres';
import { ResampleFailed, resample, type ResampleReport } from '../../src/resample/engine';
import { isSampled, productionScript } from '../../src/resample/plan';
import { planResample } from '../../src/resample/engine';
import { argv } from '../../src/infra/shell';
import { SAMPLE_CONFIG } from '../fixtures/sample-schema/generate';
import { RUN, runSql, startWorld, type World } from './resample-support';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseLog } from '../../src/domain/host-log';
import { underLock } from '../../src/domain/operation';
import { connect } from '../harness/connect';
import { EnvironmentLock } from '../../src/domain/lock';
import { MemoryLogger } from '../../src/infra/logger';

let w: World;
let first: ResampleReport;
const PASSWORD = 'dev-password-for-everyone';

before(async () => {
  w = await startWorld(1000);
  first = await resample(w.ctx(), { dryRun: false, devPassword: PASSWORD });
});
after(async () => {
  await w?.stop();
});

const devRows = (sql: string) => runSql(w.dev, 'makapix_dev', sql).trim();
const prodRows = (sql: string) => runSql(w.prod, 'makapix', sql).trim();

/** The users the hash picks, computed independently of the SQL: not banned and below the threshold, or included. */
function expectedUsers(seed: string, fraction: number): number[] {
  const ids: number[] = [];
  for (let id = 1; id <= 1000; id++) if ((id % 17 !== 0 && isSampled(seed, fraction, String(id))) || id === 5) ids.push(id);
  return ids;
}

describe('the sample', () => {
  it('holds exactly the users picked by hash of (seed, key), plus the included ones', () => {
    const ids = devRows('SELECT id FROM users ORDER BY id').split('\n').map(Number);
    assert.deepEqual(ids, expectedUsers('test-seed', 0.25));
  });

  it('is referentially complete: zero orphans, and every production constraint exists in dev', () => {
    assert.ok(first.foreignKeys.length >= 20);
    assert.deepEqual(
      first.foreignKeys.filter((f) => f.orphans !== 0),
      [],
    );
    const prodFks = prodRows("SELECT conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 ORDER BY 1");
    assert.equal(devRows("SELECT conname FROM pg_constraint WHERE contype = 'f' AND conparentid = 0 ORDER BY 1"), prodFks);
    assert.equal(devRows("SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND NOT convalidated"), '0');
  });

  it('brings the rows that belong to sampled users, and nothing of unsampled ones', () => {
    assert.equal(devRows('SELECT count(*) FROM posts WHERE owner_id NOT IN (SELECT id FROM users)'), '0');
    const sampledPosts = prodRows(`SELECT count(*) FROM posts WHERE owner_id IN (${expectedUsers('test-seed', 0.25).join(',')})`);
    assert.equal(devRows('SELECT count(*) FROM posts'), sampledPosts);
    // Comments on sampled posts all come, whoever wrote them.
    const onSampled = prodRows(
      `SELECT count(*) FROM comments WHERE post_id IN (SELECT id FROM posts WHERE owner_id IN (${expectedUsers('test-seed', 0.25).join(',')}))`,
    );
    assert.equal(devRows('SELECT count(*) FROM comments'), onSampled);
  });

  it('keeps a comment by an unsampled user on a sampled post, with its author cleared', () => {
    const ids = expectedUsers('test-seed', 0.25);
    const foreign = prodRows(
      `SELECT count(*) FROM comments c JOIN posts p ON p.id = c.post_id WHERE p.owner_id IN (${ids.join(',')}) AND c.author_id IS NOT NULL AND c.author_id NOT IN (${ids.join(',')})`,
    );
    assert.ok(Number(foreign) > 0, 'the fixture has such comments');
    assert.equal(
      devRows('SELECT count(*) FROM comments WHERE author_id IS NULL'),
      String(
        Number(foreign) +
          Number(prodRows(`SELECT count(*) FROM comments c JOIN posts p ON p.id = c.post_id WHERE p.owner_id IN (${ids.join(',')}) AND c.author_id IS NULL`)),
      ),
    );
  });

  it('drops a follow between a sampled and an unsampled user, keeps follows within the sample', () => {
    const list = expectedUsers('test-seed', 0.25).join(',');
    assert.equal(devRows('SELECT count(*) FROM follows'), prodRows(`SELECT count(*) FROM follows WHERE follower_id IN (${list}) AND followee_id IN (${list})`));
    assert.equal(devRows('SELECT count(*) FROM blocks'), prodRows(`SELECT count(*) FROM blocks WHERE blocker_id IN (${list}) AND blocked_id IN (${list})`));
  });

  it('resolves the users ↔ posts cycle: avatars pointing outside the sample are cleared', () => {
    assert.equal(devRows('SELECT count(*) FROM users WHERE avatar_source_post_id IS NOT NULL AND avatar_source_post_id NOT IN (SELECT id FROM posts)'), '0');
    assert.ok(Number(devRows('SELECT count(*) FROM users WHERE avatar_source_post_id IS NOT NULL')) > 0, 'some avatars point inside the sample');
  });

  it('copies the partitioned table through its parent, rows landing in their partitions', () => {
    assert.ok(Number(devRows('SELECT count(*) FROM ONLY view_events_2024')) > 0);
    assert.ok(Number(devRows('SELECT count(*) FROM ONLY view_events_2025')) > 0);
    assert.equal(devRows('SELECT count(*) FROM view_events'), String(first.tables.find((t) => t.table === 'public.view_events')?.copied));
  });

  it('follows composite keys: every playlist play has its playlist item', () => {
    assert.ok(Number(devRows('SELECT count(*) FROM playlist_item_plays')) > 0);
    assert.equal(
      devRows(
        'SELECT count(*) FROM playlist_item_plays p WHERE NOT EXISTS (SELECT 1 FROM playlist_items i WHERE (i.playlist_id, i.position) = (p.playlist_id, p.position))',
      ),
      '0',
    );
  });

  it('copies reference tables whole, token tables and unreached tables empty', () => {
    assert.equal(devRows('SELECT count(*) FROM licenses'), '5');
    assert.equal(devRows('SELECT count(*) FROM badge_definitions'), '10');
    assert.equal(devRows('SELECT version_num FROM alembic_version'), 'a1b2c3d4e5f6');
    assert.equal(devRows('SELECT count(*) FROM refresh_tokens'), '0');
    assert.equal(devRows('SELECT count(*) FROM player_tokens'), '0');
    assert.equal(devRows('SELECT count(*) FROM site_settings'), '0');
  });

  it('sets sequences past the copied keys, so dev can insert', () => {
    const max = Number(devRows('SELECT max(id) FROM posts'));
    assert.ok(Number(devRows('SELECT last_value FROM posts_id_seq')) >= max);
    assert.ok(
      Number(
        devRows("INSERT INTO posts (owner_id, title, storage_shard, storage_key, format) SELECT min(id), 'new', '00', 'k', 'png' FROM users RETURNING id"),
      ) > max,
    );
  });
});

describe('anonymization happens in production', () => {
  it('hashes the dev password on the runner for pgcrypto-bcrypt: production never sees it, pgcrypto accepts the hash', async () => {
    const config = w.config({ ...SAMPLE_CONFIG, 'password-hash': 'pgcrypto-bcrypt' });
    const plan = await planResample(w.ctx(config), { dryRun: true, devPassword: PASSWORD });
    assert.ok(!productionScript(plan).includes(PASSWORD), 'the password is in the production script');
    const sent = w.host.traffic().sent;
    await resample(w.ctx(config), { dryRun: false, devPassword: PASSWORD });
    assert.ok(w.host.traffic().sent > sent);
    const hashes = devRows('SELECT DISTINCT password_hash FROM users').split('\n');
    assert.equal(hashes.length, 1);
    assert.match(hashes[0], /^\$2a\$10\$[./A-Za-z0-9]{53}$/);
    // The app checks a password with pgcrypto's crypt(password, hash) = hash: the hash works there.
    runSql(w.dev, 'postgres', 'CREATE EXTENSION IF NOT EXISTS pgcrypto');
    assert.equal(
      runSql(w.dev, 'postgres', `SELECT crypt('${PASSWORD}', '${hashes[0]}') = '${hashes[0]}', crypt('wrong', '${hashes[0]}') = '${hashes[0]}'`).trim(),
      't|f',
    );
    // Back to the suite's sample for the cases that follow.
    first = await resample(w.ctx(), { dryRun: false, devPassword: PASSWORD });
  });

  it('rewrites emails, gives every user one dev password hash, rehashes IPs, clears certificates', () => {
    assert.equal(devRows("SELECT count(*) FROM users WHERE email <> 'user' || id || '@dev.example.test'"), '0');
    const hashes = devRows('SELECT DISTINCT password_hash FROM users').split('\n');
    assert.equal(hashes.length, 1);
    assert.match(hashes[0], /^\$pbkdf2-sha256\$29000\$/);
    assert.equal(devRows("SELECT count(*) FROM view_events WHERE ip_hash = md5('ip' || id)"), '0');
    assert.equal(devRows('SELECT count(*) FROM players WHERE cert_pem IS NOT NULL OR private_key IS NOT NULL OR last_ip IS NOT NULL'), '0');
    assert.equal(devRows('SELECT count(*) FROM view_events WHERE ip_hash IS NULL'), '0');
  });

  it('never sends a real personal value to the runner: the SSH traffic carries plan and report only', () => {
    const log = w.log.text;
    assert.ok(!/person\d+@mail\.example\.org/.test(log), 'a real email reached the log');
    assert.ok(!log.includes(PASSWORD));
  });

  it('moves the data on the host: bytes over SSH are a small fraction of the rows moved', async () => {
    const plan = await planResample(w.ctx(), { dryRun: false });
    const sender = argv(
      'psql',
      '-X',
      '-q',
      '-A',
      '-t',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      '127.0.0.1',
      '-p',
      w.prod.port,
      '-U',
      w.prod.user,
      '-d',
      'makapix',
      '-f',
      '-',
    );
    const moved = Number((await w.host.run(`${sender} | wc -c`, { stdin: productionScript(plan), quiet: true })).stdout.trim());
    const ssh = first.sshBytes.sent + first.sshBytes.received;
    console.log(`resample bytes: ${moved} streamed on the host, ${ssh} over SSH (${((ssh / moved) * 100).toFixed(1)}%)`);
    assert.ok(moved > 500_000, `the stream is ${moved} bytes`);
    assert.ok(ssh < moved / 5, `${ssh} bytes crossed SSH for ${moved} bytes of rows`);
  });
});

describe('grants and roles', () => {
  it("keeps dev's owners and the non-owner app role's grants", () => {
    assert.equal(devRows("SELECT tableowner FROM pg_tables WHERE tablename = 'posts'"), 'app_owner');
    assert.equal(runSql(w.dev, 'makapix_dev', 'SELECT count(*) > 0 FROM users', 'app_rw').trim(), 't');
    assert.equal(devRows("SELECT has_table_privilege('app_rw', 'comments', 'INSERT')"), 't');
    assert.equal(
      devRows("SELECT has_database_privilege('app_rw', 'makapix_dev', 'CONNECT'), has_database_privilege('public', 'makapix_dev', 'CONNECT')"),
      't|f',
    );
  });
});

describe('repeatability', () => {
  it('picks the same users with the same seed, and others with another seed', async () => {
    const before = devRows("SELECT string_agg(id::text, ',' ORDER BY id) FROM users");
    await resample(w.ctx(), { dryRun: false, devPassword: PASSWORD });
    assert.equal(devRows("SELECT string_agg(id::text, ',' ORDER BY id) FROM users"), before);
    await resample(w.ctx(), { dryRun: false, seed: 'another-seed', fraction: 0.1 });
    const ids = devRows('SELECT id FROM users ORDER BY id').split('\n').map(Number);
    assert.deepEqual(ids, expectedUsers('another-seed', 0.1));
    // Without the dev-password input, password hashes become NULL.
    assert.equal(devRows('SELECT count(*) FROM users WHERE password_hash IS NOT NULL'), '0');
  });
});

describe('production is only read', () => {
  it('leaves a pg_dump of production identical, and no database or object behind', async () => {
    const before = w.dump(w.prod, 'makapix');
    const dbs = w.databases(w.prod);
    await resample(w.ctx(), { dryRun: false, devPassword: PASSWORD });
    assert.equal(w.dump(w.prod, 'makapix'), before);
    assert.deepEqual(w.databases(w.prod), dbs);
    assert.equal(prodRows("SELECT count(*) FROM pg_class WHERE relname LIKE 'ts\\_m%' AND relpersistence <> 't'"), '0');
  });
});

describe('production is read through a role the server keeps read-only', () => {
  const asReader = (sql: string) => {
    try {
      return runSql(w.prod, 'makapix', sql, 'twinstack_reader').trim();
    } catch (e) {
      return `ERROR ${String((e as { stderr?: string }).stderr ?? e)}`;
    }
  };

  it('creates the role, and the server refuses what the SQL guard would have to catch', async () => {
    await resample(w.ctx(), { dryRun: false, devPassword: PASSWORD });
    const role = prodRows(
      "SELECT rolsuper || ',' || rolcreaterole || ',' || rolreplication || ',' || rolconnlimit FROM pg_roles WHERE rolname = 'twinstack_reader'",
    );
    assert.equal(role, 'false,false,false,4');
    assert.equal(prodRows("SELECT pg_has_role('twinstack_reader', 'pg_read_all_data', 'MEMBER')"), 't');
    const before = w.dump(w.prod, 'makapix');
    // Writes, server settings, replication slots, other sessions: each refused by the server itself.
    assert.match(asReader("INSERT INTO licenses (code, title) VALUES ('x', 'x')"), /read-only transaction/);
    assert.match(asReader("SET default_transaction_read_only = off; UPDATE users SET handle = 'owned'"), /permission denied for table users/);
    assert.match(asReader('ALTER SYSTEM SET default_transaction_read_only = on'), /ERROR/);
    assert.match(asReader("SELECT pg_create_physical_replication_slot('twinstack_attack')"), /must be superuser or replication role/);
    assert.match(asReader("SELECT pg_read_file('/etc/passwd')"), /permission denied for function pg_read_file/);
    assert.match(asReader('SELECT pg_reload_conf()'), /permission denied for function pg_reload_conf/);
    assert.match(asReader(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '${w.prod.user}'`), /f|must be a (superuser|member)/);
    assert.equal(w.dump(w.prod, 'makapix'), before, 'production unchanged');
    assert.equal(prodRows('SELECT count(*) FROM pg_replication_slots'), '0');
    assert.equal(prodRows("SELECT count(*) FROM pg_file_settings WHERE name = 'default_transaction_read_only'"), '0');
  });

  it('refuses to read through a role that could write, naming what it may do and the SQL that makes one that cannot', async () => {
    w.prod.psql(
      'DROP ROLE IF EXISTS reader_super; CREATE ROLE reader_super LOGIN SUPERUSER; DROP ROLE IF EXISTS reader_owner; CREATE ROLE reader_owner LOGIN IN ROLE pg_read_all_data, pg_write_all_data CONNECTION LIMIT 4; ALTER ROLE reader_owner SET default_transaction_read_only = on',
    );
    const devBefore = w.dump(w.dev, 'makapix_dev');
    for (const [role, why] of [
      [
        'reader_super',
        /production's read role reader_super is a superuser: the server would not stop a write; .*run: CREATE ROLE reader_super LOGIN NOSUPERUSER/,
      ],
      ['reader_owner', /reader_owner is a member of pg_write_all_data .*may write \d+ table/],
      [w.prod.user, /is production's own database user/],
    ] as const) {
      await assert.rejects(resample(w.ctx(w.config({ ...SAMPLE_CONFIG, 'reader-role': role })), { dryRun: false, devPassword: PASSWORD }), (e: Error) => {
        assert.match(e.message, why);
        assert.equal(e.message.split('\n').length, 1);
        return true;
      });
    }
    assert.equal(w.dump(w.dev, 'makapix_dev'), devBefore, 'dev untouched');
  });
});

describe('fail-closed', () => {
  it('never lets a column rule or the filter write to production or run a shell there', async () => {
    const prodBefore = w.dump(w.prod, 'makapix');
    const devBefore = w.dump(w.dev, 'makapix_dev');
    const marker = path.join(w.dir, 'a-shell-ran');
    const attacks: Array<[string, string, RegExp]> = [
      // The reported attack: close the COPY's select, write, then psql's shell escape.
      ['users.email', `email) TO STDOUT; UPDATE users SET email = 'owned@example.test'; \\! touch ${marker}\nSELECT (email`, /backslash/],
      ['users.email', `(email) || 'x'; UPDATE users SET email = 'owned@example.test'`, /holds 2 statements/],
      ['users.email', `email || (SELECT 1) || '\\! touch ${marker}'`, /backslash/],
      ['users.email', `$x$a$x$`, /"\$"/],
      ['users.email', `email -- hide the rest`, /comment/],
      ['users.email', `pg_terminate_backend(pg_backend_pid())::text`, /a call of pg_terminate_backend\(\)/],
      ['users.email', `email, password_hash`, /must be one expression/],
      ['users.email', `email FROM users UNION SELECT password_hash`, /must be one expression/],
      ['users.email', `email)`, /does not parse as PostgreSQL/],
      // The attack review's: quoted, schema-qualified and Unicode-escaped names of functions that act
      // outside the snapshot (a file read, a large object, a server setting, a replication slot).
      ['users.email', `"pg_read_file"('/etc/passwd')`, /a call of pg_read_file\(\)/],
      ['users.email', `pg_catalog."lo_export"(lo_from_bytea(0, 'x'), '${marker}')::text`, /a call of pg_catalog\.lo_export\(\)/],
      ['users.email', `U&"lo!005fcreate" UESCAPE '!' (424242)::text`, /a call of lo_create\(\)/],
      ['users.email', `"set_config"('default_transaction_read_only', 'on', false)`, /a call of set_config\(\)/],
      ['users.email', `(pg_catalog."pg_create_physical_replication_slot"('twinstack_attack')).slot_name::text`, /pg_create_physical_replication_slot\(\)/],
      ['users.email', `:'ON_ERROR_STOP'`, /psql variable/],
    ];
    for (const [column, sql, problem] of attacks) {
      let error: unknown;
      try {
        await resample(w.ctx(w.config({ ...SAMPLE_CONFIG, columns: { ...SAMPLE_CONFIG.columns, [column]: { sql } } })), {
          dryRun: false,
          devPassword: PASSWORD,
        });
      } catch (e) {
        error = e;
      }
      assert.ok(error instanceof ConfigurationError, `${sql}: ${String(error)}`);
      assert.match(error.message, new RegExp(`${column.replace('.', '\\.')}`));
      assert.match(error.message, problem);
      assert.equal(error.message.split('\n').length, 1);
    }
    await assert.rejects(
      async () => resample(w.ctx(w.config({ ...SAMPLE_CONFIG, filter: 'true; DELETE FROM users' })), { dryRun: false }),
      /sample\.filter: holds 2 statements/,
    );
    assert.equal(w.dump(w.prod, 'makapix'), prodBefore, 'production unchanged, byte for byte');
    assert.equal(w.dump(w.dev, 'makapix_dev'), devBefore);
    assert.ok(!fs.existsSync(marker), 'no shell ran, no file written');
    assert.equal(prodRows('SELECT count(*) FROM pg_largeobject_metadata'), '0', 'no large object in production');
    assert.equal(prodRows('SELECT count(*) FROM pg_replication_slots'), '0', 'no replication slot in production');
    assert.equal(prodRows("SELECT count(*) FROM pg_file_settings WHERE name = 'default_transaction_read_only'"), '0', 'no server setting written');
    // Expressions that are only expressions still work: operators that read like clauses, subqueries.
    const fine = w.config({
      ...SAMPLE_CONFIG,
      filter: "id IS DISTINCT FROM 0 AND handle NOT SIMILAR TO 'x%' AND substring(handle FROM 1 FOR 1) <> ';'",
      columns: { ...SAMPLE_CONFIG.columns, 'users.email': { sql: "'user' || id::text || '@dev.example.test'" } },
    });
    assert.ok(fine.sample.filter);
  });

  it('refuses to start when a copied text column has no rule, sensitive-looking or free text, and lists it', async () => {
    const columns: Record<string, unknown> = { ...SAMPLE_CONFIG.columns };
    delete columns['players.private_key'];
    delete columns['view_events.ip_hash'];
    delete columns['users.bio'];
    const before = w.dump(w.dev, 'makapix_dev');
    await assert.rejects(resample(w.ctx(w.config({ ...SAMPLE_CONFIG, columns })), { dryRun: false }), (e: Error) => {
      assert.ok(e instanceof ConfigurationError);
      assert.match(
        e.message,
        /refusing to start: 3 copied text columns have no rule: public\.users\.bio \(text\), public\.players\.private_key \(matches "\w+"\), public\.view_events\.ip_hash \(matches "ip"\)/,
      );
      return true;
    });
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
  });

  it('fails the run when the leak scan finds a real value (a rule that does not mask), dev untouched', async () => {
    const before = w.dump(w.dev, 'makapix_dev');
    const dbs = w.databases(w.dev);
    const config = w.config({ ...SAMPLE_CONFIG, columns: { ...SAMPLE_CONFIG.columns, 'users.email': { sql: 'lower(email)' } } });
    await assert.rejects(resample(w.ctx(config), { dryRun: false }), (e: Error) => {
      assert.ok(e instanceof ResampleFailed);
      assert.match(e.message, /leak scan: real production values found in staging: public\.users\.email found in public\.users\.email \(\d+ rows\)/);
      assert.ok(!/person\d+@/.test(e.message), 'the error shows a real value');
      return true;
    });
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
    assert.deepEqual(w.databases(w.dev), dbs);
  });

  it('catches `keep` on a column holding e-mail addresses', async () => {
    const config = w.config({ ...SAMPLE_CONFIG, columns: { ...SAMPLE_CONFIG.columns, 'users.email': 'keep' } });
    await assert.rejects(resample(w.ctx(config), { dryRun: false }), /leak scan: .*public\.users\.email found in public\.users\.email/);
  });

  it('finds a real value copied inside a JSON payload', async () => {
    prodRows(
      "UPDATE social_notifications SET payload = payload || jsonb_build_object('actor_email', (SELECT email FROM users WHERE id = social_notifications.user_id))",
    );
    try {
      await assert.rejects(resample(w.ctx(), { dryRun: false }), /leak scan: .*public\.users\.email found in public\.social_notifications\.payload/);
    } finally {
      prodRows("UPDATE social_notifications SET payload = payload - 'actor_email'");
    }
  });

  it("refuses a sample whose orphan only post-data's foreign key finds, naming the key and its rows, dev untouched", async () => {
    // The orphans of production's validated keys are not counted before post-data: its constraint
    // checks the rows. A post copied then lost in staging leaves its comments pointing nowhere.
    const before = w.dump(w.dev, 'makapix_dev');
    const dbs = w.databases(w.dev);
    let lost = '';
    const afterRows = (staging: string) => {
      lost = runSql(w.dev, staging, 'SELECT count(*) FROM comments WHERE post_id = (SELECT min(post_id) FROM comments)').trim();
      runSql(w.dev, staging, 'DELETE FROM posts WHERE id = (SELECT min(post_id) FROM comments)');
      return Promise.resolve();
    };
    await assert.rejects(resample(w.ctx(), { dryRun: false }, { afterRows }), (e: Error) => {
      assert.ok(e instanceof ResampleFailed);
      assert.match(e.message, new RegExp(`orphaned references in the sample: .*public\\.comments\\.comments_post_id_fkey \\(${lost}\\)`));
      return true;
    });
    assert.ok(Number(lost) > 0);
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
    assert.deepEqual(w.databases(w.dev), dbs);
  });
});

describe('the swap', () => {
  it('puts dev back exactly as it was when a migration fails after the copy', async () => {
    const before = w.dump(w.dev, 'makapix_dev');
    const dbs = w.databases(w.dev);
    let migratedOn = '';
    await assert.rejects(
      resample(
        w.ctx(),
        { dryRun: false },
        {
          migrate: (db) => {
            migratedOn = runSql(w.dev, db, 'CREATE TABLE half_applied (x int); SELECT count(*) FROM users').trim();
            return Promise.reject(new Error('alembic upgrade head exited with code 1: relation "gadgets" does not exist'));
          },
        },
      ),
      /gadgets/,
    );
    assert.ok(Number(migratedOn) > 0, 'the migration ran on the swapped-in sample');
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
    assert.deepEqual(w.databases(w.dev), dbs);
  });

  it('recovers from a run that died mid-swap: the database dev had comes back', async () => {
    const before = w.dump(w.dev, 'makapix_dev');
    w.dev.psql('ALTER DATABASE makapix_dev RENAME TO makapix_dev__ts_previous');
    await resample(
      w.ctx(),
      { dryRun: false, devPassword: PASSWORD },
      {
        migrate: () => Promise.reject(new Error('stop here')),
      },
    ).catch(() => undefined);
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
    assert.ok(w.log.text.includes('an earlier resample died during its swap'));
  });
});

describe('errors from PostgreSQL', () => {
  it('never carry row values: a failing row, a duplicate key, a COPY line', async () => {
    const secret = 'my private message to bob';
    runSql(w.dev, 'postgres', 'DROP DATABASE IF EXISTS scrub_test; CREATE DATABASE scrub_test');
    runSql(
      w.dev,
      'scrub_test',
      `CREATE TABLE dm (id int PRIMARY KEY, body text NOT NULL, CHECK (length(body) < 10)); CREATE TABLE u (email text UNIQUE); INSERT INTO u VALUES ('${secret}')`,
    );
    const dev = new Environment('dev', w.config());
    for (const [sql, where] of [
      [`INSERT INTO dm VALUES (1, '${secret}')`, /violates check constraint "dm_body_check"/],
      [`INSERT INTO u VALUES ('${secret}')`, /duplicate key value violates unique constraint "u_email_key"/],
      [`COPY dm FROM stdin;\n2\t${secret}\n\\.\n`, /COPY dm, line 1/],
    ] as const) {
      const e = await w.host.run(psql(dev, 'scrub_test'), { stdin: `${sql};\n`, quiet: true }).then(
        () => undefined,
        (err: unknown) => err,
      );
      assert.ok(e instanceof RemoteCommandError, String(e));
      assert.match(e.message, where);
      assert.ok(!e.message.includes(secret) && !e.stderr.includes(secret), e.message);
    }
    runSql(w.dev, 'postgres', 'DROP DATABASE scrub_test');
  });
});

describe("dev's database settings", () => {
  it('survive the swap: ALTER DATABASE and ALTER ROLE ... IN DATABASE values move to the new database', async () => {
    const settings = () =>
      runSql(
        w.dev,
        'postgres',
        `SELECT coalesce(r.rolname, '-') || ' ' || c FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) c WHERE d.datname = 'makapix_dev' ORDER BY 1`,
      ).trim();
    runSql(
      w.dev,
      'postgres',
      "ALTER DATABASE makapix_dev SET work_mem = '7MB'; ALTER DATABASE makapix_dev SET search_path = public, extensions; ALTER ROLE app_rw IN DATABASE makapix_dev SET statement_timeout = '5s'",
    );
    const before = settings();
    assert.equal(before.split('\n').length, 3);
    await resample(w.ctx(), { dryRun: false, devPassword: PASSWORD });
    assert.equal(settings(), before);
    runSql(w.dev, 'postgres', 'ALTER DATABASE makapix_dev RESET ALL; ALTER ROLE app_rw IN DATABASE makapix_dev RESET ALL');
  });
});

describe('a promotion and a resample', () => {
  it("wait for each other: production's snapshot is read under prod's lock, and the wait is named", async () => {
    const config = w.config();
    const devBefore = w.dump(w.dev, 'makapix_dev');
    const holder = await connect(w.sshd, {}, new MemoryLogger());
    const lock = await EnvironmentLock.acquire({
      host: holder,
      stateDir: config['state-dir'],
      env: 'prod',
      holder: { run: 'https://ci.test/runs/77', actor: 'octocat', sha: 'f'.repeat(40), action: 'promote', op: 'p77', since: new Date().toISOString() },
      waitSeconds: 5,
      log: new MemoryLogger(),
    });
    try {
      await assert.rejects(
        resample({ ...w.ctx(config), lockTimeoutSeconds: 2 }, { dryRun: false, devPassword: PASSWORD }),
        /the prod environment is locked by promote run https:\/\/ci\.test\/runs\/77.*gave up after 2s/,
      );
    } finally {
      await lock.release();
      await holder.close();
    }
    assert.match(w.log.text, /The prod lock is held or was left by promote run https:\/\/ci\.test\/runs\/77/);
    assert.equal(w.dump(w.dev, 'makapix_dev'), devBefore, 'dev unchanged');
    assert.deepEqual(
      w.databases(w.dev).filter((d) => d.includes('__ts_')),
      [],
      'no staging database left',
    );
  });
});

describe('a run cut during its swap', () => {
  it('leaves the way back on the host, and the next operation on dev, whatever it is, puts the database back first', async () => {
    const config = w.config();
    const pending = path.join(config['state-dir'], 'dev', 'pending', 'resample-swap.sh');
    assert.ok(!fs.existsSync(pending), 'finished resamples leave no undo behind');
    const before = w.dump(w.dev, 'makapix_dev');
    const cut = await connect(w.sshd, {}, w.log);
    await assert.rejects(
      resample(
        { ...w.ctx(config), host: cut },
        { dryRun: false, devPassword: PASSWORD },
        {
          migrate: async () => {
            await cut.close();
            throw new Error('the runner lost its connection');
          },
        },
      ),
    );
    // On the host: the sample holds dev's name, dev's own database is set aside, the undo waits.
    assert.ok(w.databases(w.dev).includes('makapix_dev__ts_previous'));
    assert.notEqual(w.dump(w.dev, 'makapix_dev'), before);
    assert.match(fs.readFileSync(pending, 'utf8'), /^# resample swap of dev started /);

    await underLock(
      {
        host: w.host,
        stateDir: config['state-dir'],
        env: 'dev',
        project: config.environments.dev.project,
        action: 'deploy',
        run: RUN,
        log: w.log,
        lockTimeoutSeconds: 30,
      },
      () => Promise.resolve(),
    );
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
    assert.deepEqual(
      w.databases(w.dev).filter((d) => d.includes('__ts_')),
      [],
    );
    assert.ok(!fs.existsSync(pending));
    const records = parseLog(fs.readFileSync(path.join(config['state-dir'], 'dev', 'log.jsonl'), 'utf8'), 'log.jsonl');
    assert.ok(records.some((r) => r.event === 'recovered' && /resample swap of dev/.test(r.what)));
  });
});

describe('dry run', () => {
  it('prints the plan and changes nothing', async () => {
    const devBefore = w.dump(w.dev, 'makapix_dev');
    const dbs = w.databases(w.dev);
    const report = await resample(w.ctx(), { dryRun: true, fraction: 0.5 });
    assert.equal(report.dryRun, true);
    assert.equal(report.fraction, 0.5);
    assert.deepEqual(
      report.tables.slice(0, 2).map((t) => [t.table, t.mode]),
      [
        ['public.users', 'root'],
        ['public.badge_grants', 'owned'],
      ],
    );
    assert.ok(report.foreignKeys.some((f) => f.table === 'public.follows' && f.policy === 'drop'));
    assert.ok(report.foreignKeys.some((f) => f.table === 'public.comments' && f.columns[0] === 'author_id' && f.policy === 'null'));
    assert.equal(w.dump(w.dev, 'makapix_dev'), devBefore);
    assert.deepEqual(w.databases(w.dev), dbs);
  });
});
