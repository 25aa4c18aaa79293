/**
 * The representativeness report on a real production server: each sampled table's copied fraction
 * against the target, the children per parent of the busiest keys in production and in the sample,
 * and a warning naming the policy when a table ends far from the target (a `drop` default that
 * starves comments whose post is outside the sample, as on Lemmy).
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { planResample, resample, type ResampleReport } from '../../src/resample/engine';
import { representativeness, representativenessWarnings } from '../../src/resample/representativeness';
import { resampleSummary } from '../../src/resample/report';
import { loadScenario, runSql, startWorld, type World } from './resample-support';

let w: World;

before(async () => {
  w = await startWorld(20);
  loadScenario(w, SCHEMA);
});
after(async () => {
  await w?.stop();
});

// A forum: persons write posts, and comments on posts (unevenly spread: two on most posts, about nine
// on a few). A comment's author may be gone (NULL), so its key defaults to null; its post is
// required, so that key defaults to drop. reply_to names another comment without a foreign key.
const SCHEMA = `
CREATE TABLE person (id int PRIMARY KEY, name text);
CREATE TABLE post (id int PRIMARY KEY, person_id int NOT NULL REFERENCES person(id), title text);
CREATE TABLE comment (id int PRIMARY KEY, person_id int REFERENCES person(id), post_id int NOT NULL REFERENCES post(id), reply_to int, body text);
INSERT INTO person SELECT g, 'person ' || g FROM generate_series(1, 1000) g;
INSERT INTO post SELECT g, 1 + (g * 7) % 1000, 'title ' || g FROM generate_series(1, 2000) g;
INSERT INTO comment SELECT g, 1 + (g * 13) % 1000, CASE WHEN g <= 4000 THEN 1 + (g * 17) % 2000 ELSE 1 + (g * 7) % 300 END, CASE WHEN g > 10 AND g % 4 = 0 THEN g - 10 END, 'body ' || g FROM generate_series(1, 6000) g;
`;
const base = {
  root: 'person',
  fraction: 0.2,
  seed: 'representative',
  columns: { 'person.name': { sql: "'someone ' || id" }, 'post.title': 'keep', 'comment.body': 'keep' },
  references: [{ table: 'comment', keys: 'reply_to', to: 'comment', policy: 'null', column: 'reply_to' }],
};

const counts = (pg: World['prod'], db: string, sql: string) =>
  runSql(pg, db, sql)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .sort((a, b) => a - b);

/** percentile_disc as PostgreSQL defines it: the first value whose cumulative share reaches q. */
const disc = (sorted: number[], q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)];

/** Comments per post (0 included), computed here from each post's own count. */
function commentsPerPost(pg: World['prod'], db: string) {
  const n = counts(pg, db, 'SELECT (SELECT count(*) FROM comment c WHERE c.post_id = p.id) FROM post p');
  return { parents: n.length, median: disc(n, 0.5), p90: disc(n, 0.9) };
}

const representativeWarnings = (r: ResampleReport) => r.warnings.filter((x) => /sample\.representativeness/.test(x));

describe('the representativeness report', () => {
  it('warns about a child table the drop default starves, naming that policy, and shows it in the summary', async () => {
    // Comments come along with their authors only; the drop default on their post leaves out those on posts outside the sample.
    const report = await resample(w.ctx(w.config({ ...base, 'foreign-keys': { 'comment(post_id)': { owns: false } } })), { dryRun: false });
    const rep = report.representativeness;
    assert.ok(rep, 'the report has a representativeness part');
    const comment = rep.tables.find((t) => t.table === 'public.comment');
    assert.ok(comment && comment.outside === 'low', JSON.stringify(comment));
    assert.equal(comment.copied, Number(runSql(w.dev, 'makapix_dev', 'SELECT count(*) FROM comment').trim()));
    assert.equal(comment.prodRows, 6000);
    const warning = representativeWarnings(report);
    assert.equal(warning.length, 1, report.warnings.join('\n'));
    assert.match(
      warning[0],
      /^public\.comment: \d+\.\d% copied \(\d+ of 6000\) against the target 20\.0%, 0\.\d\dx \(outside 0\.5x–2x, sample\.representativeness\.bounds\): the drop policy of comment\(post_id\) → public\.post \(the default: post_id NOT NULL\)/,
    );
    // Persons and posts arrive near the target: not warned about.
    for (const t of ['public.person', 'public.post']) assert.equal(rep.tables.find((x) => x.table === t)?.outside, undefined, t);
    // The busiest keys: comments per post, in production and in the sample, as each database holds them.
    const key = rep.keys.find((k) => k.key === 'comment(post_id) → public.post');
    assert.ok(key, rep.keys.map((k) => k.key).join(', '));
    assert.equal(rep.keys[0].childRows, 6000);
    assert.deepEqual(key.prod, commentsPerPost(w.prod, 'makapix'));
    assert.deepEqual(key.sample, commentsPerPost(w.dev, 'makapix_dev'));
    assert.ok(key.sample.median < key.prod.median, `a starved sample has fewer comments per post (${key.sample.median} vs ${key.prod.median})`);
    const md = resampleSummary(report, { ok: true }).toMarkdown();
    assert.match(md, /### Representativeness/);
    assert.match(md, /\| public\.comment \| \d+ \| \d+\.\d% \| 0\.\d\dx \| ⚠️ low \|/);
    assert.match(md, /\| comment\(post_id\) → public\.post \| \d+ \/ \d+ \| \d+ \/ \d+ \|/);
    assert.match(md, /⚠️ public\.comment: .*the drop policy of comment\(post_id\)/);
    // Wider bounds (sample.representativeness.bounds) accept the same run.
    const wide = representativeness(
      report.plan,
      report.tables,
      { prod: {}, sample: {}, keys: [], prodMs: 0 },
      { ...report.plan.settings.representativeness, bounds: [0.1, 10] },
    );
    assert.deepEqual(representativenessWarnings(wide), []);
  });

  it('gives no warning when every sampled table is within the bounds, and lists each sample.references entry with its orphans', async () => {
    // Comments come along with their posts too (the default): comments of sampled posts arrive whole.
    const report = await resample(w.ctx(w.config(base)), { dryRun: false });
    const rep = report.representativeness;
    assert.ok(rep);
    assert.deepEqual(
      rep.tables.map((t) => [t.table, t.judged, t.outside]),
      [
        ['public.person', true, undefined],
        ['public.post', true, undefined],
        ['public.comment', true, undefined],
      ],
    );
    assert.deepEqual(report.warnings, []);
    assert.deepEqual(rep.keys.find((k) => k.key === 'comment(post_id) → public.post')?.sample, commentsPerPost(w.dev, 'makapix_dev'));
    const md = resampleSummary(report, { ok: true }).toMarkdown();
    assert.match(md, /### References without a foreign key \(sample\.references\)/);
    assert.match(md, /\| sample\.references\[0\] \| public\.comment \| reply_to \| public\.comment\(id\) \| null, clears reply_to \| 0 \|/);
  });

  it('is left out of a dry run, which copies nothing to compare', async () => {
    const plan = await planResample(w.ctx(w.config(base)), { dryRun: true });
    assert.equal(plan.settings.representativeness.bounds.join(','), '0.5,2');
    const report = await resample(w.ctx(w.config(base)), { dryRun: true });
    assert.equal(report.representativeness, undefined);
  });
});
