/**
 * Policy structure on a real production server: a reply tree whose middle comment belongs to a
 * person outside the sample arrives whole, that comment pointing at the placeholder person
 * (sample.placeholders) with its text masked, and nothing else of that person reaches dev.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { Environment } from '../../src/domain/environment';
import { readCatalog } from '../../src/resample/catalog';
import { resample, ResampleFailed } from '../../src/resample/engine';
import { initSample } from '../../src/resample/init';
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
const SEED = 'ghost';
const FRACTION = 0.3;
const persons = Array.from({ length: 200 }, (_, i) => i + 1);
// A (sampled) starts a thread on their post; B (outside the sample) replies; A replies to B.
const A = persons.find((p) => isSampled(SEED, FRACTION, String(p))) as number;
const B = persons.find((p) => !isSampled(SEED, FRACTION, String(p))) as number;

// A forum: a comment's path is '0.<ancestor ids>.<own id>' (no foreign key); a like names a post
// or a comment (exactly one, by convention: no CHECK says so).
const SCHEMA = `
CREATE EXTENSION ltree;
CREATE TABLE person (id int PRIMARY KEY, name text NOT NULL, bio text, joined date NOT NULL DEFAULT '2020-01-01');
CREATE TABLE post (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), title text NOT NULL);
CREATE TABLE comment (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), post_id int NOT NULL REFERENCES post(id), path ltree NOT NULL, content text NOT NULL);
CREATE TABLE comment_like (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), post_id int REFERENCES post(id), comment_id int REFERENCES comment(id));
INSERT INTO person SELECT g, 'Realname ' || md5('name' || g), 'bio of ' || md5('bio' || g) FROM generate_series(1, 200) g;
INSERT INTO post SELECT g, 1 + (g * 7) % 200, 'title ' || g FROM generate_series(1, 400) g;
INSERT INTO comment SELECT g, 1 + (g * 3) % 200, g, text2ltree('0.' || g), 'words ' || md5('c' || g) FROM generate_series(1, 400) g;
INSERT INTO comment SELECT 400 + g, 1 + (g * 31) % 200, c.post_id, c.path || (400 + g)::text, 'words ' || md5('c' || (400 + g)) FROM generate_series(1, 400) g JOIN comment c ON c.id = g;
INSERT INTO comment SELECT 800 + g, 1 + (g * 37) % 200, c.post_id, c.path || (800 + g)::text, 'words ' || md5('c' || (800 + g)) FROM generate_series(1, 400) g JOIN comment c ON c.id = 400 + g;
INSERT INTO post VALUES (1000, ${A}, 'the thread');
INSERT INTO comment VALUES
  (5001, ${A}, 1000, '0.5001', 'the question'),
  (5002, ${B}, 1000, '0.5001.5002', 'middle comment by the person outside the sample'),
  (5003, ${A}, 1000, '0.5001.5002.5003', 'the answer'),
  (5004, ${B}, 1000, '0.5004', 'another comment by the person outside the sample');
INSERT INTO comment_like SELECT g, 1 + (g * 11) % 200, CASE WHEN g % 2 = 0 THEN 1 + (g * 13) % 400 END, CASE WHEN g % 2 = 1 THEN 1 + (g * 17) % 1200 END FROM generate_series(1, 3000) g;
INSERT INTO comment_like VALUES (5001, ${A}, NULL, 5002), (5002, ${B}, NULL, 5003), (5003, ${B}, NULL, 5001);
`;
const ANCESTORS = "string_to_array(ltree2text(subpath(path, 1)), '.')";
const tree = { table: 'comment', keys: ANCESTORS, to: 'comment' };
const base = {
  root: 'person',
  fraction: FRACTION,
  seed: SEED,
  columns: {
    'person.name': { sql: "'someone ' || id" },
    'person.bio': 'null',
    'post.title': { sql: "'post ' || id" },
    'comment.content': { sql: "'comment ' || id" },
  },
};
const structure = {
  ...base,
  placeholders: { person: { key: 0, values: { name: "'deleted'", bio: "'account not in the sample'" } } },
  references: [{ ...tree, policy: 'structure' }],
  'foreign-keys': { 'comment_like(comment_id)': 'structure', 'comment_like(post_id)': 'drop' },
};

/** Comments in dev with an ancestor dev does not have. */
const brokenPaths = () =>
  devRows(
    `SELECT count(*) FROM comment c WHERE EXISTS (SELECT 1 FROM unnest(string_to_array(ltree2text(subpath(c.path, 1)), '.')::int[]) a WHERE NOT EXISTS (SELECT 1 FROM comment p WHERE p.id = a))`,
  );

describe('policy structure: ancestors whole without their authors (sample.placeholders)', () => {
  before(() => loadScenario(w, SCHEMA));

  it('include loses the reply: the ancestor by a person outside the sample is pruned, and the reply with it (the problem)', async () => {
    await resample(w.ctx(w.config({ ...base, references: [{ ...tree, policy: 'include' }] })), { dryRun: false });
    assert.equal(devRows('SELECT count(*) FROM comment WHERE id IN (5002, 5003)'), '0');
    assert.equal(devRows('SELECT count(*) FROM comment WHERE id = 5001'), '1');
  });

  it('structure: the tree arrives whole, its middle comment pointing at the placeholder with its text masked; nothing else of its author', async () => {
    const report = await resample(w.ctx(w.config(structure)), { dryRun: false });
    assert.equal(
      devRows("SELECT string_agg(id || ':' || person_id, ',' ORDER BY id) FROM comment WHERE id IN (5001, 5002, 5003)"),
      `5001:${A},5002:0,5003:${A}`,
    );
    assert.equal(devRows('SELECT content FROM comment WHERE id = 5002'), 'comment 5002');
    assert.equal(devRows("SELECT name || '|' || bio FROM person WHERE id = 0"), 'deleted|account not in the sample');
    // The placeholder's columns not given take their defaults.
    assert.equal(devRows('SELECT joined FROM person WHERE id = 0'), '2020-01-01');
    // B's own row, B's other comment on the same (sampled) post, every row of B: absent.
    assert.equal(devRows(`SELECT count(*) FROM person WHERE id = ${B}`), '0');
    assert.equal(devRows('SELECT count(*) FROM comment WHERE id = 5004'), '0');
    assert.equal(
      devRows(
        `SELECT (SELECT count(*) FROM comment WHERE person_id = ${B}) + (SELECT count(*) FROM post WHERE person_id = ${B}) + (SELECT count(*) FROM comment_like WHERE person_id = ${B})`,
      ),
      '0',
    );
    // Every comment's author is sampled or the placeholder; every comment on the placeholder came for structure.
    const sampled = persons.filter((p) => isSampled(SEED, FRACTION, String(p)));
    assert.equal(devRows(`SELECT count(*) FROM comment WHERE person_id <> 0 AND person_id <> ALL (ARRAY[${sampled.join(',')}])`), '0');
    const onPlaceholder = Number(devRows('SELECT count(*) FROM comment WHERE person_id = 0'));
    const comment = report.tables.find((t) => t.table === 'public.comment');
    assert.equal(
      comment?.structure?.placeholder.reduce((a, p) => a + p.rows, 0),
      onPlaceholder,
    );
    assert.ok((comment?.structure?.rows ?? 0) >= onPlaceholder && onPlaceholder >= 1, JSON.stringify(comment?.structure));
    assert.equal(brokenPaths(), '0');
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
    assert.deepEqual(report.leaks, []);
    // A derived row naming a comment: kept with it (A's like of the middle comment), or left out; never half-null.
    assert.equal(devRows('SELECT comment_id FROM comment_like WHERE id = 5001'), '5002');
    assert.equal(devRows('SELECT count(*) FROM comment_like WHERE post_id IS NULL AND comment_id IS NULL'), '0');
    assert.ok(Number(devRows('SELECT count(*) FROM comment_like WHERE comment_id IS NOT NULL')) > 20, 'likes of comments arrive');
    // No real value of B reaches dev, whatever the table.
    const dump = w.dump(w.dev, 'makapix_dev');
    const bName = runSql(w.prod, 'makapix', `SELECT name FROM person WHERE id = ${B}`).trim();
    for (const real of [bName, 'middle comment by the person outside the sample', 'another comment by the person']) assert.ok(!dump.includes(real), real);
    const summary = resampleSummary(report, { ok: true }).toMarkdown();
    assert.match(summary, /public\.comment: \d+ row\(s\), \d+ pointing at the placeholder \(person_id → public\.person 0\)/);
  });

  it('refuses a placeholder key production uses, naming the entry, and dev keeps its data', async () => {
    const before = devRows('SELECT count(*) FROM comment');
    const err = await resample(w.ctx(w.config({ ...structure, placeholders: { person: { key: B, values: { name: "'deleted'" } } } })), { dryRun: false }).then(
      () => assert.fail('not refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ResampleFailed, String(err));
    assert.match(err.message, new RegExp(`sample\\.placeholders\\.person: production has a row with key ${B}; pick a key production does not use`));
    assert.equal(devRows('SELECT count(*) FROM comment'), before);
  });
});

// A federated forum: a person is known by (instance_id, local_id), and a comment names its author by both.
const federated = Array.from({ length: 200 }, (_, i) => [1 + (i % 2), 1 + Math.floor(i / 2)] as const);
const key = ([i, l]: readonly [number, number]) => `${i},${l}`;
const FA = federated.find((p) => isSampled(SEED, FRACTION, key(p))) as readonly [number, number];
const FB = federated.find((p) => !isSampled(SEED, FRACTION, key(p))) as readonly [number, number];
const FEDERATED = `
CREATE TABLE person (instance_id int, local_id int, name text NOT NULL, PRIMARY KEY (instance_id, local_id));
CREATE TABLE post (id int PRIMARY KEY, instance_id int NOT NULL, local_id int NOT NULL, title text NOT NULL, FOREIGN KEY (instance_id, local_id) REFERENCES person);
CREATE TABLE comment (id int PRIMARY KEY, author_instance int NOT NULL, author_id int NOT NULL, post_id int NOT NULL REFERENCES post(id), parent_id int REFERENCES comment(id), content text NOT NULL,
  FOREIGN KEY (author_instance, author_id) REFERENCES person (instance_id, local_id));
INSERT INTO person SELECT 1 + g % 2, 1 + g / 2, 'Realname ' || md5('name' || g) FROM generate_series(0, 199) g;
INSERT INTO post SELECT g, 1 + g % 2, 1 + (g * 7) % 100, 'title ' || g FROM generate_series(1, 400) g;
INSERT INTO comment SELECT g, 1 + (g * 3) % 2, 1 + (g * 11) % 100, g, NULL, 'words ' || md5('c' || g) FROM generate_series(1, 400) g;
INSERT INTO comment SELECT 400 + g, 1 + g % 2, 1 + (g * 13) % 100, g, g, 'words ' || md5('c' || (400 + g)) FROM generate_series(1, 400) g;
INSERT INTO post VALUES (1000, ${FA[0]}, ${FA[1]}, 'the thread');
INSERT INTO comment VALUES
  (5001, ${FA[0]}, ${FA[1]}, 1000, NULL, 'the question'),
  (5002, ${FB[0]}, ${FB[1]}, 1000, 5001, 'middle comment by the person outside the sample'),
  (5003, ${FA[0]}, ${FA[1]}, 1000, 5002, 'the answer');
`;

describe('policy structure with an owner key of several columns', () => {
  before(() => loadScenario(w, FEDERATED));

  it('points both columns of the middle comment’s author key at the placeholder, and nothing of that author arrives', async () => {
    const config = {
      root: 'person',
      fraction: FRACTION,
      seed: SEED,
      columns: { 'person.name': { sql: "'someone ' || local_id" }, 'post.title': { sql: "'post ' || id" }, 'comment.content': { sql: "'comment ' || id" } },
      'foreign-keys': { 'comment(parent_id)': 'structure' },
      placeholders: { person: { key: { instance_id: 0, local_id: 0 }, values: { name: "'deleted'" } } },
    };
    const report = await resample(w.ctx(w.config(config)), { dryRun: false });
    assert.equal(
      devRows("SELECT string_agg(id || ':' || author_instance || '/' || author_id, ',' ORDER BY id) FROM comment WHERE id IN (5001, 5002, 5003)"),
      `5001:${FA[0]}/${FA[1]},5002:0/0,5003:${FA[0]}/${FA[1]}`,
    );
    assert.equal(devRows('SELECT content FROM comment WHERE id = 5002'), 'comment 5002');
    assert.equal(devRows('SELECT name FROM person WHERE instance_id = 0 AND local_id = 0'), 'deleted');
    assert.equal(devRows(`SELECT count(*) FROM person WHERE (instance_id, local_id) = (${FB[0]}, ${FB[1]})`), '0');
    assert.equal(devRows(`SELECT count(*) FROM comment WHERE (author_instance, author_id) = (${FB[0]}, ${FB[1]})`), '0');
    // Every comment's author is in dev: sampled, or the placeholder for a comment that came for structure.
    assert.equal(
      devRows('SELECT count(*) FROM comment c WHERE NOT EXISTS (SELECT 1 FROM person p WHERE (p.instance_id, p.local_id) = (c.author_instance, c.author_id))'),
      '0',
    );
    const onPlaceholder = Number(devRows('SELECT count(*) FROM comment WHERE (author_instance, author_id) = (0, 0)'));
    const comment = report.tables.find((t) => t.table === 'public.comment');
    assert.ok(onPlaceholder >= 1);
    assert.deepEqual(comment?.structure?.placeholder, [{ key: 'author_instance, author_id → public.person instance_id=0, local_id=0', rows: onPlaceholder }]);
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
    assert.deepEqual(report.leaks, []);
  });
});

// A multi-tenant forum: an account is known by (tenant_id, user_id); a reply names its author, and
// optionally its last editor, by both.
const accounts = Array.from({ length: 200 }, (_, i) => [1 + (i % 2), 1 + Math.floor(i / 2)] as const);
const TA = accounts.find((p) => isSampled(SEED, FRACTION, key(p))) as readonly [number, number];
const TB = accounts.find((p) => !isSampled(SEED, FRACTION, key(p))) as readonly [number, number];
const TENANTS = `
CREATE TABLE tenant (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE account (tenant_id int REFERENCES tenant(id), user_id int, email text NOT NULL UNIQUE, name text NOT NULL, PRIMARY KEY (tenant_id, user_id));
CREATE TABLE thread (id int PRIMARY KEY, tenant_id int NOT NULL, user_id int NOT NULL, title text NOT NULL, FOREIGN KEY (tenant_id, user_id) REFERENCES account);
CREATE TABLE reply (id int PRIMARY KEY, thread_id int NOT NULL REFERENCES thread(id), parent_id int REFERENCES reply(id),
  tenant_id int NOT NULL, user_id int NOT NULL, editor_tenant int, editor_user int, body text NOT NULL, signature text,
  FOREIGN KEY (tenant_id, user_id) REFERENCES account, FOREIGN KEY (editor_tenant, editor_user) REFERENCES account);
INSERT INTO tenant VALUES (1, 'acme'), (2, 'globex');
INSERT INTO account SELECT 1 + g % 2, 1 + g / 2, 'user' || g || '@realmail.test', 'Realname ' || md5('name' || g) FROM generate_series(0, 199) g;
INSERT INTO thread SELECT g, 1 + g % 2, 1 + (g * 7) % 100, 'title ' || g FROM generate_series(1, 400) g;
INSERT INTO reply SELECT g, 1 + (g * 11) % 400, NULL, 1 + (g * 3) % 2, 1 + (g * 13) % 100, 1 + g % 2, 1 + (g * 17) % 100, 'words ' || md5('r' || g), 'sig ' || g FROM generate_series(1, 400) g;
INSERT INTO reply SELECT 400 + g, r.thread_id, g, 1 + g % 2, 1 + (g * 19) % 100, NULL, NULL, 'words ' || md5('r' || (400 + g)), NULL FROM generate_series(1, 400) g JOIN reply r ON r.id = g;
INSERT INTO thread VALUES (1000, ${TA[0]}, ${TA[1]}, 'the thread');
INSERT INTO reply VALUES
  (5001, 1000, NULL, ${TA[0]}, ${TA[1]}, NULL, NULL, 'the question', NULL),
  (5002, 1000, 5001, ${TB[0]}, ${TB[1]}, ${TB[0]}, ${TB[1]}, 'middle reply by the account outside the sample', 'signed by the account outside the sample'),
  (5003, 1000, 5002, ${TA[0]}, ${TA[1]}, ${TB[0]}, ${TB[1]}, 'the answer', NULL);
`;

describe('policy structure with an owner keyed by (tenant_id, user_id)', () => {
  before(() => loadScenario(w, TENANTS));

  it('brings the thread whole: the middle reply points at the placeholder by both columns, its personal columns masked, no key half-null', async () => {
    const config = {
      root: 'account',
      fraction: FRACTION,
      seed: SEED,
      'reference-tables': ['tenant'],
      'public-tables': ['tenant'],
      columns: {
        'account.email': 'fake-email',
        'account.name': 'fake-name',
        'thread.title': { sql: "'thread ' || id" },
        'reply.body': { sql: "'reply ' || id" },
        'reply.signature': 'null',
      },
      'foreign-keys': { 'reply(parent_id)': 'structure', 'reply(editor_tenant, editor_user)': { owns: false } },
      placeholders: { account: { key: { tenant_id: 1, user_id: 0 }, values: { email: "'deleted@example.invalid'", name: "'deleted'" } } },
    };
    const report = await resample(w.ctx(w.config(config)), { dryRun: false });
    const a = `${TA[0]}/${TA[1]}`;
    assert.equal(
      devRows(
        "SELECT string_agg(id || ':' || tenant_id || '/' || user_id || ':' || coalesce(editor_tenant || '/' || editor_user, '-'), ',' ORDER BY id) FROM reply WHERE id IN (5001, 5002, 5003)",
      ),
      // The middle reply's author and editor both point at the placeholder; the answer, which came as
      // a member, has its editor (outside the sample) cleared in both columns.
      `5001:${a}:-,5002:1/0:1/0,5003:${a}:-`,
    );
    assert.equal(devRows("SELECT body || '|' || coalesce(signature, 'null') FROM reply WHERE id = 5002"), 'reply 5002|null');
    assert.equal(devRows("SELECT email || '|' || name FROM account WHERE (tenant_id, user_id) = (1, 0)"), 'deleted@example.invalid|deleted');
    // Nothing of the account outside the sample: its row, its threads and replies, its real values.
    assert.equal(
      devRows(
        `SELECT (SELECT count(*) FROM account WHERE (tenant_id, user_id) = (${TB[0]}, ${TB[1]})) + (SELECT count(*) FROM reply WHERE (tenant_id, user_id) = (${TB[0]}, ${TB[1]}) OR (editor_tenant, editor_user) = (${TB[0]}, ${TB[1]})) + (SELECT count(*) FROM thread WHERE (tenant_id, user_id) = (${TB[0]}, ${TB[1]}))`,
      ),
      '0',
    );
    // No composite key half-null: MATCH SIMPLE would let (1, NULL) through unchecked.
    assert.equal(devRows('SELECT count(*) FROM reply WHERE (editor_tenant IS NULL) <> (editor_user IS NULL) OR (tenant_id IS NULL) <> (user_id IS NULL)'), '0');
    assert.ok(Number(devRows('SELECT count(*) FROM reply WHERE editor_tenant IS NULL AND id <= 400')) > 0, 'some editors outside the sample were cleared');
    // Every reply's author and editor is in dev; only rows that came for structure point at the placeholder.
    assert.equal(
      devRows(
        'SELECT count(*) FROM reply r WHERE NOT EXISTS (SELECT 1 FROM account p WHERE (p.tenant_id, p.user_id) = (r.tenant_id, r.user_id)) OR (r.editor_tenant IS NOT NULL AND NOT EXISTS (SELECT 1 FROM account p WHERE (p.tenant_id, p.user_id) = (r.editor_tenant, r.editor_user)))',
      ),
      '0',
    );
    const onPlaceholder = Number(devRows('SELECT count(*) FROM reply WHERE (tenant_id, user_id) = (1, 0)'));
    const reply = report.tables.find((t) => t.table === 'public.reply');
    assert.ok(onPlaceholder >= 1 && (reply?.structure?.rows ?? 0) >= onPlaceholder, JSON.stringify(reply?.structure));
    assert.equal(reply?.structure?.placeholder.find((p) => p.key.startsWith('tenant_id, user_id'))?.rows, onPlaceholder);
    // Personal columns masked on every row, the placeholder's included.
    assert.equal(devRows("SELECT count(*) FROM account WHERE email LIKE '%@realmail.test' OR name LIKE 'Realname %'"), '0');
    assert.equal(devRows("SELECT count(*) FROM reply WHERE body LIKE 'words %' OR signature IS NOT NULL"), '0');
    const dump = w.dump(w.dev, 'makapix_dev');
    for (const real of ['middle reply by the account outside the sample', 'signed by the account', '@realmail.test']) assert.ok(!dump.includes(real), real);
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
    assert.deepEqual(report.leaks, []);
  });
});

describe("init's output on the forum, unchanged (a thread-shaped schema, as Lemmy's)", () => {
  it('runs clean: no refusal, no orphan, no leak, no real name or text of anyone in dev, every comment path whole or pruned with its subtree', async () => {
    loadScenario(w, SCHEMA);
    const catalog = await readCatalog(w.host, new Environment('prod', w.config()));
    const yaml = initSample(catalog, { root: 'person', fraction: FRACTION, seed: SEED }).yaml;
    const sample = (parse(yaml) as { sample: Record<string, unknown> }).sample;
    const report = await resample(w.ctx(w.config(sample)), { dryRun: false, maskKey: 'test-mask-key' });
    assert.equal(report.swapped, true);
    assert.deepEqual(report.leaks, []);
    assert.deepEqual(
      report.foreignKeys.filter((f) => f.orphans > 0),
      [],
    );
    const persons = Number(devRows('SELECT count(*) FROM person'));
    assert.ok(persons > 20 && persons < 120, `${persons} persons`);
    assert.ok(Number(devRows('SELECT count(*) FROM comment')) > 0, 'comments arrive');
    // Free text and names are masked, whoever wrote them.
    assert.equal(devRows("SELECT count(*) FROM person WHERE name LIKE 'Realname %' OR bio LIKE 'bio of %'"), '0');
    assert.equal(devRows("SELECT count(*) FROM comment WHERE content LIKE 'words %' OR content LIKE '%outside the sample%'"), '0');
    const dump = w.dump(w.dev, 'makapix_dev');
    for (const real of [runSql(w.prod, 'makapix', `SELECT name FROM person WHERE id = ${A}`).trim(), 'the question', 'the answer'])
      assert.ok(!dump.includes(real), real);
  });
});
