/** The sample planner: pure rules from a catalog and the `sample` settings to a plan. */
import { strict as assert } from 'node:assert';
import { pbkdf2Sync } from 'node:crypto';
import { describe, it } from 'node:test';
import { ConfigurationError } from '../../src/infra/errors';
import { emptyTableWarnings } from '../../src/resample/engine';
import { hashDevPassword, nameWords, sensitiveMatch } from '../../src/resample/anonymize';
import type { Catalog, Column, ForeignKey, Table } from '../../src/resample/catalog';
import {
  buildPlan,
  clearedSelect,
  isSampled,
  memberHash,
  membershipProgram,
  productionScript,
  rowCondition,
  tempTables,
  thresholdFor,
  type SamplePlan,
} from '../../src/resample/plan';
import { sampleSchema, type SampleSettings } from '../../src/config/sample';

const col = (name: string, type = 'bigint', notNull = false, category = type === 'text' ? 'S' : type === 'boolean' ? 'B' : 'N'): Column => ({
  name,
  type,
  notNull,
  generated: false,
  category,
  baseType: type,
});

function table(name: string, columns: Column[], primaryKey: string[] | null = ['id']): Table {
  return { id: `public.${name}`, schema: 'public', name, partitioned: false, columns, primaryKey, rows: 1000, rowsExact: true };
}

function fk(t: string, columns: string[], ref: string, refColumns = ['id']): ForeignKey {
  return { name: `${t}_${columns.join('_')}_fkey`, table: `public.${t}`, columns, refTable: `public.${ref}`, refColumns, onDelete: 'no action' };
}

/** users ↔ posts cycle, self-referencing comments, two-user follows, a token table, a reference table, an island. */
function makapix(): Catalog {
  return {
    tables: [
      table('users', [col('id', 'bigint', true), col('email', 'text', true), col('avatar_post_id'), col('email_verified', 'boolean', true)]),
      table('posts', [col('id', 'bigint', true), col('owner_id', 'bigint', true), col('license_id'), col('storage_key', 'text', true)]),
      table('comments', [col('id', 'bigint', true), col('post_id', 'bigint', true), col('author_id'), col('parent_id'), col('body', 'text')]),
      table('follows', [col('follower_id', 'bigint', true), col('followee_id', 'bigint', true)], ['follower_id', 'followee_id']),
      table('view_events', [col('post_id'), col('viewer_id'), col('ip_hash', 'text')], null),
      table('refresh_tokens', [col('id', 'bigint', true), col('user_id', 'bigint', true), col('token_hash', 'text', true)]),
      table('licenses', [col('id', 'bigint', true), col('title', 'text', true)]),
      table('site_settings', [col('key', 'text', true), col('value', 'text', true)], ['key']),
    ],
    foreignKeys: [
      fk('users', ['avatar_post_id'], 'posts'),
      fk('posts', ['owner_id'], 'users'),
      fk('posts', ['license_id'], 'licenses'),
      fk('comments', ['post_id'], 'posts'),
      fk('comments', ['author_id'], 'users'),
      fk('comments', ['parent_id'], 'comments'),
      fk('follows', ['follower_id'], 'users'),
      fk('follows', ['followee_id'], 'users'),
      fk('view_events', ['post_id'], 'posts'),
      fk('view_events', ['viewer_id'], 'users'),
      fk('refresh_tokens', ['user_id'], 'users'),
    ],
    sequences: [],
  };
}

function settings(over: Record<string, unknown> = {}): SampleSettings {
  return sampleSchema.parse({
    root: 'users',
    'reference-tables': ['licenses'],
    'empty-tables': ['refresh_tokens'],
    columns: {
      'users.email': { sql: "'user' || id || '@dev.local'" },
      'posts.storage_key': 'keep',
      'view_events.ip_hash': 'rehash',
      'comments.body': 'keep',
      'licenses.title': 'keep',
    },
    ...over,
  });
}

function plan(catalog = makapix(), over: Record<string, unknown> = {}, fraction = 0.1): SamplePlan {
  return buildPlan(catalog, { settings: settings(over), fraction, seed: 's', secrets: { maskKey: 'k' } });
}

const modeOf = (p: SamplePlan, name: string) => p.tables.find((t) => t.table.name === name)?.mode;
const fkOf = (p: SamplePlan, t: string, c: string) => p.fks.find((f) => f.fk.table === `public.${t}` && f.fk.columns[0] === c);

describe('membership by hash of (seed, key)', () => {
  it('is deterministic and independent of the other keys', () => {
    assert.equal(memberHash('s', '42'), memberHash('s', '42'));
    assert.notEqual(memberHash('s', '42'), memberHash('t', '42'));
    assert.equal(isSampled('seed', 1, '7'), true);
    assert.equal(isSampled('seed', 0, '7'), false);
  });

  it('samples close to the fraction, and a larger fraction keeps every row a smaller one picked', () => {
    let at10 = 0;
    for (let k = 0; k < 20000; k++) {
      const small = isSampled('x', 0.1, String(k));
      if (small) at10++;
      if (small) assert.ok(isSampled('x', 0.2, String(k)));
    }
    assert.ok(at10 > 1800 && at10 < 2200, `${at10} of 20000`);
    assert.equal(thresholdFor(1), 2 ** 52);
  });
});

describe('sensitive columns', () => {
  it('matches words of the name, not substrings', () => {
    assert.deepEqual(nameWords('lastLoginIP_hash'), ['last', 'login', 'ip', 'hash']);
    const p = settings()['sensitive-names'];
    assert.equal(sensitiveMatch(col('ip_hash', 'text'), p), 'ip');
    assert.equal(sensitiveMatch(col('zip_code', 'text'), p), undefined);
    assert.equal(sensitiveMatch(col('description', 'text'), p), undefined);
    assert.equal(sensitiveMatch(col('api_keys', 'text'), p), 'key');
    assert.equal(sensitiveMatch(col('email_verified', 'boolean'), p), undefined, 'a boolean holds nothing personal');
  });

  it('refuses to start, listing every copied text column without a rule: sensitive-looking ones and free text alike', () => {
    assert.throws(
      () => plan(makapix(), { columns: { 'posts.storage_key': 'keep', 'licenses.title': 'keep' } }),
      (e: Error) =>
        e instanceof ConfigurationError &&
        /refusing to start: 3 copied text columns have no rule: public\.users\.email \(matches "email"\), public\.comments\.body \(text\), public\.view_events\.ip_hash \(matches "ip"\)/.test(
          e.message,
        ),
    );
  });

  it("sees the table's name too: private_messages.content is sensitive, and a kept one is probed by shape", () => {
    const cat = makapix();
    cat.tables.push(
      table('private_messages', [col('id', 'bigint', true), col('sender_id', 'bigint', true), col('content', 'text'), col('is_read', 'boolean')]),
    );
    cat.foreignKeys.push(fk('private_messages', ['sender_id'], 'users'));
    assert.throws(
      () => plan(cat),
      (e: Error) => /public\.private_messages\.content \(its table's name matches "private"\)/.test(e.message) && !/is_read/.test(e.message),
    );
    const p = plan(cat, { columns: { ...settings().columns, 'private_messages.content': 'keep' } });
    assert.deepEqual(
      p.probes.filter((x) => x.table === 'public.private_messages'),
      [{ table: 'public.private_messages', column: 'content', shapedOnly: true }],
    );
  });

  it('exempts key columns and non-text columns from name matching: address_id needs no rule', () => {
    const cat = makapix();
    cat.tables.push(table('addresses', [col('id', 'bigint', true), col('user_id', 'bigint', true)]));
    (cat.tables.find((t) => t.name === 'users') as Table).columns.push(col('address_id'), col('phone_verified_at', 'timestamptz', false, 'D'));
    cat.foreignKeys.push(fk('users', ['address_id'], 'addresses'), fk('addresses', ['user_id'], 'users'));
    const p = plan(cat);
    assert.equal(p.tables.find((t) => t.table.name === 'users')?.columns.find((c) => c.name === 'address_id')?.sensitive, undefined);
  });

  it('does not ask for rules on tables copied empty (tokens, unreached)', () => {
    const p = plan();
    assert.equal(modeOf(p, 'refresh_tokens'), 'empty');
    assert.equal(modeOf(p, 'site_settings'), 'unreached');
  });

  it('refuses rules that would break references or NOT NULL', () => {
    assert.throws(
      () => plan(makapix(), { columns: { ...settings().columns, 'posts.owner_id': null } }),
      /public\.posts\.owner_id is part of a primary or foreign key/,
    );
    assert.throws(() => plan(makapix(), { columns: { ...settings().columns, 'users.email': null } }), /rule null on a NOT NULL column/);
    assert.throws(
      () => plan(makapix(), { columns: { ...settings().columns, 'users.email': 'dev-password' } }),
      /NOT NULL and gets the dev password hash: give the dev-password input/,
    );
  });
});

describe('the closure', () => {
  it('owns tables reachable from the root backwards, copies reference tables whole', () => {
    const p = plan();
    assert.deepEqual(
      p.tables.map((t) => [t.table.name, t.mode]),
      [
        ['users', 'root'],
        ['follows', 'owned'],
        ['posts', 'owned'],
        ['comments', 'owned'],
        ['view_events', 'owned'],
        ['licenses', 'reference'],
        ['refresh_tokens', 'empty'],
        ['site_settings', 'unreached'],
      ],
    );
  });

  it('defaults to null where nullable and drop otherwise', () => {
    const p = plan();
    assert.equal(fkOf(p, 'comments', 'author_id')?.policy, 'null');
    assert.equal(fkOf(p, 'comments', 'post_id')?.policy, 'drop');
    assert.equal(fkOf(p, 'follows', 'followee_id')?.policy, 'drop');
    assert.equal(fkOf(p, 'users', 'avatar_post_id')?.policy, 'null');
  });

  it('breaks the users ↔ posts cycle at the root: the avatar reference owns nothing', () => {
    const p = plan();
    assert.equal(fkOf(p, 'users', 'avatar_post_id')?.owning, false);
    assert.equal(fkOf(p, 'posts', 'owner_id')?.owning, true);
    assert.equal(fkOf(p, 'comments', 'parent_id')?.owning, false, 'a self-reference never owns');
    assert.equal(fkOf(p, 'comments', 'post_id')?.owning, true);
    assert.equal(fkOf(p, 'comments', 'author_id')?.owning, true);
  });

  it('applies configured policies and checks them', () => {
    const p = plan(makapix(), { 'foreign-keys': { 'comments(author_id)': 'drop', follows_followee_id_fkey: 'include' } });
    assert.equal(fkOf(p, 'comments', 'author_id')?.policy, 'drop');
    assert.equal(fkOf(p, 'comments', 'author_id')?.source, 'config');
    assert.equal(fkOf(p, 'follows', 'followee_id')?.strict, true);
    assert.throws(() => plan(makapix(), { 'foreign-keys': { 'comments(post_id)': null } }), /null needs nullable columns/);
    assert.throws(() => plan(makapix(), { 'foreign-keys': { 'comments(nope)': 'drop' } }), /has no foreign key on \(nope\)/);
  });

  it('makes a table reached only through include an included table, and refuses include into an empty one', () => {
    const cat = makapix();
    cat.tables.push(table('badges', [col('id', 'bigint', true), col('title', 'text')]));
    cat.tables.find((t) => t.name === 'users')?.columns.push(col('badge_id'));
    cat.foreignKeys.push(fk('users', ['badge_id'], 'badges'));
    assert.equal(modeOf(plan(cat), 'badges'), 'unreached');
    assert.equal(
      modeOf(plan(cat, { 'foreign-keys': { 'users(badge_id)': 'include' }, columns: { ...settings().columns, 'badges.title': 'keep' } }), 'badges'),
      'included',
    );
    assert.throws(
      () => plan(cat, { 'foreign-keys': { 'users(badge_id)': 'include' }, 'empty-tables': ['refresh_tokens', 'badges'] }),
      /include into public\.badges, which is listed in empty-tables/,
    );
  });

  it('refuses a reference table with a required key into sampled rows', () => {
    const cat = makapix();
    cat.tables.find((t) => t.name === 'licenses')?.columns.push(col('author_id', 'bigint', true));
    cat.foreignKeys.push(fk('licenses', ['author_id'], 'users'));
    assert.throws(() => plan(cat), /reference table public\.licenses has a required foreign key/);
  });

  it('refuses a referenced sampled table without a primary key', () => {
    const cat = makapix();
    (cat.tables.find((t) => t.name === 'comments') as Table).primaryKey = null;
    assert.throws(() => plan(cat), /public\.comments has no primary key/);
  });
});

describe('a table left empty', () => {
  it('says when a CHECK dropped its rows', () => {
    const p = plan();
    const report = { table: 'public.comments', mode: 'owned', prodRows: 10, prodRowsExact: true, copied: 0, rules: [], note: '', ownersCleared: [] };
    const [w] = emptyTableWarnings(p, [{ ...report, checkDrops: [{ check: 'comments_check', rows: 3 }] }]);
    assert.match(
      w,
      /^public\.comments has 10 rows in production and none in dev: .*; 3 row\(s\) were dropped because nulling their reference would break CHECK comments_check$/,
    );
    assert.doesNotMatch(emptyTableWarnings(p, [{ ...report, checkDrops: [{ check: 'comments_check', rows: 0 }] }])[0], /CHECK/);
  });
});

describe('owners cleared on a leaf', () => {
  it('are counted by the COPY itself on a temporary sequence, once per row, and read back after it', () => {
    const p = plan();
    const ve = p.tables.find((t) => t.table.name === 'view_events')!;
    assert.equal(ve.keyed, false);
    const viewer = ve.columns.find((c) => c.name === 'viewer_id')!.expression;
    const m = /WHEN nextval\('pg_temp\.(ts_c[0-9a-f]{12})'\) > 0 THEN NULL END$/.exec(viewer);
    assert.ok(m, viewer);
    assert.ok(tempTables(p).includes(`CREATE TEMP SEQUENCE ${m[1]};`));
    assert.match(
      clearedSelect(p) as string,
      new RegExp(`SELECT 'public\\.view_events', 'view_events_viewer_id_fkey', CASE WHEN is_called THEN last_value ELSE 0 END, 'owner' FROM pg_temp\\.${m[1]}`),
    );
    // The rest of the script never advances it: only the COPY of view_events does.
    const script = productionScript(p);
    assert.equal(script.split(`nextval('pg_temp.${m[1]}')`).length - 1, 1, 'advanced only in the viewer_id column of the view_events COPY');
  });
});

describe('references without a foreign key', () => {
  const withTags = () => {
    const cat = makapix();
    cat.tables.push(table('tags', [col('id', 'bigint', true), col('label', 'text')]));
    cat.tables.find((t) => t.name === 'posts')?.columns.push(col('tag_ids', 'bigint[]', false, 'A'));
    return cat;
  };
  const over = (ref: Record<string, unknown>, columns: Record<string, unknown> = {}) => ({
    references: [{ table: 'posts', keys: 'tag_ids', to: 'tags', ...ref }],
    columns: { ...settings().columns, 'tags.label': 'keep', ...columns },
  });

  it('include brings a table nothing else reaches into the sample, looked up by its members', () => {
    const p = plan(withTags(), over({ policy: 'include' }));
    assert.equal(modeOf(p, 'tags'), 'included');
    assert.equal(p.references[0].target, 'members');
    assert.ok(p.tables.find((t) => t.table.name === 'posts')?.keyed, 'the child is keyed: its parents are looked up from its members');
    assert.match(productionScript(p), /unnest\(ARRAY\[\(tag_ids\)\]::bigint\[\]\) ts_k\(v\)/);
  });

  it('drop into a table copied empty leaves out every row naming a parent; null clears the column instead', () => {
    const drop = plan(withTags(), over({}));
    assert.equal(drop.references[0].target, 'none');
    assert.ok(drop.references[0].strict);
    const cleared = plan(withTags(), over({ policy: 'null', column: 'tag_ids' }));
    assert.ok(!cleared.references[0].strict);
    const tagIds = cleared.tables.find((t) => t.table.name === 'posts')?.columns.find((c) => c.name === 'tag_ids');
    assert.match(
      tagIds?.expression ?? '',
      /^CASE WHEN NOT EXISTS \(SELECT 1 FROM unnest\(ARRAY\[\(tag_ids\)\]::bigint\[\]\) ts_k\(v\) WHERE ts_k\.v IS NOT NULL AND NOT false\) THEN t\."tag_ids" END$/,
    );
    assert.equal(tagIds?.rule, 'reference null');
  });

  it('refuses a parent without a one-column key, and a child copied whole pointing at sampled rows', () => {
    const cat = withTags();
    (cat.tables.find((t) => t.name === 'tags') as Table).primaryKey = null;
    assert.throws(() => plan(cat, over({})), /references\[0\]\.to: public\.tags has no one-column primary key; write tags\(column\)/);
    const cat2 = withTags();
    cat2.tables.find((t) => t.name === 'licenses')?.columns.push(col('post_ids', 'bigint[]', false, 'A'));
    assert.throws(
      () => plan(cat2, { references: [{ table: 'licenses', keys: 'post_ids', to: 'posts' }] }),
      /public\.licenses is copied whole but public\.posts is not/,
    );
  });
});

describe('the production script', () => {
  const script = productionScript(plan());

  it('reads in one read-only repeatable-read transaction and writes only temporary tables', () => {
    const begin = script.indexOf('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;');
    assert.ok(begin > 0);
    assert.ok(script.lastIndexOf('CREATE TEMP TABLE') < begin, 'temporary tables are created before the transaction');
    for (const m of script.matchAll(/(INSERT INTO|DELETE FROM|UPDATE)\s+(\S+)/g)) assert.match(m[2], /^pg_temp\./, m[0]);
    assert.ok(!/\b(TRUNCATE|DROP|ALTER)\b/.test(script));
  });

  it('emits one COPY block per copied table, with rules applied in the SELECT', () => {
    assert.equal(script.match(/SELECT 'COPY "public"\./g)?.length, 6);
    assert.match(script, /'user' \|\| id \|\| '@dev\.local'/);
    assert.match(script, /substr\(encode\(sha256\(convert_to\('k:' \|\| t\."ip_hash"::text, 'UTF8'\)\), 'hex'\), 1, 32\)/);
    assert.ok(!script.includes('"refresh_tokens" ('), 'token tables are not copied');
  });
});

describe('CHECK constraints over nullable references', () => {
  // Issue 15's reproduction: a like points at a post or at another user, never both nor neither.
  function likes(keyed = false): Catalog {
    const t = table('likes', [col('id', 'bigint', true), col('user_id', 'bigint', true), col('post_id'), col('other_user_id'), col('weight')]);
    t.checks = [
      { name: 'likes_check', expression: '(num_nonnulls(post_id, other_user_id) = 1)', columns: ['post_id', 'other_user_id'] },
      { name: 'likes_weight_check', expression: '(weight > 0)', columns: ['weight'] },
      { name: 'likes_user_check', expression: '(user_id > 0)', columns: ['user_id'] },
    ];
    const cat: Catalog = {
      tables: [table('users', [col('id', 'bigint', true)]), table('posts', [col('id', 'bigint', true), col('user_id', 'bigint', true)]), t],
      foreignKeys: [
        fk('posts', ['user_id'], 'users'),
        fk('likes', ['user_id'], 'users'),
        fk('likes', ['post_id'], 'posts'),
        fk('likes', ['other_user_id'], 'users'),
      ],
      sequences: [],
    };
    if (keyed) {
      cat.tables.push(table('like_events', [col('id', 'bigint', true), col('like_id', 'bigint', true)]));
      cat.foreignKeys.push(fk('like_events', ['like_id'], 'likes'));
    }
    return cat;
  }
  const checkPlan = (cat: Catalog, over: Record<string, unknown> = {}) =>
    buildPlan(cat, { settings: sampleSchema.parse({ root: 'users', ...over }), fraction: 0.1, seed: 's', secrets: { maskKey: 'k' } });
  const tp = (p: SamplePlan, name: string) => p.tables.find((t) => t.table.name === name)!;

  it('guards a leaf: only checks over a column nulled by policy, evaluated on the row as copied', () => {
    const p = checkPlan(likes());
    const l = tp(p, 'likes');
    assert.equal(l.keyed, false);
    assert.deepEqual(l.checkDrops, ['likes_check'], 'weight is no reference, user_id is dropped rather than nulled');
    assert.match(l.note, /; rows whose nulled reference would break CHECK likes_check are dropped$/);
    const where = rowCondition(p, l) as string;
    // The check's own expression, over both nulled columns with the same CASE the COPY uses.
    // (The COPY's CASE also counts cleared owners on a temporary sequence; the guard counts nothing.)
    const uncounted = (e: string) => e.replace(/ WHEN nextval\('pg_temp\.ts_c[0-9a-f]+'\) > 0 THEN NULL END$/, ' END');
    const postCase = uncounted(l.columns.find((c) => c.name === 'post_id')!.expression);
    const otherCase = uncounted(l.columns.find((c) => c.name === 'other_user_id')!.expression);
    assert.ok(!where.includes('nextval'), where);
    assert.match(postCase, /^CASE WHEN /);
    assert.ok(
      where.endsWith(
        ` AND (SELECT ((num_nonnulls(post_id, other_user_id) = 1)) IS NOT FALSE FROM (SELECT ${postCase} AS "post_id", ${otherCase} AS "other_user_id") n)`,
      ),
      where,
    );
    assert.ok(!where.includes('weight') && !where.includes('user_id > 0'));
    // Rows dropped are counted in the same snapshot, under the check's name.
    assert.match(clearedSelect(p) as string, /count\(\*\) FILTER \(WHERE NOT \(SELECT \(\(num_nonnulls.*'public\.likes', 'likes_check', s\.n0, 'check'/);
    assert.ok(!productionScript(p).includes('ts_check_drops'), 'no member table to prune');
    assert.deepEqual(tp(p, 'posts').checkDrops, []);
    assert.ok(!tp(p, 'posts').note.includes('CHECK'));
  });

  it('leaves a check alone when no column of it can be nulled: drop policies, references into tables copied whole', () => {
    assert.deepEqual(tp(checkPlan(likes(), { 'foreign-keys': { 'likes(post_id)': 'drop', 'likes(other_user_id)': 'drop' } }), 'likes').checkDrops, []);
    const cat = likes();
    cat.foreignKeys = cat.foreignKeys.filter((f) => f.columns[0] !== 'other_user_id');
    cat.tables.push(table('colors', [col('id', 'bigint', true)]));
    (cat.tables.find((t) => t.name === 'likes') as Table).checks = [
      { name: 'likes_color_check', expression: '(num_nonnulls(color_id, weight) = 1)', columns: ['color_id', 'weight'] },
    ];
    cat.tables.find((t) => t.name === 'likes')!.columns.push(col('color_id'));
    cat.foreignKeys.push(fk('likes', ['color_id'], 'colors'));
    assert.deepEqual(tp(checkPlan(cat, { 'reference-tables': ['colors'] }), 'likes').checkDrops, []);
    assert.deepEqual(tp(checkPlan(cat), 'likes').checkDrops, ['likes_color_check'], 'colors not copied: every color_id is nulled');
  });

  it('prunes a keyed table in the pruning loop and counts the members each check drops', () => {
    const p = checkPlan(likes(true));
    const l = tp(p, 'likes');
    assert.equal(l.keyed, true);
    assert.deepEqual(l.checkDrops, ['likes_check']);
    assert.ok(!(rowCondition(p, l) as string).includes('num_nonnulls'), 'the COPY reads the pruned members');
    const program = membershipProgram(p);
    const pruning = program.slice(program.lastIndexOf('  LOOP'));
    assert.ok(
      pruning.includes(
        `DELETE FROM pg_temp.${l.temp} m USING ONLY "public"."likes" t WHERE m."id" = t."id" AND NOT (SELECT ((num_nonnulls(post_id, other_user_id) = 1)) IS NOT FALSE FROM`,
      ),
      pruning,
    );
    assert.match(
      pruning,
      /GET DIAGNOSTICS ts_n = ROW_COUNT; ts_total := ts_total \+ ts_n;\n {2}IF ts_n > 0 THEN INSERT INTO pg_temp\.ts_check_drops VALUES \('public\.likes', 'likes_check', ts_n\)/,
    );
    assert.ok(tempTables(p).includes('CREATE TEMP TABLE ts_check_drops (tbl text, con text, n bigint);'));
    assert.match(clearedSelect(p) as string, /SELECT tbl, con, sum\(n\)::bigint, 'check' FROM pg_temp\.ts_check_drops GROUP BY tbl, con/);
  });
});

describe('the dev password', () => {
  it('is a passlib pbkdf2-sha256 hash that verifies', () => {
    const salt = Buffer.from('0123456789abcdef');
    const h = hashDevPassword('letmein', 'pbkdf2-sha256', salt) as string;
    const [, scheme, rounds, s, sum] = h.split('$');
    assert.equal(scheme, 'pbkdf2-sha256');
    const ab64 = (b: Buffer) => b.toString('base64').replace(/\+/g, '.').replace(/=+$/, '');
    assert.equal(s, ab64(salt));
    assert.equal(sum, ab64(pbkdf2Sync('letmein', salt, Number(rounds), 32, 'sha256')));
  });
});

describe('public values (sample.public-tables, sample.public-columns)', () => {
  const columns = { 'users.email': 'fake-email', 'posts.storage_key': 'keep', 'view_events.ip_hash': 'rehash', 'comments.body': 'rehash' };

  it('keeps a declared column without a rule, never probes it, and marks it for the leak scan', () => {
    const p = plan(makapix(), { columns, 'public-tables': ['licenses'] });
    const title = p.tables.find((t) => t.table.name === 'licenses')?.columns.find((c) => c.name === 'title');
    assert.equal(title?.expression, 't."title"');
    assert.equal(title?.rule, 'keep, public');
    assert.equal(title?.public, true);
    assert.deepEqual(p.probes.map((x) => `${x.table}.${x.column}`).sort(), [
      'public.comments.body',
      'public.posts.storage_key',
      'public.users.email',
      'public.view_events.ip_hash',
    ]);
  });

  it('draws no probe from a declared column even when it has a masking rule', () => {
    const p = plan(makapix(), { columns, 'reference-tables': ['licenses'], 'public-columns': ['comments.body', 'licenses.title'] });
    assert.deepEqual(p.probes.map((x) => `${x.table}.${x.column}`).sort(), ['public.posts.storage_key', 'public.users.email', 'public.view_events.ip_hash']);
    assert.equal(p.tables.find((t) => t.table.name === 'comments')?.columns.find((c) => c.name === 'body')?.rule, 'rehash, public');
  });

  it('refuses a public table production lacks in one line, and warns about a column it lacks', () => {
    assert.throws(
      () => plan(makapix(), { columns, 'public-tables': ['licences'] }),
      (e: Error) => e instanceof ConfigurationError && /^sample: public-tables: production has no table licences$/.test(e.message),
    );
    const p = plan(makapix(), { columns: { ...columns, 'licenses.title': 'keep' }, 'public-columns': ['licenses.name'] });
    assert.ok(p.warnings.includes('public-columns: licenses.name names no column in production; the marker is ignored'), p.warnings.join('\n'));
  });
});
