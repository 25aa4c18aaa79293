/**
 * The resample on schemas the fixture does not have, each loaded into a real production server:
 * foreign keys declared on partitions, non-owning keys, a schema with names, bios and JSON for
 * `init`, masking across tables and under unique indexes.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ConfigurationError } from '../../src/infra/errors';
import { resample } from '../../src/resample/engine';
import { isSampled } from '../../src/resample/plan';
import { resampleSummary } from '../../src/resample/report';
import { loadScenario, runSql, startWorld, type World } from './resample-support';

let w: World;

before(async () => {
  w = await startWorld(20);
});
after(async () => {
  await w?.stop();
});

const devRows = (sql: string) => runSql(w.dev, 'makapix_dev', sql).trim();
const prodRows = (sql: string) => runSql(w.prod, 'makapix', sql).trim();

function sampledKeys(seed: string, fraction: number, n: number): number[] {
  const ids: number[] = [];
  for (let id = 1; id <= n; id++) if (isSampled(seed, fraction, String(id))) ids.push(id);
  return ids;
}

describe('foreign keys declared on partitions', () => {
  // The reproduction, with a second partition declaring the same key under another name,
  // and a settings table nothing reaches.
  const SCHEMA = `
CREATE TABLE customer (id int PRIMARY KEY, email text);
CREATE TABLE payment (id int, customer_id int NOT NULL, paid date NOT NULL, PRIMARY KEY (id, paid)) PARTITION BY RANGE (paid);
CREATE TABLE payment_2022 PARTITION OF payment FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
CREATE TABLE payment_2023 PARTITION OF payment FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
ALTER TABLE payment_2022 ADD FOREIGN KEY (customer_id) REFERENCES customer(id);
ALTER TABLE payment_2023 ADD CONSTRAINT payment_2023_customer FOREIGN KEY (customer_id) REFERENCES customer(id);
CREATE TABLE app_setting (id int PRIMARY KEY, value int NOT NULL);
INSERT INTO customer SELECT g, 'customer' || g || '@mail.example.org' FROM generate_series(1, 200) g;
INSERT INTO payment SELECT g, 1 + (g * 7) % 200, date '2022-01-01' + (g % 700) FROM generate_series(1, 2224) g;
INSERT INTO app_setting VALUES (1, 10), (2, 20);
`;
  const sample = { root: 'customer', fraction: 0.2, seed: 'pay', columns: { 'customer.email': { sql: "'c' || id || '@dev.example.test'" } } };

  it('brings every payment of a sampled customer, from every partition', async () => {
    loadScenario(w, SCHEMA);
    const ids = sampledKeys('pay', 0.2, 200);
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false });
    const expected = prodRows(`SELECT count(*) FROM payment WHERE customer_id IN (${ids.join(',')})`);
    assert.ok(Number(expected) > 100, `the fixture has payments of sampled customers (${expected})`);
    assert.equal(devRows('SELECT count(*) FROM payment'), expected);
    assert.ok(Number(devRows('SELECT count(*) FROM ONLY payment_2023')) > 0);
    assert.equal(devRows(`SELECT count(*) FROM payment WHERE customer_id NOT IN (${ids.join(',')})`), '0');
    // One key of the parent, declared on both partitions; no orphans, both constraints in dev.
    const fk = report.foreignKeys.filter((f) => f.table === 'public.payment');
    assert.equal(fk.length, 1);
    assert.equal(fk[0].orphans, 0);
    assert.equal(
      devRows("SELECT string_agg(conname, ',' ORDER BY conname) FROM pg_constraint WHERE contype = 'f'"),
      'payment_2022_customer_id_fkey,payment_2023_customer',
    );
  });

  it('warns in the summary about a table with rows that ends up empty without being in empty-tables, saying why', async () => {
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false });
    const warning = report.warnings.find((x) => x.startsWith('public.app_setting'));
    assert.ok(warning, report.warnings.join('\n'));
    assert.match(warning, /has 2 rows in production and none in dev: no foreign key leads from it to the sampled rows.*sample\.reference-tables/);
    assert.match(resampleSummary(report, { ok: true }).toMarkdown(), /⚠️ public\.app_setting has 2 rows in production and none in dev/);
    // Listed in empty-tables, it is a choice and no longer a warning.
    const quiet = await resample(w.ctx(w.config({ ...sample, 'empty-tables': ['app_setting'] })), { dryRun: false });
    assert.deepEqual(
      quiet.warnings.filter((x) => x.includes('app_setting')),
      [],
    );
    // An owned table whose rows all belong to unsampled owners is named too.
    const none = await resample(w.ctx(w.config({ ...sample, fraction: 0, 'empty-tables': ['app_setting'] })), { dryRun: false });
    assert.ok(
      none.warnings.some((x) =>
        /^public\.payment has 2224 rows in production and none in dev: none of its rows belongs to a sampled row \(through customer_id → public\.customer\)/.test(
          x,
        ),
      ),
      none.warnings.join('\n'),
    );
  });

  it('refuses, before anything runs, a partitioned table listed as a reference table whose partitions reference sampled rows', async () => {
    const dbs = w.databases(w.dev);
    await assert.rejects(resample(w.ctx(w.config({ ...sample, 'reference-tables': ['payment'] })), { dryRun: false }), (e: Error) => {
      assert.ok(e instanceof ConfigurationError);
      assert.match(e.message, /reference table public\.payment has a required foreign key payment_2022_customer_id_fkey to public\.customer/);
      assert.equal(e.message.split('\n').length, 1);
      return true;
    });
    assert.deepEqual(w.databases(w.dev), dbs);
  });

  it("accepts a policy for such a key under any of its partitions' constraint names", async () => {
    const report = await resample(w.ctx(w.config({ ...sample, 'foreign-keys': { payment_2023_customer: 'drop' } })), { dryRun: true });
    assert.equal(report.foreignKeys.find((f) => f.table === 'public.payment')?.source, 'config');
  });
});

describe('owning and non-owning foreign keys', () => {
  // A player belongs to its owner; it also points at the post it currently shows, which may be
  // another user's. Only the owner should bring a player (and its device name) into the sample.
  const SCHEMA = `
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL);
CREATE TABLE posts (id int PRIMARY KEY, owner_id int NOT NULL REFERENCES users(id));
CREATE TABLE players (id int PRIMARY KEY, owner_id int REFERENCES users(id), current_post_id int REFERENCES posts(id), device_name text);
INSERT INTO users SELECT g, 'u' || g || '@mail.example.org' FROM generate_series(1, 400) g;
INSERT INTO posts SELECT g, 1 + (g * 13) % 400 FROM generate_series(1, 1200) g;
INSERT INTO players SELECT g, 1 + (g * 7) % 400, 1 + (g * 31) % 1200, 'Frame of ' || g FROM generate_series(1, 1000) g;
`;
  const sample = {
    root: 'users',
    fraction: 0.3,
    seed: 'own',
    columns: { 'users.email': { sql: "'u' || id || '@dev.example.test'" }, 'players.device_name': 'keep' },
  };
  const ids = () => sampledKeys('own', 0.3, 400).join(',');

  it('by default, any key brings a row: players of unsampled users arrive through their post, the owner cleared and counted', async () => {
    loadScenario(w, SCHEMA);
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false });
    const foreign = prodRows(
      `SELECT count(*) FROM players p JOIN posts q ON q.id = p.current_post_id WHERE p.owner_id NOT IN (${ids()}) AND q.owner_id IN (${ids()})`,
    );
    assert.ok(Number(foreign) > 50, `the fixture has such players (${foreign})`);
    assert.equal(devRows('SELECT count(*) FROM players WHERE owner_id IS NULL'), foreign);
    const players = report.tables.find((t) => t.table === 'public.players');
    assert.deepEqual(players?.ownersCleared, [
      {
        key: 'current_post_id → public.posts',
        rows: Number(
          prodRows(`SELECT count(*) FROM players p JOIN posts q ON q.id = p.current_post_id WHERE p.owner_id IN (${ids()}) AND q.owner_id NOT IN (${ids()})`),
        ),
      },
      { key: 'owner_id → public.users', rows: Number(foreign) },
    ]);
    assert.match(
      resampleSummary(report, { ok: true }).toMarkdown(),
      new RegExp(`public\\.players: ${foreign} row\\(s\\) came along through another key with their owner owner_id → public\\.users cleared`),
    );
  });

  it('with owns: false on the post key, only the owner brings a player: no device name of an unsampled user reaches dev', async () => {
    const config = w.config({ ...sample, 'foreign-keys': { 'players(current_post_id)': { owns: false } } });
    const report = await resample(w.ctx(config), { dryRun: false });
    assert.equal(devRows('SELECT count(*) FROM players'), prodRows(`SELECT count(*) FROM players WHERE owner_id IN (${ids()})`));
    assert.equal(devRows('SELECT count(*) FROM players WHERE owner_id IS NULL'), '0');
    // The post key still resolves its reference: a post outside the sample is cleared, never an orphan.
    assert.ok(Number(devRows('SELECT count(*) FROM players WHERE current_post_id IS NULL')) > 0);
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
    assert.equal(report.foreignKeys.find((f) => f.columns[0] === 'current_post_id')?.policy, 'null, owns nothing');
    assert.deepEqual(report.tables.find((t) => t.table === 'public.players')?.ownersCleared, []);
  });

  it('refuses an entry that says nothing, in one line naming the key', () => {
    assert.throws(
      () => w.config({ ...sample, 'foreign-keys': { 'players(current_post_id)': {} } }),
      (e: Error) => {
        assert.match(e.message, /sample\.foreign-keys\.players\(current_post_id\).*give policy \(include, null or drop\), owns \(true or false\), or both/);
        return true;
      },
    );
  });
});

describe('consistent, unique masking', () => {
  // The same e-mail, name and IP in two tables; handles unique under lower(), e-mails unique.
  const SCHEMA = `
CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL UNIQUE, handle text NOT NULL, display_name text, last_ip inet, short_code varchar(12) UNIQUE);
CREATE UNIQUE INDEX users_handle_lower ON users (lower(handle));
CREATE TABLE invites (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users(id), email text NOT NULL, display_name text, ip inet);
INSERT INTO users SELECT g, 'person' || g || '@mail.example.org', 'Artist' || g, 'Real Name ' || (g % 500), ('10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256)::inet, 'c' || g FROM generate_series(1, 30000) g;
INSERT INTO invites SELECT g, 1 + (g * 7) % 30000, CASE WHEN g % 4 = 0 THEN 'other' || g || '@mail.example.org' ELSE 'person' || (1 + (g * 7) % 30000) || '@mail.example.org' END,
  'Real Name ' || ((1 + (g * 7) % 30000) % 500), ('10.' || ((1 + (g * 7) % 30000) / 65536) % 256 || '.' || ((1 + (g * 7) % 30000) / 256) % 256 || '.' || (1 + (g * 7) % 30000) % 256)::inet
FROM generate_series(1, 6000) g;
`;
  const sample = {
    root: 'users',
    fraction: 1,
    seed: 'mask',
    columns: {
      'users.email': 'fake-email',
      'users.handle': 'fake-name',
      'users.display_name': 'fake-name',
      'users.last_ip': 'rehash',
      'users.short_code': 'null',
      'invites.email': 'fake-email',
      'invites.display_name': 'fake-name',
      'invites.ip': 'rehash',
    },
  };
  const emails = () => devRows("SELECT md5(string_agg(email, ',' ORDER BY id)) FROM users");
  let first = '';

  it('gives the same input the same masked value in every table: e-mails, names, IP addresses', async () => {
    loadScenario(w, SCHEMA);
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false });
    assert.equal(report.leaks.length, 0);
    assert.equal(devRows('SELECT count(*) FROM users'), '30000');
    assert.equal(
      devRows(
        "SELECT count(*) FROM users WHERE email LIKE '%@mail.example.org' OR display_name LIKE 'Real Name%' OR handle LIKE 'Artist%' OR last_ip << '10.0.0.0/8'",
      ),
      '0',
    );
    // Where production had the same value in both tables, dev has the same masked value.
    const same = (col: string) => `SELECT count(*) FROM invites i JOIN users u ON u.id = i.user_id WHERE i.${col} = u.${col}`;
    assert.equal(devRows(same('email')), prodRows(same('email')));
    assert.equal(devRows(same('display_name')), prodRows(same('display_name')));
    const sameIp = 'SELECT count(*) FROM invites i JOIN users u ON u.id = i.user_id WHERE i.ip = u.last_ip';
    assert.equal(devRows(sameIp), prodRows(sameIp));
    assert.ok(Number(prodRows(sameIp)) > 4000);
    assert.ok(
      Number(prodRows(same('email'))) > 4000 &&
        Number(devRows('SELECT count(*) FROM invites i JOIN users u ON u.id = i.user_id WHERE i.email <> u.email')) > 1000,
    );
    assert.match(devRows('SELECT email FROM users WHERE id = 1'), /^u[0-9a-f]{20}@example\.invalid$/);
    assert.match(devRows('SELECT display_name FROM users WHERE id = 1'), /^[A-Z][a-z]+ [A-Z][a-z]+$/);
    assert.match(devRows('SELECT host(last_ip) FROM users WHERE id = 1'), /^fd[0-9a-f]{2}:/);
    first = emails();
  });

  it('keeps unique columns unique: the unique indexes are rebuilt in dev over the masked values', () => {
    assert.equal(devRows('SELECT count(DISTINCT email) FROM users'), '30000');
    assert.equal(devRows('SELECT count(DISTINCT lower(handle)) FROM users'), '30000');
    assert.equal(devRows("SELECT count(*) FROM pg_indexes WHERE indexname IN ('users_handle_lower', 'users_email_key')"), '2');
    // A unique handle's fake name carries part of its hash; a plain name does not need to.
    assert.match(devRows('SELECT handle FROM users WHERE id = 1'), /^[A-Z][a-z]+ [A-Z][a-z]+ [0-9a-f]{12}$/);
  });

  it('gives the same masked values in the next run with the same seed, and others with another seed', async () => {
    await resample(w.ctx(w.config(sample)), { dryRun: false });
    assert.equal(emails(), first);
    await resample(w.ctx(w.config(sample)), { dryRun: false, seed: 'another' });
    assert.notEqual(emails(), first);
  });

  it('refuses, in one line before anything runs, a rule that cannot keep a unique column unique', async () => {
    await assert.rejects(
      resample(w.ctx(w.config({ ...sample, columns: { ...sample.columns, 'users.short_code': 'rehash' } })), { dryRun: false }),
      (e: Error) => {
        assert.ok(e instanceof ConfigurationError);
        assert.match(
          e.message,
          /columns public\.users\.short_code: rehash needs 32 characters to keep this unique column unique and character varying\(12\) holds 12/,
        );
        assert.equal(e.message.split('\n').length, 1);
        return true;
      },
    );
  });
});
