/** The representativeness report's judgement: which tables it judges, and the policy it names for each one outside the bounds. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type { Catalog, Column, ForeignKey, Table } from '../../src/resample/catalog';
import { buildPlan } from '../../src/resample/plan';
import { busiestKeys, fanoutSql, representativeness, representativenessWarnings, type CopiedTable } from '../../src/resample/representativeness';
import { sampleSchema } from '../../src/config/sample';

const col = (name: string, notNull = false): Column => ({ name, type: 'bigint', notNull, generated: false, category: 'N', baseType: 'bigint' });
const table = (name: string, columns: Column[], rows: number): Table => ({
  id: `public.${name}`,
  schema: 'public',
  name,
  partitioned: false,
  columns,
  primaryKey: ['id'],
  rows,
  rowsExact: true,
});
const fk = (t: string, c: string, ref: string): ForeignKey => ({
  name: `${t}_${c}_fkey`,
  table: `public.${t}`,
  columns: [c],
  refTable: `public.${ref}`,
  refColumns: ['id'],
  onDelete: 'no action',
});

/** Persons write posts; a comment has an author (nullable) and a post (required); a tag is reached only by include. */
const catalog: Catalog = {
  tables: [
    table('person', [col('id', true)], 1000),
    table('post', [col('id', true), col('person_id', true), col('tag_id')], 2000),
    table('comment', [col('id', true), col('person_id'), col('post_id', true)], 6000),
    table('tag', [col('id', true)], 400),
  ],
  foreignKeys: [fk('post', 'person_id', 'person'), fk('post', 'tag_id', 'tag'), fk('comment', 'person_id', 'person'), fk('comment', 'post_id', 'post')],
  sequences: [],
};

function planOf(sample: Record<string, unknown>) {
  const settings = sampleSchema.parse({ root: 'person', ...sample });
  return buildPlan(catalog, { settings, fraction: 0.1, seed: 's', secrets: { maskKey: 'k' } });
}

const copied = (rows: Record<string, number>): CopiedTable[] =>
  catalog.tables.map((t) => ({
    table: t.id,
    mode: t.name === 'person' ? 'root' : t.name === 'tag' ? 'included' : 'owned',
    prodRows: t.rows,
    prodRowsExact: true,
    copied: rows[t.name],
    checkDrops: [],
  }));

const noFanout = { prod: {}, sample: {}, keys: [], prodMs: 0 };

describe('the representativeness report', () => {
  it('names the include policy that floods a table above the bounds, and the drop default that starves one below', () => {
    const plan = planOf({ 'foreign-keys': { 'post(tag_id)': 'include', 'comment(post_id)': { owns: false } } });
    const r = representativeness(plan, copied({ person: 100, post: 200, comment: 60, tag: 300 }), noFanout, plan.settings.representativeness);
    const warnings = representativenessWarnings(r);
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(
      warnings[0],
      /^public\.comment: 1\.0% copied \(60 of 6000\) .* 0\.10x .*the drop policy of comment\(post_id\) → public\.post \(the default: post_id NOT NULL\)/,
    );
    assert.match(
      warnings[1],
      /^public\.tag: 75\.0% copied \(300 of 400\) .* 7\.50x .*the include policy of post\(tag_id\) → public\.tag \(set in sample\.foreign-keys\)/,
    );
  });

  it('does not judge a table expected to receive fewer rows than min-expected-rows', () => {
    const plan = planOf({ representativeness: { 'min-expected-rows': 1000 } });
    const r = representativeness(plan, copied({ person: 100, post: 200, comment: 10, tag: 0 }), noFanout, plan.settings.representativeness);
    assert.deepEqual(representativenessWarnings(r), []);
    assert.deepEqual(
      r.tables.map((t) => [t.table, t.judged]),
      [
        ['public.person', false],
        ['public.post', false],
        ['public.comment', false],
        ['public.tag', false],
      ],
    );
  });

  it('compares the keys with the most child rows first, only between sampled tables, in one query', () => {
    const plan = planOf({});
    assert.deepEqual(
      busiestKeys(plan, 2).map((p) => `${p.fk.table}(${p.fk.columns[0]})`),
      ['public.comment(person_id)', 'public.comment(post_id)'],
    );
    const sql = fanoutSql(plan, busiestKeys(plan, 5));
    assert.equal(sql.match(/percentile_disc\(0\.5\)/g)?.length, 3);
    assert.ok(!sql.includes('public.tag'), 'tag is not sampled here (nothing includes it)');
  });

  it('refuses bounds that do not hold 1', () => {
    assert.throws(() => sampleSchema.parse({ representativeness: { bounds: [1.5, 3] } }), /low at most 1 and high at least 1/);
  });
});
