/** Policy structure and sample.placeholders in the planner: what the config accepts, and what it refuses in one line. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { ConfigurationError } from '../../src/infra/errors';
import type { Catalog, Column, ForeignKey, Table } from '../../src/resample/catalog';
import { buildPlan, clearedSelect, membershipProgram, placeholderInserts, selectFor, tempTables, type SamplePlan } from '../../src/resample/plan';
import { sampleSchema } from '../../src/config/sample';

const col = (name: string, type = 'integer', notNull = false, hasDefault = false): Column => ({
  name,
  type,
  notNull,
  generated: false,
  category: type === 'text' ? 'S' : 'N',
  baseType: type,
  hasDefault,
});
const table = (name: string, columns: Column[], primaryKey: string[] | null = ['id']): Table => ({
  id: `public.${name}`,
  schema: 'public',
  name,
  partitioned: false,
  columns,
  primaryKey,
  rows: 100,
  rowsExact: true,
});
const fk = (t: string, columns: string[], ref: string): ForeignKey => ({
  name: `${t}_${columns.join('_')}_fkey`,
  table: `public.${t}`,
  columns,
  refTable: `public.${ref}`,
  refColumns: ['id'],
  onDelete: 'no action',
});

/** A forum: persons, posts, comments with a parent, likes of comments, a lookup table. */
const forum = (): Catalog => ({
  tables: [
    table('person', [col('id', 'integer', true), col('name', 'text', true), col('joined', 'date', true, true)]),
    table('post', [col('id', 'integer', true), col('person_id', 'integer', true)]),
    table('comment', [
      col('id', 'integer', true),
      col('person_id', 'integer', true),
      col('post_id', 'integer', true),
      col('parent_id'),
      col('content', 'text', true),
    ]),
    table('comment_like', [col('id', 'integer', true), col('person_id', 'integer', true), col('comment_id')]),
    table('language', [col('id', 'integer', true), col('code', 'text', true)]),
  ],
  foreignKeys: [
    fk('post', ['person_id'], 'person'),
    fk('comment', ['person_id'], 'person'),
    fk('comment', ['post_id'], 'post'),
    fk('comment', ['parent_id'], 'comment'),
    fk('comment_like', ['person_id'], 'person'),
    fk('comment_like', ['comment_id'], 'comment'),
  ],
  sequences: [],
});

const ghost = { person: { key: 0, values: { name: "'deleted'" } } };
function plan(over: Record<string, unknown> = {}): SamplePlan {
  const settings = sampleSchema.parse({
    root: 'person',
    'reference-tables': ['language'],
    columns: { 'person.name': { sql: "'someone ' || id" }, 'comment.content': 'rehash', 'language.code': 'keep' },
    'foreign-keys': { 'comment(parent_id)': 'structure' },
    placeholders: ghost,
    ...over,
  });
  return buildPlan(forum(), { settings, fraction: 0.1, seed: 's', secrets: { maskKey: 'k' } });
}

function refused(over: Record<string, unknown>, message: RegExp): void {
  const err = (() => {
    try {
      plan(over);
    } catch (e) {
      return e;
    }
    return assert.fail('not refused');
  })();
  assert.ok(err instanceof ConfigurationError, String(err));
  assert.match(err.message, message);
  assert.doesNotMatch(err.message, /\n/);
}

describe('policy structure', () => {
  it('marks the parent table, re-points its key to the owner at the placeholder, and brings parents only from rows that stay', () => {
    const p = plan();
    const comment = p.tables.find((t) => t.table.id === 'public.comment')!;
    assert.equal(comment.structural, true);
    assert.equal(p.tables.find((t) => t.table.id === 'public.post')?.structural, false);
    const key = comment.outgoing.find((o) => o.fk.columns[0] === 'person_id')!;
    assert.equal(key.placeholder?.keyText, '0');
    // structure never clears: a nullable parent key under it is strict.
    assert.equal(comment.outgoing.find((o) => o.fk.columns[0] === 'parent_id')?.strict, true);
    assert.match(
      tempTables(p).find((s) => s.includes(comment.temp))!,
      /ts_struct boolean NOT NULL DEFAULT false/,
    );
    assert.match(
      selectFor(p, comment),
      /CASE WHEN t\."person_id" IS NOT NULL AND .* WHERE m\.ts_struct\) AND NOT t\."person_id" IN .* THEN '0'::integer ELSE t\."person_id" END/,
    );
    const program = membershipProgram(p);
    // A parent comes only when it could stay: its post is in; its author is not asked (the placeholder stands in).
    const bring = program.split('\n').find((l) => l.includes('ts_keep, ts_struct) SELECT'))!;
    assert.match(
      bring,
      /, true, true FROM ONLY "public"\."comment" t WHERE t\."id" IN \(SELECT s\."parent_id" FROM pg_temp\.\S+ s\) AND \(t\."post_id" IS NULL OR EXISTS/,
    );
    assert.doesNotMatch(bring, /person_id" IS NULL OR/);
    // A row that came for structure keeps the key the placeholder stands in for.
    assert.match(program, new RegExp(`DELETE FROM pg_temp\\.${comment.temp} t WHERE t\\."person_id" IS NOT NULL AND NOT EXISTS .*AND NOT t\\.ts_struct;`));
    assert.match(program, /production has a row with key 0; pick a key production does not use/);
    assert.match(clearedSelect(p) ?? '', /'structure'\).*'placeholder'\)/);
    assert.equal(placeholderInserts(p), `INSERT INTO "public"."person" ("id", "name") VALUES ('0'::integer, ('deleted')::text);`);
    assert.match(comment.note, /come along for structure, without their owners/);
  });

  it('leaves a plan without structure as it was: no structure loop, no placeholder row', () => {
    const p = plan({ 'foreign-keys': {}, placeholders: {} });
    assert.ok(p.tables.every((t) => !t.structural));
    assert.doesNotMatch(membershipProgram(p), /ts_struct|ts_added/);
    assert.equal(placeholderInserts(p), undefined);
  });

  it('warns when rows come for structure but their owner key has no placeholder', () => {
    assert.deepEqual(plan({ placeholders: {} }).warnings, [
      'public.comment rows come along for structure, but their person_id → public.person cannot be cleared: a row whose person is outside the sample is left out; give sample.placeholders a person row to point at',
    ]);
  });
});

describe('sample.placeholders and structure: refused in one line', () => {
  it('refuses what the catalog contradicts', () => {
    refused({ placeholders: { nobody: { key: 0 } } }, /placeholders\.nobody: production has no table nobody/);
    refused({ placeholders: { person: { key: 0, values: { nick: "'x'" } } } }, /placeholders\.person\.values: public\.person has no column nick/);
    refused({ placeholders: { person: { key: 0, values: { id: '1', name: "'x'" } } } }, /id is the primary key; give it as key/);
    refused({ placeholders: { person: { key: 0 } } }, /placeholders\.person: public\.person\.name NOT NULL without a default; give it under values/);
    refused({ placeholders: { language: { key: 0 } } }, /placeholders\.language: public\.language is copied whole, so no row needs a placeholder there/);
    refused(
      { 'foreign-keys': { 'comment(person_id)': 'structure' } },
      /foreign-keys public\.comment\(person_id\): structure cannot bring root rows \(public\.person\).*give sample\.placeholders a person row/,
    );
  });

  it('refuses in the schema: SQL outside the allowlist, structure with a column to clear, a key that is neither number nor text', () => {
    assert.throws(() => sampleSchema.parse({ placeholders: { person: { key: 0, values: { name: 'pg_read_file($$/etc/passwd$$)' } } } }), /placeholders/);
    assert.throws(
      () => sampleSchema.parse({ references: [{ table: 'comment', keys: 'parent_ids', to: 'comment', policy: 'structure', column: 'parent_ids' }] }),
      /policy structure clears nothing/,
    );
    assert.throws(() => sampleSchema.parse({ placeholders: { person: { key: true } } }), /key/);
    assert.throws(() => sampleSchema.parse({ placeholders: { person: { key: 0, extra: 1 } } }), /extra|Unrecognized/);
    assert.equal(sampleSchema.parse({ 'foreign-keys': { 'comment(parent_id)': 'structure' } })['foreign-keys']['comment(parent_id)'], 'structure');
  });
});
