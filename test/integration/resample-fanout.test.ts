/**
 * Production's children per parent on a large parent table are measured on one hash bucket of its
 * parents (representativeness.ts, fanoutBuckets): on a real PostgreSQL, the bucket's median and p90
 * match those of every parent, parent and child hash into the same bucket (each measured parent
 * keeps all of its children), and the bucket holds about the share it claims.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { sampleSchema } from '../../src/config/sample';
import type { Catalog, Column, ForeignKey, Table } from '../../src/resample/catalog';
import { buildPlan } from '../../src/resample/plan';
import { busiestKeys, fanoutBuckets, fanoutByKey, fanoutSql } from '../../src/resample/representativeness';
import { postgresAvailable, startPostgres, type TestPostgres } from '../harness/postgres';

const PERSONS = 200_000;
const col = (name: string, notNull = false): Column => ({ name, type: 'bigint', notNull, generated: false, category: 'N', baseType: 'bigint' });
const table = (name: string, columns: Column[], rows: number): Table => ({
  ...{ id: `public.${name}`, schema: 'public', name, partitioned: false },
  ...{ columns, primaryKey: ['id'], rows, rowsExact: true },
});
const fk = (t: string, c: string, ref: string): ForeignKey => ({
  ...{ name: `${t}_${c}_fkey`, table: `public.${t}`, columns: [c] },
  ...{ refTable: `public.${ref}`, refColumns: ['id'], onDelete: 'no action' },
});
const catalog: Catalog = {
  tables: [table('person', [col('id', true)], PERSONS), table('comment', [col('id', true), col('person_id', true)], 1_000_000)],
  foreignKeys: [fk('comment', 'person_id', 'person')],
  sequences: [],
};
const plan = buildPlan(catalog, { settings: sampleSchema.parse({ root: 'person' }), fraction: 0.1, seed: 's', secrets: { maskKey: 'k' } });
const keys = busiestKeys(plan, 5);

describe("production's children per parent, measured on one bucket of parents", { skip: postgresAvailable() ?? false }, () => {
  let pg: TestPostgres;
  before(async () => {
    pg = await startPostgres();
    // Person i has (i % 7) comments: median 3, p90 6 over every person, neither near a boundary of the quantiles (3 holds 43-57 %, 6 holds 86-100 %).
    pg.psql(
      `CREATE TABLE person (id bigint PRIMARY KEY);
      CREATE TABLE comment (id bigserial PRIMARY KEY, person_id bigint NOT NULL REFERENCES person);
      INSERT INTO person SELECT g FROM generate_series(1, ${PERSONS}) g;
      INSERT INTO comment (person_id) SELECT p, FROM (SELECT g AS p FROM generate_series(1, ${PERSONS}) g) s, generate_series(1, p % 7) k;
      ANALYZE;`.replace('SELECT p, FROM', 'SELECT p FROM'),
    );
  });
  after(async () => pg?.stop());

  it('splits a table of 200,000 parents into buckets, and matches the median and p90 of every parent', () => {
    assert.equal(fanoutBuckets(PERSONS), 8);
    assert.equal(fanoutBuckets(40_000), 1);
    const read = (sql: string) => fanoutByKey.parse(JSON.parse(pg.psql(`${sql};`).trim().split('\n').at(-1)!) as unknown);
    const all = Object.values(read(fanoutSql(plan, keys, 'all')))[0];
    const bucket = Object.values(read(fanoutSql(plan, keys, 'buckets')))[0];
    assert.equal(all.parents, PERSONS);
    assert.deepEqual([all.median, all.p90], [3, 6]);
    // A uniform draw: about an eighth of the parents, each with all of its children (else the median would fall).
    assert.ok(bucket.parents > PERSONS / 8 / 1.2 && bucket.parents < (PERSONS / 8) * 1.2, `${bucket.parents} parents measured`);
    assert.deepEqual([bucket.median, bucket.p90], [all.median, all.p90]);
  });
});
