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

/** A federated forum: a person is known by (instance_id, local_id); a comment names its author by both. */
type Variant = 'shared-instance' | 'by-handle' | 'by-handle-nullable' | undefined;
const federated = (variant: Variant): Catalog => ({
  tables: [
    table(
      'person',
      [col('instance_id', 'integer', true), col('local_id', 'integer', true), col('name', 'text', true), col('handle')],
      ['instance_id', 'local_id'],
    ),
    table('post', [col('id', 'integer', true), col('instance_id', 'integer', true), col('local_id', 'integer', true)]),
    table('comment', [
      col('id', 'integer', true),
      col('author_instance', 'integer', true),
      col('author_id', 'integer', true),
      col('post_id', 'integer', true),
      col('parent_id'),
      col('editor_handle', 'integer', variant === 'by-handle'),
    ]),
  ],
  foreignKeys: [
    { ...fk('post', ['instance_id', 'local_id'], 'person'), refColumns: ['instance_id', 'local_id'] },
    { ...fk('comment', ['author_instance', 'author_id'], 'person'), refColumns: ['instance_id', 'local_id'] },
    fk('comment', ['post_id'], 'post'),
    fk('comment', ['parent_id'], 'comment'),
    // A tenant-style key sharing the author's instance column.
    ...(variant === 'shared-instance' ? [{ ...fk('comment', ['author_instance', 'post_id'], 'post'), refColumns: ['instance_id', 'id'] }] : []),
    // A key naming a unique column of the owner rather than its primary key.
    ...(variant?.startsWith('by-handle') ? [{ ...fk('comment', ['editor_handle'], 'person'), refColumns: ['handle'] }] : []),
  ],
  sequences: [],
});

function federatedPlan(key: unknown, variant?: Variant, foreignKeys: Record<string, unknown> = {}): SamplePlan {
  const settings = sampleSchema.parse({
    root: 'person',
    columns: { 'person.name': { sql: "'someone'" } },
    'foreign-keys': { 'comment(parent_id)': 'structure', ...foreignKeys },
    placeholders: { person: { key, values: { name: "'deleted'" } } },
  });
  return buildPlan(federated(variant), { settings, fraction: 0.1, seed: 's', secrets: { maskKey: 'k' } });
}

describe('a placeholder for a key of several columns', () => {
  it('supplies every key column: each column of the author key takes its part of the placeholder', () => {
    const p = federatedPlan({ local_id: -1, instance_id: 0 });
    const comment = p.tables.find((t) => t.table.id === 'public.comment')!;
    const key = comment.outgoing.find((o) => o.fk.columns.length === 2)!;
    assert.equal(key.placeholder?.keyText, 'instance_id=0, local_id=-1');
    assert.deepEqual(p.warnings, []);
    const select = selectFor(p, comment);
    const when =
      'CASE WHEN t\\."author_instance" IS NOT NULL AND t\\."author_id" IS NOT NULL AND .* WHERE m\\.ts_struct\\) AND NOT \\(t\\."author_instance", t\\."author_id"\\) IN \\(SELECT p\\."instance_id", p\\."local_id" FROM';
    assert.match(select, new RegExp(`${when}.* THEN '0'::integer ELSE t\\."author_instance" END`));
    assert.match(select, new RegExp(`${when}.* THEN '-1'::integer ELSE t\\."author_id" END`));
    assert.match(
      membershipProgram(p),
      /WHERE \(t\."instance_id", t\."local_id"\) = \('0'::integer, '-1'::integer\)\) THEN RAISE EXCEPTION .*key instance_id=0, local_id=-1; pick a key/,
    );
    assert.equal(
      placeholderInserts(p),
      `INSERT INTO "public"."person" ("instance_id", "local_id", "name") VALUES ('0'::integer, '-1'::integer, ('deleted')::text);`,
    );
  });

  it('refuses in one line a key that does not name every primary-key column', () => {
    const refusedWith = (key: unknown, message: RegExp) =>
      assert.throws(
        () => federatedPlan(key),
        (e: unknown) => e instanceof ConfigurationError && message.test(e.message) && !e.message.includes('\n'),
      );
    refusedWith(
      0,
      /placeholders\.person\.key: public\.person's primary key has 2 columns; give key as a map naming each: \{instance_id: \.\.\., local_id: \.\.\.\}/,
    );
    refusedWith({ instance_id: 0 }, /placeholders\.person\.key: name exactly public\.person's primary-key columns \(instance_id, local_id\); got instance_id/);
    refusedWith({ instance_id: 0, local_id: 0, x: 1 }, /got instance_id, local_id, x/);
  });

  it('refuses in one line a key sharing a column with another foreign key, naming both and what to set instead', () => {
    assert.throws(
      () => federatedPlan({ instance_id: 0, local_id: -1 }, 'shared-instance'),
      (e: unknown) =>
        e instanceof ConfigurationError &&
        !e.message.includes('\n') &&
        /placeholders\.person: public\.comment\(author_instance, author_id\) → public\.person shares author_instance with its foreign key public\.comment\(author_instance, post_id\) → public\.post, so a placeholder cannot stand in for it; set foreign-keys comment\(author_instance, author_id\) to drop or include/.test(
          e.message,
        ),
    );
  });

  it('refuses in one line a key into the owner that does not name the placeholder key, unless the config says what to do with it', () => {
    assert.throws(
      () => federatedPlan({ instance_id: 0, local_id: -1 }, 'by-handle'),
      (e: unknown) =>
        e instanceof ConfigurationError &&
        !e.message.includes('\n') &&
        e.message ===
          "sample: placeholders.person: public.comment(editor_handle) → public.person(handle) does not name the placeholder's key (instance_id, local_id), so its columns cannot all point at the placeholder; make the foreign key reference public.person(instance_id, local_id), or set foreign-keys comment(editor_handle) to drop",
    );
    // Said: that key drops the row as configured, and the author key still points at the placeholder.
    const p = federatedPlan({ instance_id: 0, local_id: -1 }, 'by-handle', { 'comment(editor_handle)': 'drop' });
    const comment = p.tables.find((t) => t.table.id === 'public.comment')!;
    assert.equal(comment.outgoing.find((o) => o.fk.columns[0] === 'editor_handle')?.placeholder, undefined);
    assert.equal(comment.outgoing.find((o) => o.fk.columns.length === 2)?.placeholder?.keyText, 'instance_id=0, local_id=-1');
    assert.equal(comment.outgoing.find((o) => o.fk.columns[0] === 'editor_handle')?.strict, true);
    // A nullable such key is cleared on rows that came for structure, unasked.
    const nullable = federatedPlan({ instance_id: 0, local_id: -1 }, 'by-handle-nullable');
    const c2 = nullable.tables.find((t) => t.table.id === 'public.comment')!;
    assert.match(selectFor(nullable, c2), /CASE WHEN t\."editor_handle" IS NULL OR t\."editor_handle" IN \(SELECT p\."handle" FROM/);
  });
});
