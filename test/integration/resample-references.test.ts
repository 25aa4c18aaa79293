/**
 * References without a foreign key (sample.references) on a real production server: a reply tree
 * kept as an ltree path, tags kept as an array of ids, related posts in a nullable array. The
 * closure must treat each like a foreign key, and dev must hold no row naming a missing parent.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ConfigurationError } from '../../src/infra/errors';
import { resample } from '../../src/resample/engine';
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

// A forum: persons write posts and comments; a comment's path is '0.<ancestor ids>.<own id>' (as a
// federated forum keeps its reply tree), a post's tags are an array of tag ids, and a post may list
// related posts. None of these three has a foreign key.
const SCHEMA = `
CREATE EXTENSION ltree;
CREATE TABLE person (id int PRIMARY KEY, name text);
CREATE TABLE tag (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE post (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), tag_ids int[] NOT NULL DEFAULT '{}', related int[]);
CREATE TABLE comment (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), post_id int NOT NULL REFERENCES post(id), path ltree NOT NULL);
INSERT INTO person SELECT g, 'person ' || g FROM generate_series(1, 200) g;
INSERT INTO tag SELECT g, 'tag ' || g FROM generate_series(1, 300) g;
INSERT INTO post SELECT g, 1 + (g * 7) % 200, ARRAY[1 + (g * 11) % 300, 1 + (g * 13) % 300], CASE WHEN g % 3 = 0 THEN ARRAY[1 + (g * 17) % 400] END FROM generate_series(1, 400) g;
-- Top-level comments, then three levels of replies on the same post by other persons.
INSERT INTO comment SELECT g, 1 + (g * 3) % 200, g, text2ltree('0.' || g) FROM generate_series(1, 400) g;
INSERT INTO comment SELECT 400 + g, 1 + (g * 31) % 200, c.post_id, c.path || (400 + g)::text FROM generate_series(1, 400) g JOIN comment c ON c.id = g;
INSERT INTO comment SELECT 800 + g, 1 + (g * 37) % 200, c.post_id, c.path || (800 + g)::text FROM generate_series(1, 400) g JOIN comment c ON c.id = 400 + g;
CREATE TABLE note (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), post_ids int[], url text, CHECK (post_ids IS NOT NULL OR url IS NOT NULL));
INSERT INTO note SELECT g, 1 + g % 200, ARRAY[1 + (g * 7) % 400], CASE WHEN g % 2 = 0 THEN 'https://example.org/' || g END FROM generate_series(1, 2000) g;
CREATE TABLE bookmark (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), comment_ids int[] NOT NULL);
INSERT INTO bookmark SELECT g, 1 + g % 200, CASE WHEN g % 2 = 0 THEN ARRAY[1 + (g * 7) % 1600] ELSE ARRAY[1 + (g * 7) % 1600, 1 + (g * 19) % 1600] END FROM generate_series(1, 4000) g;
INSERT INTO comment SELECT 1200 + g, 1 + (g * 41) % 200, c.post_id, c.path || (1200 + g)::text FROM generate_series(1, 400) g JOIN comment c ON c.id = 800 + g;
`;
const ANCESTORS = "string_to_array(ltree2text(subpath(path, 1)), '.')";
const base = { root: 'person', fraction: 0.3, seed: 'tree', columns: { 'person.name': { sql: "'someone ' || id" }, 'tag.label': 'keep', 'note.url': 'keep' } };
const tree = { table: 'comment', keys: ANCESTORS, to: 'comment' };

/** Comments in dev with an ancestor dev does not have. */
const brokenPaths = () =>
  devRows(
    `SELECT count(*) FROM comment c WHERE EXISTS (SELECT 1 FROM unnest(string_to_array(ltree2text(subpath(c.path, 1)), '.')::int[]) a WHERE NOT EXISTS (SELECT 1 FROM comment p WHERE p.id = a))`,
  );

describe('references without a foreign key (sample.references)', () => {
  before(() => loadScenario(w, SCHEMA));

  it('without an entry, the sample keeps replies whose ancestors it dropped (the problem)', async () => {
    await resample(w.ctx(w.config({ ...base, 'reference-tables': ['tag'] })), { dryRun: false });
    assert.ok(Number(devRows('SELECT count(*) FROM comment')) > 50, 'the sample holds comments');
    assert.ok(Number(brokenPaths()) > 0, 'the fixture does not show the problem');
  });

  it('drop (the default): every copied comment has all its ancestors in dev, and the report counts 0 orphans for the entry', async () => {
    const bookmarks = { table: 'bookmark', keys: 'comment_ids', to: 'comment' };
    const report = await resample(w.ctx(w.config({ ...base, 'reference-tables': ['tag'], references: [tree, bookmarks] })), { dryRun: false });
    const comments = Number(devRows('SELECT count(*) FROM comment'));
    assert.ok(comments > 20, `comments were copied (${comments})`);
    assert.equal(brokenPaths(), '0');
    // A leaf (nothing looks its rows up): a bookmark naming a comment outside the sample is left out.
    assert.equal(devRows('SELECT count(*) FROM bookmark b, unnest(b.comment_ids) c WHERE NOT EXISTS (SELECT 1 FROM comment x WHERE x.id = c)'), '0');
    const expected = prodRows(
      `SELECT count(*) FROM bookmark b WHERE b.person_id IN (${devRows("SELECT string_agg(id::text, ',') FROM person")}) AND b.comment_ids <@ ARRAY[${devRows("SELECT string_agg(id::text, ',') FROM comment")}]`,
    );
    assert.ok(Number(expected) > 0, 'some bookmarks qualify');
    assert.equal(devRows('SELECT count(*) FROM bookmark'), expected);
    const entry = report.foreignKeys.find((f) => f.virtual);
    assert.ok(entry, 'the report lists the reference');
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.virtual).map((f) => f.orphans),
      [0, 0],
    );
    assert.equal(entry.refTable, 'public.comment(id)');
    assert.match(resampleSummary(report, { ok: true }).toMarkdown(), /sample\.references\[0\]|string_to_array\(ltree2text/);
    // Only what the closure allows: every copied comment's author and post are in dev.
    assert.equal(devRows('SELECT count(*) FROM comment c WHERE NOT EXISTS (SELECT 1 FROM post p WHERE p.id = c.post_id)'), '0');
  });

  it('include: ancestors come along (with their authors when that key includes too), so no reply of a sampled comment is lost', async () => {
    const dropRun = Number(devRows('SELECT count(*) FROM comment'));
    await resample(
      w.ctx(
        w.config({
          ...base,
          'reference-tables': ['tag'],
          'foreign-keys': { 'comment(person_id)': 'include' },
          references: [{ ...tree, policy: 'include' }],
        }),
      ),
      { dryRun: false },
    );
    assert.equal(brokenPaths(), '0');
    const comments = Number(devRows('SELECT count(*) FROM comment'));
    assert.ok(comments > dropRun, `include keeps more comments than drop (${comments} vs ${dropRun})`);
    // Every comment of a sampled post in production whose ancestors are all on that post is in dev.
    const expected = Number(
      prodRows(
        `SELECT count(*) FROM comment c WHERE c.post_id IN (${devRows("SELECT coalesce(string_agg(id::text, ','), '0') FROM post")}) AND c.person_id IN (${devRows("SELECT string_agg(id::text, ',') FROM person")})`,
      ),
    );
    assert.ok(comments >= expected, `${comments} comments in dev, ${expected} sampled in production`);
  });

  it('include on an array of ids: only the tags sampled posts name are copied, and every named tag is there', async () => {
    await resample(w.ctx(w.config({ ...base, references: [tree, { table: 'post', keys: 'tag_ids', to: 'tag', policy: 'include' }] })), { dryRun: false });
    const tags = Number(devRows('SELECT count(*) FROM tag'));
    assert.ok(tags > 0 && tags < 300, `a part of the tags (${tags} of 300)`);
    assert.equal(devRows('SELECT count(*) FROM post p, unnest(p.tag_ids) t WHERE NOT EXISTS (SELECT 1 FROM tag x WHERE x.id = t)'), '0');
    assert.equal(devRows('SELECT count(DISTINCT t) FROM post p, unnest(p.tag_ids) t'), String(tags));
  });

  it('null: a nullable array naming a post outside the sample is cleared, one naming sampled posts is kept', async () => {
    await resample(
      w.ctx(
        w.config({
          ...base,
          'reference-tables': ['tag'],
          references: [tree, { table: 'post', keys: 'related', to: 'post', policy: 'null', column: 'related' }],
        }),
      ),
      { dryRun: false },
    );
    assert.equal(devRows('SELECT count(*) FROM post p, unnest(p.related) r WHERE NOT EXISTS (SELECT 1 FROM post x WHERE x.id = r)'), '0');
    const ids = devRows("SELECT string_agg(id::text, ',') FROM post");
    // Production's posts that are in dev and name only posts that are in dev keep the array.
    const kept = prodRows(`SELECT count(*) FROM post p WHERE p.id IN (${ids}) AND p.related IS NOT NULL AND p.related <@ ARRAY[${ids}]`);
    assert.ok(Number(kept) > 0, 'the fixture keeps some related arrays');
    assert.equal(devRows('SELECT count(*) FROM post WHERE related IS NOT NULL'), kept);
    const cleared = prodRows(`SELECT count(*) FROM post p WHERE p.id IN (${ids}) AND p.related IS NOT NULL AND NOT p.related <@ ARRAY[${ids}]`);
    assert.ok(Number(cleared) > 0, 'the fixture clears some related arrays');
  });

  it('null under a CHECK: a row the cleared column would break is dropped, the others keep their row with the column cleared', async () => {
    const notes = { table: 'note', keys: 'post_ids', to: 'post', policy: 'null', column: 'post_ids' };
    const dry = await resample(w.ctx(w.config({ ...base, 'reference-tables': ['tag'], references: [tree, notes] })), { dryRun: true });
    assert.match(dry.tables.find((t) => t.table === 'public.note')?.note ?? '', /would break CHECK note_check are dropped/);
    const report = await resample(w.ctx(w.config({ ...base, 'reference-tables': ['tag'], references: [tree, notes] })), { dryRun: false });
    assert.equal(report.tables.find((t) => t.table === 'public.note')?.note, dry.tables.find((t) => t.table === 'public.note')?.note);
    const persons = devRows("SELECT string_agg(id::text, ',') FROM person");
    const posts = devRows("SELECT string_agg(id::text, ',') FROM post");
    // Notes of sampled persons: kept whole when their post is in dev, kept with post_ids cleared when they have a url, else dropped.
    const q = (where: string) => Number(prodRows(`SELECT count(*) FROM note WHERE person_id IN (${persons}) AND ${where}`));
    const whole = q(`post_ids <@ ARRAY[${posts}]`);
    const cleared = q(`NOT post_ids <@ ARRAY[${posts}] AND url IS NOT NULL`);
    const dropped = q(`NOT post_ids <@ ARRAY[${posts}] AND url IS NULL`);
    assert.ok(whole > 0 && cleared > 0 && dropped > 0, `the fixture has all three kinds (${whole}, ${cleared}, ${dropped})`);
    assert.equal(devRows('SELECT count(*) FROM note WHERE post_ids IS NOT NULL'), String(whole));
    assert.equal(devRows('SELECT count(*) FROM note WHERE post_ids IS NULL'), String(cleared));
    assert.equal(report.tables.find((t) => t.table === 'public.note')?.copied, whole + cleared);
  });

  it('the dry run lists the entry with its policy, as the real run does', async () => {
    const report = await resample(w.ctx(w.config({ ...base, 'reference-tables': ['tag'], references: [{ ...tree, policy: 'include' }] })), { dryRun: true });
    const entry = report.foreignKeys.find((f) => f.virtual);
    assert.deepEqual([entry?.table, entry?.columns, entry?.policy], ['public.comment', [ANCESTORS], 'include']);
    assert.equal(report.tables.find((t) => t.table === 'public.tag')?.mode, 'reference');
  });

  it('refuses, in one line before anything runs, an entry the catalog cannot resolve', async () => {
    const refuse = async (ref: Record<string, unknown>, message: RegExp) => {
      const err = await resample(w.ctx(w.config({ ...base, 'reference-tables': ['tag'], references: [ref] })), { dryRun: true }).then(
        () => assert.fail('not refused'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof ConfigurationError, String(err));
      assert.match(err.message, message);
      assert.doesNotMatch(err.message, /\n/);
    };
    await refuse({ ...tree, to: 'nothing' }, /references\[0\]\.to: production has no table nothing/);
    await refuse({ ...tree, to: 'comment(nope)' }, /public\.comment has no column nope/);
    await refuse({ ...tree, policy: 'null', column: 'path' }, /public\.comment\.path is NOT NULL and cannot be cleared; use policy drop/);
    assert.throws(() => w.config({ ...base, references: [{ ...tree, policy: 'null' }] }), /policy null needs column/);
    assert.throws(() => w.config({ ...base, references: [{ ...tree, keys: 'path; DROP TABLE comment' }] }), /references/);
  });
});
