/**
 * Issue 22 on a real production server: init's output, used unchanged, runs clean on a schema with
 * short unique columns and a lookup table of addresses holding phones; a public catalog column
 * that shares values with a personal one is declared, neither faked nor reported.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { Environment } from '../../src/domain/environment';
import { readCatalog } from '../../src/resample/catalog';
import { ResampleFailed, resample } from '../../src/resample/engine';
import { initSample } from '../../src/resample/init';
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

describe("init's output runs as it is written", () => {
  // Makapix's short unique columns (a handle, an e-mail, a code, a sqid, an emoji under a composite
  // unique key) and pagila's addresses: a lookup table holding phones, pointed at by users and by
  // staff, whose first name is also a city's.
  const SCHEMA = `
CREATE TABLE country (country_id int PRIMARY KEY, country text NOT NULL);
CREATE TABLE city (city_id int PRIMARY KEY, city text NOT NULL, country_id int NOT NULL REFERENCES country);
CREATE TABLE address (address_id int PRIMARY KEY, address text NOT NULL, address2 text, district text NOT NULL, city_id int NOT NULL REFERENCES city,
  postal_code text, phone text NOT NULL);
CREATE TABLE staff (staff_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, email text, address_id int NOT NULL REFERENCES address, picture bytea);
CREATE TABLE users (id int PRIMARY KEY, handle varchar(24) NOT NULL UNIQUE, email varchar(30) NOT NULL UNIQUE, short_code varchar(12) NOT NULL UNIQUE,
  address_id int NOT NULL REFERENCES address);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id int NOT NULL REFERENCES users, reviewed_by int REFERENCES staff, sqid varchar(16) NOT NULL UNIQUE, title text NOT NULL);
CREATE TABLE reactions (id int PRIMARY KEY, post_id bigint NOT NULL REFERENCES posts, user_id int NOT NULL REFERENCES users, emoji varchar(20) NOT NULL,
  UNIQUE (post_id, user_id, emoji));
INSERT INTO country VALUES (1, 'Canada'), (2, 'Jamaica'), (3, 'Italy');
INSERT INTO city VALUES (1, 'Kingston', 2), (2, 'Florence', 3), (3, 'Lethbridge', 1), (4, 'Montego Bay', 2);
INSERT INTO address SELECT g, g || ' Main Street', NULL, 'District ' || g % 8, 1 + g % 4, lpad((g * 37)::text, 5, '0'), '+1-555-' || lpad(g::text, 4, '0')
FROM generate_series(1, 300) g;
INSERT INTO staff VALUES (1, 'Florence', 'Hillyer', 'florence.hillyer@store.example.org', 1, '\\x89504e470d0a1a0a5374616666'), (2, 'Jonathan', 'Stephens', 'jon.stephens@store.example.org', 2, NULL);
INSERT INTO users SELECT g, 'artist_' || g, 'member' || g || '@mail.example.org', 'c' || md5(g::text)::varchar(11), 3 + g % 298 FROM generate_series(1, 400) g;
INSERT INTO posts SELECT g, 1 + (g * 7) % 400, CASE WHEN g % 3 = 0 THEN 1 + g % 2 END, 'p' || substr(md5('sq' || g), 1, 12), 'Post number ' || g FROM generate_series(1, 1200) g;
INSERT INTO reactions SELECT g, 1 + g / 30, 1 + (g * 13) % 400, 'emoji-' || g % 30 FROM generate_series(1, 3000) g;
`;
  let yaml = '';

  it('writes rules that fit the short unique columns, masks the phones of the lookup table and declares the lookups without people public', async () => {
    loadScenario(w, SCHEMA);
    const catalog = await readCatalog(w.host, new Environment('prod', w.config()));
    yaml = initSample(catalog, { root: 'users', fraction: 0.2, seed: 'init' }).yaml;
    const rules = Object.fromEntries([...yaml.matchAll(/^ {4}(\S+): (.+?)\s+#/gm)].map((m) => [m[1], m[2]]));
    assert.equal(rules['users.handle'], '{ sql: "to_hex(\\"id\\")" }', yaml);
    assert.equal(rules['users.email'], `{ sql: "'u' || to_hex(\\"id\\") || '@example.invalid'" }`);
    assert.equal(rules['users.short_code'], '{ sql: "to_hex(\\"id\\")" }');
    assert.equal(rules['posts.sqid'], '{ sql: "to_hex(\\"id\\")" }');
    assert.equal(rules['reactions.emoji'], '{ sql: "to_hex(\\"id\\")" }');
    assert.equal(rules['address.phone'], 'rehash');
    assert.equal(rules['staff.first_name'], 'fake-name');
    // pagila's staff photo: binary beside an e-mail.
    assert.equal(rules['staff.picture'], "'null'");
    assert.equal(rules['city.city'], 'keep');
    assert.match(yaml, /^ {2}reference-tables: \[.*\baddress\b.*\]$/m);
    assert.match(yaml, /^ {2}public-tables: \[(city, country|country, city)\] +#/m);
  });

  it('runs clean as written: no refusal, no leak, every phone masked, the lookups whole, the unique columns unique', async () => {
    const sample = (parse(yaml) as { sample: Record<string, unknown> }).sample;
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false, devPassword: 'pw', maskKey: 'test-mask-key' });
    assert.equal(report.swapped, true);
    assert.deepEqual(report.leaks, []);
    assert.ok(report.probes >= 8, `${report.probes} probes`);
    assert.equal(devRows('SELECT count(*) FROM address'), '300');
    assert.equal(devRows("SELECT count(*) FROM address WHERE phone LIKE '+1-555-%' OR address LIKE '%Main Street'"), '0');
    assert.equal(devRows("SELECT string_agg(city, ',' ORDER BY city_id) FROM city"), prodRows("SELECT string_agg(city, ',' ORDER BY city_id) FROM city"));
    assert.equal(
      devRows("SELECT count(*) FROM staff WHERE first_name IN ('Florence', 'Jonathan') OR email LIKE '%store.example.org' OR picture IS NOT NULL"),
      '0',
    );
    const dump = w.dump(w.dev, 'makapix_dev');
    for (const personal of ['@mail.example.org', 'artist_', 'Hillyer', '+1-555-']) assert.ok(!dump.includes(personal), `${personal} reached dev`);
    // Post-data rebuilt the unique keys over the masked values.
    assert.equal(devRows("SELECT count(*) FROM pg_constraint WHERE contype = 'u' AND connamespace = 'public'::regnamespace"), '5');
    assert.ok(Number(devRows('SELECT count(*) FROM reactions')) > 20, devRows('SELECT count(*) FROM reactions'));
  });
});

describe('public values are declared, not faked', () => {
  // pagila's film catalog: half of the customers' surnames are also actors' surnames.
  const SCHEMA = `
CREATE TABLE customer (customer_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL, email text);
CREATE TABLE actor (actor_id int PRIMARY KEY, first_name text NOT NULL, last_name text NOT NULL);
CREATE TABLE film (film_id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE film_actor (actor_id int NOT NULL REFERENCES actor, film_id int NOT NULL REFERENCES film, PRIMARY KEY (actor_id, film_id));
CREATE TABLE rental (rental_id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customer, film_id int NOT NULL REFERENCES film);
INSERT INTO actor SELECT a, 'Performer' || a, 'Actorname' || a FROM generate_series(1, 200) a;
INSERT INTO film SELECT f, 'Film title ' || f FROM generate_series(1, 100) f;
INSERT INTO film_actor SELECT a, 1 + (a * 7) % 100 FROM generate_series(1, 200) a;
INSERT INTO customer SELECT g, 'Customer' || g, CASE WHEN g % 2 = 0 THEN 'Actorname' || g / 2 ELSE 'Surname' || g END, 'customer' || g || '@mail.example.org'
FROM generate_series(1, 400) g;
INSERT INTO rental SELECT g, 1 + (g * 11) % 400, 1 + g % 100 FROM generate_series(1, 1000) g;
`;
  const sample = {
    root: 'customer',
    fraction: 0.5,
    seed: 'pub',
    'reference-tables': ['actor', 'film', 'film_actor'],
    columns: { 'customer.first_name': 'fake-name', 'customer.last_name': 'fake-name', 'customer.email': 'fake-email' },
  };
  const actors = "SELECT md5(string_agg(first_name || ' ' || last_name, ',' ORDER BY actor_id)) FROM actor";

  it('without a marker, the refusal names, in one line per hit, the rule to add and the marker to set', async () => {
    loadScenario(w, SCHEMA);
    const kept = { ...sample, columns: { ...sample.columns, 'actor.first_name': 'keep', 'actor.last_name': 'keep', 'film.title': 'keep' } };
    const dbs = w.databases(w.dev);
    await assert.rejects(resample(w.ctx(w.config(kept)), { dryRun: false }), (e: Error) => {
      assert.match(
        e.message,
        /public\.customer\.last_name found in public\.actor\.last_name \(\d+ rows?\): if it is personal, mask it: sample\.columns: \{ actor\.last_name: fake-name \}, or, if its values are public \(catalog data\), declare it: sample\.public-columns: \[actor\.last_name\] \(or public-tables: \[actor\]\)/,
      );
      assert.equal(e.message.split('\n').length, 1);
      assert.ok(e instanceof ResampleFailed);
      assert.match(resampleSummary(e.report, { ok: false, error: e.message }).toMarkdown(), /\| what to change \|/);
      return true;
    });
    assert.deepEqual(w.databases(w.dev), dbs);
  });

  it('with the catalog declared public, the run neither refuses nor fakes it, and still masks every customer', async () => {
    const declared = { ...sample, 'public-tables': ['film'], 'public-columns': ['actor.first_name', 'actor.last_name'] };
    const report = await resample(w.ctx(w.config(declared)), { dryRun: false, maskKey: 'test-mask-key' });
    assert.equal(report.swapped, true);
    assert.deepEqual(report.leaks, []);
    // Probes come from the customers' columns alone: the declared ones are no one's.
    assert.equal(report.probes, 3);
    assert.deepEqual(
      report.plan.probes.map((p) => `${p.table}.${p.column}`),
      ['public.customer.first_name', 'public.customer.last_name', 'public.customer.email'],
    );
    assert.equal(devRows(actors), prodRows(actors));
    assert.equal(devRows('SELECT count(*) FROM film WHERE title LIKE $$Film title %$$'), '100');
    assert.ok(Number(devRows('SELECT count(*) FROM customer')) > 100);
    assert.equal(
      devRows("SELECT count(*) FROM customer WHERE last_name LIKE 'Actorname%' OR last_name LIKE 'Surname%' OR email LIKE '%@mail.example.org'"),
      '0',
    );
    assert.ok(!report.warnings.some((x) => x.includes('masking key from the seed alone')));
  });

  it('a declared column holding a customer value that is not the catalog is still found elsewhere', async () => {
    // The same surname kept in a column that is not declared public is a leak, whatever the marker says of actors.
    runSql(
      w.prod,
      'makapix',
      'ALTER TABLE film ADD COLUMN director text; UPDATE film SET director = (SELECT last_name FROM customer WHERE customer_id = film_id * 4 - 1);',
    );
    const declared = {
      ...sample,
      'public-columns': ['actor.first_name', 'actor.last_name', 'film.title'],
      columns: { ...sample.columns, 'film.director': 'keep' },
    };
    await assert.rejects(resample(w.ctx(w.config(declared)), { dryRun: false }), /public\.customer\.last_name found in public\.film\.director/);
  });
});

describe("init copies a catalog's link tables whole", () => {
  // pagila's shape: films are rented, and their casts and categories link them to actors and
  // categories that no rental points at. Here a music shop: a track's artists and genres.
  const SCHEMA = `
CREATE TABLE member (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL);
CREATE TABLE track (id int PRIMARY KEY, title text NOT NULL);
CREATE TABLE purchase (id int PRIMARY KEY, member_id int NOT NULL REFERENCES member, track_id int NOT NULL REFERENCES track);
CREATE TABLE artist (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE genre (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE track_artist (track_id int NOT NULL REFERENCES track, artist_id int NOT NULL REFERENCES artist, position int NOT NULL DEFAULT 1, PRIMARY KEY (track_id, artist_id));
CREATE TABLE track_genre (track_id int NOT NULL REFERENCES track, genre_id int NOT NULL REFERENCES genre, added timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (track_id, genre_id));
INSERT INTO track SELECT g, 'Track title ' || g FROM generate_series(1, 300) g;
INSERT INTO artist SELECT g, 'Artistname ' || g FROM generate_series(1, 120) g;
INSERT INTO genre SELECT g, (ARRAY['Jazz', 'Blues', 'Folk', 'Soul', 'Punk', 'Opera'])[g] FROM generate_series(1, 6) g;
INSERT INTO track_artist SELECT t, 1 + (t * 7) % 120, 1 FROM generate_series(1, 300) t;
INSERT INTO track_artist SELECT t, 1 + (t * 11 + 3) % 120, 2 FROM generate_series(1, 300, 3) t ON CONFLICT DO NOTHING;
INSERT INTO track_genre SELECT t, 1 + t % 6 FROM generate_series(1, 300) t;
-- Some members share a name with an artist: public catalog data, no leak.
INSERT INTO member SELECT g, CASE WHEN g % 4 = 0 THEN 'Artistname ' || g / 4 ELSE 'Membername ' || g END, 'member' || g || '@mail.example.org' FROM generate_series(1, 400) g;
INSERT INTO purchase SELECT g, 1 + (g * 13) % 400, 1 + g % 300 FROM generate_series(1, 2000) g;
`;
  const whole = (table: string, order: string) => `SELECT count(*) || ':' || md5(string_agg(t::text, ',' ORDER BY ${order})) FROM ${table} t`;

  it("runs init's output as written: casts, genres and artists whole in dev, members masked, no refusal", async () => {
    loadScenario(w, SCHEMA);
    const catalog = await readCatalog(w.host, new Environment('prod', w.config()));
    const yaml = initSample(catalog, { root: 'member', fraction: 0.2, seed: 'links' }).yaml;
    const sample = (parse(yaml) as { sample: Record<string, unknown> }).sample;
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false, maskKey: 'test-mask-key' });
    assert.equal(report.swapped, true);
    assert.deepEqual(report.leaks, []);
    for (const [table, order] of [
      ['track_artist', 'track_id, artist_id'],
      ['track_genre', 'track_id, genre_id'],
      ['artist', 'id'],
      ['genre', 'id'],
      ['track', 'id'],
    ])
      assert.equal(devRows(whole(table, order)), prodRows(whole(table, order)), `${table} whole in dev`);
    const members = Number(devRows('SELECT count(*) FROM member'));
    assert.ok(members > 40 && members < 140, `${members} members`);
    assert.equal(devRows("SELECT count(*) FROM member WHERE name LIKE 'Membername %' OR name LIKE 'Artistname %' OR email LIKE '%@mail.example.org'"), '0');
    assert.equal(devRows('SELECT count(*) FROM purchase p WHERE NOT EXISTS (SELECT 1 FROM member m WHERE m.id = p.member_id)'), '0');
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
  });
});
