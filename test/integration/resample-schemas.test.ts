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
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { Environment } from '../../src/domain/environment';
import { readCatalog } from '../../src/resample/catalog';
import { initSample } from '../../src/resample/init';
import { runBundle } from '../harness/bundle';
import { SCHEMA_SQL, dataSql } from '../fixtures/sample-schema/generate';

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
        assert.match(
          e.message,
          /sample\.foreign-keys\.players\(current_post_id\).*give policy \(include, structure, null or drop\), owns \(true or false\), or both/,
        );
        return true;
      },
    );
  });
});

describe('CHECK constraints over nullable references', () => {
  // Issue 15's reproduction: a like points at a post or at another user, exactly one of them. A
  // like of a sampled user on an unsampled post would arrive with its post nulled and break it.
  const SCHEMA = `
CREATE TABLE users (id int PRIMARY KEY);
CREATE TABLE posts (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users);
CREATE TABLE likes (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users, post_id int REFERENCES posts, other_user_id int REFERENCES users, CHECK (num_nonnulls(post_id, other_user_id) = 1));
INSERT INTO users SELECT g FROM generate_series(1,100) g;
INSERT INTO posts SELECT g, g FROM generate_series(1,100) g;
`;
  const LEAF = `${SCHEMA}INSERT INTO likes SELECT g, g, 1 + g*37 % 100, NULL FROM generate_series(1,100) g;\n`;
  // Events of a like make likes a keyed table: its members are pruned before events look them up.
  // Every fifth like points at another user instead of a post.
  const KEYED = `${SCHEMA}
INSERT INTO likes SELECT g, g, CASE WHEN g % 5 <> 0 THEN 1 + g*37 % 100 END, CASE WHEN g % 5 = 0 THEN 1 + g*53 % 100 END FROM generate_series(1,100) g;
CREATE TABLE like_events (id int PRIMARY KEY, like_id int NOT NULL REFERENCES likes);
INSERT INTO like_events SELECT g, 1 + g % 100 FROM generate_series(1,300) g;
`;
  const CHECK_HOLDS = 'SELECT count(*) FROM likes WHERE NOT (num_nonnulls(post_id, other_user_id) = 1)';
  const NOTE = /^rows whose .* is sampled; rows whose nulled reference would break CHECK likes_check are dropped$/;

  it('drops a leaf like whose post is outside the sample instead of copying it with the post nulled; the dry run says so', async () => {
    loadScenario(w, LEAF);
    const sample = { root: 'users', fraction: 0.1, seed: 'chk' };
    const ids = sampledKeys('chk', 0.1, 100);
    const kept = ids.filter((g) => ids.includes(1 + ((g * 37) % 100)));
    assert.ok(kept.length > 0 && kept.length < ids.length, `the fixture keeps some likes and drops others (${kept.length} of ${ids.length})`);
    const dry = await resample(w.ctx(w.config(sample)), { dryRun: true });
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false });
    assert.equal(report.swapped, true);
    assert.equal(devRows(CHECK_HOLDS), '0');
    assert.equal(devRows("SELECT string_agg(id::text, ',' ORDER BY id) FROM likes"), kept.join(','));
    assert.equal(devRows('SELECT count(*) FROM likes WHERE post_id IS NULL'), '0');
    const likes = report.tables.find((t) => t.table === 'public.likes');
    assert.match(likes?.note ?? '', NOTE);
    assert.deepEqual(likes?.checkDrops, [{ check: 'likes_check', rows: ids.length - kept.length }]);
    assert.match(
      resampleSummary(report, { ok: true }).toMarkdown(),
      new RegExp(`public\\.likes: ${ids.length - kept.length} row\\(s\\) dropped, their nulled reference would break CHECK likes_check`),
    );
    // The dry run plans the same: same note, same check, nothing counted.
    const planned = dry.tables.find((t) => t.table === 'public.likes');
    assert.equal(planned?.note, likes?.note);
    assert.deepEqual(planned?.checkDrops, [{ check: 'likes_check' }]);
    assert.deepEqual(dry.plan.tables.find((t) => t.table.id === 'public.likes')?.checkDrops, ['likes_check']);
  });

  it('prunes a keyed like before its events look it up: no orphans, no broken check', async () => {
    loadScenario(w, KEYED);
    const sample = { root: 'users', fraction: 0.3, seed: 'chk' };
    const ids = sampledKeys('chk', 0.3, 100);
    const target = (g: number) => (g % 5 === 0 ? 1 + ((g * 53) % 100) : 1 + ((g * 37) % 100));
    const kept = ids.filter((g) => ids.includes(target(g)));
    assert.ok(kept.some((g) => g % 5 === 0) && kept.length < ids.length, `the fixture keeps likes of both kinds and drops others (${kept.join(',')})`);
    const dry = await resample(w.ctx(w.config(sample)), { dryRun: true });
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false });
    assert.equal(report.swapped, true);
    assert.equal(report.plan.tables.find((t) => t.table.id === 'public.likes')?.keyed, true);
    assert.equal(devRows(CHECK_HOLDS), '0');
    assert.equal(devRows("SELECT string_agg(id::text, ',' ORDER BY id) FROM likes"), kept.join(','));
    // Events come only with the likes that stayed; post-data's foreign keys found no orphan either.
    assert.equal(devRows('SELECT count(*) FROM like_events WHERE like_id NOT IN (SELECT id FROM likes)'), '0');
    assert.equal(devRows('SELECT count(*) FROM like_events'), prodRows(`SELECT count(*) FROM like_events WHERE like_id IN (${kept.join(',')})`));
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
    const likes = report.tables.find((t) => t.table === 'public.likes');
    assert.match(likes?.note ?? '', NOTE);
    assert.deepEqual(likes?.checkDrops, [{ check: 'likes_check', rows: ids.length - kept.length }]);
    assert.equal(dry.tables.find((t) => t.table === 'public.likes')?.note, likes?.note);
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

describe('init: rules from the catalog', () => {
  // Names, bios, locations and JSON, a lookup table, a session table, an integer address_id.
  const SCHEMA = `
CREATE TABLE countries (code text PRIMARY KEY, name text NOT NULL);
CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL UNIQUE, display_name text, bio text, location text, prefs jsonb NOT NULL, kind text NOT NULL,
  country text REFERENCES countries(code), address_id int, last_ip inet, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE posts (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts(id), body text NOT NULL, meta json);
CREATE TABLE comments (id int PRIMARY KEY, post_id int NOT NULL REFERENCES posts(id), author_id int REFERENCES accounts(id), body text NOT NULL, author_name text);
CREATE TABLE sessions (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts(id), token text NOT NULL);
INSERT INTO countries VALUES ('fr', 'France'), ('de', 'Germany'), ('jp', 'Japan');
INSERT INTO accounts SELECT g, 'member' || g || '@mail.example.org', 'Jane Doe-' || g, 'My real bio, number ' || g, 'Rue ' || g || ', Paris',
  jsonb_build_object('theme', 'dark', 'contact', 'member' || g || '@mail.example.org'), (ARRAY['free', 'pro', 'staff'])[1 + g % 3],
  (ARRAY['fr', 'de', 'jp'])[1 + g % 3], g, ('192.168.' || g / 256 || '.' || g % 256)::inet
FROM generate_series(1, 500) g;
-- Every account has one post whose body is its bio, quoted.
INSERT INTO posts SELECT g, 1 + g % 500, CASE WHEN g <= 500 THEN 'My real bio, number ' || (1 + g % 500) ELSE 'Post ' || g END, json_build_object('n', g) FROM generate_series(1, 1500) g;
INSERT INTO comments SELECT g, 1 + g % 1500, 1 + (g * 7) % 500, 'Comment ' || g, 'Jane Doe-' || (1 + (g * 7) % 500) FROM generate_series(1, 3000) g;
INSERT INTO sessions SELECT g, 1 + g % 500, md5('s' || g) FROM generate_series(1, 500) g;
`;
  let yaml = '';
  const run = async (sample: unknown) => resample(w.ctx(w.config(sample as Record<string, unknown>)), { dryRun: false, devPassword: 'pw' });

  it('writes a rule for every copied text column: fake names and e-mails, nothing kept of free text, lookups whole, sessions empty', async () => {
    loadScenario(w, SCHEMA);
    const catalog = await readCatalog(w.host, new Environment('prod', w.config()));
    yaml = initSample(catalog, { root: 'users', fraction: 0.2, seed: 'init' }).yaml;
    const rules = Object.fromEntries([...yaml.matchAll(/^ {4}(\S+): (.+?)\s+#/gm)].map((m) => [m[1], m[2]]));
    assert.deepEqual(rules, {
      'accounts.email': 'fake-email',
      'accounts.display_name': 'fake-name',
      'accounts.bio': "'null'",
      'accounts.location': "'null'",
      'accounts.prefs': `{ sql: "'{}'" }`,
      'accounts.kind': 'keep',
      'accounts.last_ip': 'rehash',
      'comments.body': 'rehash',
      'comments.author_name': 'fake-name',
      'countries.name': 'keep',
      'posts.body': 'rehash',
      'posts.meta': "'null'",
    });
    assert.match(yaml, /^ {2}root: accounts$/m);
    assert.match(yaml, /^ {2}reference-tables: \[countries\]$/m);
    assert.match(yaml, /^ {4}- sessions +# credentials or sessions/m);
    assert.ok(!/address_id|country:|created_at/.test(yaml), 'key, integer and date columns need no rule');
  });

  it("init's output runs clean: every masked column probed, 0 leaks, no personal value in dev", async () => {
    const sample = (parse(yaml) as { sample: unknown }).sample;
    const report = await run(sample);
    assert.deepEqual(report.leaks, []);
    // Every textual column with a masking rule had its real values probed.
    assert.equal(report.probes, 10);
    const dump = w.dump(w.dev, 'makapix_dev');
    for (const personal of ['@mail.example.org', 'Jane Doe', 'My real bio', 'Rue ', '192.168.']) assert.ok(!dump.includes(personal), `${personal} reached dev`);
    assert.ok(Number(devRows('SELECT count(*) FROM accounts')) > 50);
    assert.equal(devRows('SELECT count(*) FROM sessions'), '0');
    assert.equal(devRows('SELECT count(*) FROM countries'), '3');
  });

  it('probes free text that has a masking rule: a bio quoted verbatim in a kept column is a leak', async () => {
    const sample = (parse(yaml) as { sample: { columns: Record<string, unknown> } }).sample;
    await assert.rejects(
      run({ ...sample, columns: { ...sample.columns, 'posts.body': 'keep' } }),
      /leak scan: real production values found in staging: public\.accounts\.bio found in public\.posts\.body/,
    );
  });

  it('is an input of the action: the bundled resample with init: true prints the section and changes nothing', async () => {
    const before = w.dump(w.dev, 'makapix_dev');
    const workspace = path.join(w.dir, 'workspace');
    fs.mkdirSync(path.join(workspace, '.github'), { recursive: true });
    fs.writeFileSync(path.join(workspace, '.github', 'twinstack.yml'), w.configYaml({ root: 'accounts' }));
    const r = await runBundle(
      'resample',
      { host: '127.0.0.1', port: String(w.sshd.port), user: w.sshd.user, 'ssh-key': w.sshd.privateKey, 'known-hosts': w.sshd.knownHosts, init: 'true' },
      { workspace },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.outputs['sample-config'] ?? '', /accounts\.email: fake-email/);
    assert.equal(w.dump(w.dev, 'makapix_dev'), before);
  });
});

describe("the README's example sample section", () => {
  it('is what init writes for the fixture schema', async () => {
    loadScenario(w, `${SCHEMA_SQL}\n${dataSql(400)}`);
    const catalog = await readCatalog(w.host, new Environment('prod', w.config()));
    const { yaml } = initSample(catalog, { root: 'users', fraction: 0.1, seed: 'makapix-dev' });
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const block = /```yaml\n(# Written by twinstack resample \(init\)[\s\S]*?)```/.exec(readme)?.[1];
    assert.equal(block, yaml);
    // And it runs clean as it is.
    const report = await resample(w.ctx(w.config((parse(yaml) as { sample: Record<string, unknown> }).sample)), { dryRun: false, devPassword: 'pw' });
    assert.deepEqual(report.leaks, []);
    assert.ok(report.probes >= 10, `${report.probes} probes`);
  });
});

describe('derived data refreshed after the load (sample.after-load)', () => {
  // A count kept by a trigger: the load bypasses it (rows arrive before triggers act on them), so
  // production's totals arrive in dev until after-load recomputes them in staging.
  const SCHEMA = `
CREATE TABLE person (id int PRIMARY KEY, name text, post_count int NOT NULL DEFAULT 0);
CREATE TABLE post (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), body text);
CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE person SET post_count = post_count + 1 WHERE id = NEW.person_id; RETURN NEW; END $$;
CREATE TRIGGER post_count AFTER INSERT ON post FOR EACH ROW EXECUTE FUNCTION bump();
INSERT INTO person (id, name) SELECT g, 'person ' || g FROM generate_series(1, 100) g;
INSERT INTO post SELECT g, 1 + (g * 13) % 100, 'post ' || g FROM generate_series(1, 1000) g;
`;
  const sample = {
    root: 'person',
    fraction: 0.3,
    seed: 'counts',
    columns: { 'person.name': { sql: "'someone ' || id" }, 'post.body': { sql: "'text ' || id" } },
  };
  const wrongCounts = () => devRows('SELECT count(*) FROM person p WHERE post_count <> (SELECT count(*) FROM post WHERE person_id = p.id)');

  it("runs the statements in staging before the swap, reporting each one's rows, so counts match the sampled rows", async () => {
    loadScenario(w, SCHEMA);
    // Without after-load, every sampled person keeps production's count (a person loses posts only when
    // they are not in the sample, so the counts here agree by construction: make them differ).
    runSql(w.prod, 'makapix', 'UPDATE person SET post_count = post_count + 5');
    await resample(w.ctx(w.config(sample)), { dryRun: false });
    const persons = Number(devRows('SELECT count(*) FROM person'));
    assert.ok(persons > 10, `the sample holds persons (${persons})`);
    assert.equal(wrongCounts(), String(persons), 'the fixture does not show the problem');
    const report = await resample(
      w.ctx(w.config({ ...sample, 'after-load': ['UPDATE person p SET post_count = (SELECT count(*) FROM post WHERE person_id = p.id)'] })),
      { dryRun: false },
    );
    assert.equal(wrongCounts(), '0');
    assert.equal(report.afterLoad.length, 1);
    assert.equal(report.afterLoad[0].rows, persons);
    assert.match(resampleSummary(report, { ok: true }).toMarkdown(), new RegExp(`\\| UPDATE person p SET post_count = .* \\| ${persons} \\| \\d+ \\|`));
    // Production is only read.
    assert.equal(prodRows('SELECT count(*) FROM person p WHERE post_count <> (SELECT count(*) FROM post WHERE person_id = p.id) + 5'), '0');
  });

  it('a failing statement fails the run before the swap: dev keeps its database', async () => {
    const before = devRows('SELECT sum(post_count) FROM person');
    await assert.rejects(resample(w.ctx(w.config({ ...sample, 'after-load': ['UPDATE no_such_table SET x = 1'] })), { dryRun: false }), /no_such_table/);
    assert.equal(devRows('SELECT sum(post_count) FROM person'), before);
  });
});
