/** init's rules, checked as the run checks them: short unique columns and lookup tables that hold people. */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import type { Catalog, Column, ForeignKey, Table } from '../../src/resample/catalog';
import { initSample, proposeRule } from '../../src/resample/init';

const col = (name: string, type: string, notNull = false, unique = false): Column => ({
  name,
  type,
  notNull,
  generated: false,
  category: ['text', 'uuid'].includes(type) || type.startsWith('character') ? (type === 'uuid' ? 'U' : 'S') : 'N',
  baseType: type.startsWith('character varying') ? 'varchar' : type === 'integer' ? 'int4' : type === 'bigint' ? 'int8' : type,
  unique,
});
const table = (name: string, columns: Column[], rows = 500): Table => ({
  id: `public.${name}`,
  schema: 'public',
  name,
  partitioned: false,
  columns,
  primaryKey: [columns[0].name],
  rows,
  rowsExact: true,
});

describe('init on a unique column too short for the keyed hash', () => {
  it("uses the row's integer key in hex, which stays unique and fits", () => {
    const code = col('short_code', 'character varying(12)', true, true);
    assert.deepEqual(proposeRule(code, table('users', [col('id', 'integer', true), code]), false).rule, { sql: 'to_hex("id")' });
    const email = col('email', 'character varying(30)', false, true);
    assert.deepEqual(proposeRule(email, table('users', [col('id', 'integer', true), email]), false).rule, {
      sql: `CASE WHEN "email" IS NULL THEN NULL ELSE 'u' || to_hex("id") || '@example.invalid' END`,
    });
  });

  it('without an integer key: null where it may be null, else keep for a person to decide', () => {
    const nullable = col('handle', 'character varying(12)', false, true);
    assert.equal(proposeRule(nullable, table('accounts', [col('id', 'uuid', true), nullable]), false).rule, 'null');
    const required = col('sqid', 'character varying(6)', true, true);
    const r = proposeRule(required, table('links', [col('id', 'integer', true), required]), false);
    assert.equal(r.rule, 'keep');
    assert.match(r.why, /keep only if it holds nothing personal/);
  });

  it('leaves a rule that fits as it is', () => {
    const code = col('code', 'character varying(40)', true, true);
    assert.equal(proposeRule(code, table('users', [col('id', 'integer', true), code]), false).rule, 'rehash');
  });
});

describe('init on a lookup table', () => {
  it("masks a lookup's personal columns: an address's phone, a staff member's name beside an e-mail", () => {
    const address = table('address', [col('address_id', 'integer', true), col('phone', 'text', true), col('district', 'text', true)], 600);
    assert.equal(proposeRule(address.columns[1], address, true).rule, 'rehash');
    const staff = table('staff', [col('staff_id', 'integer', true), col('first_name', 'text', true), col('email', 'text')], 2);
    assert.equal(proposeRule(staff.columns[1], staff, true).rule, 'fake-name');
  });

  it("masks a picture beside a person's e-mail (pagila's staff photo), keeps a lookup's icon, and asks about any other binary", () => {
    const staff = table('staff', [col('staff_id', 'integer', true), col('email', 'text'), col('picture', 'bytea')], 2);
    assert.deepEqual(proposeRule(staff.columns[2], staff, true), { rule: 'null', why: 'binary (a photo, a file): keep only if it holds nothing personal' });
    const license = table('license', [col('id', 'integer', true), col('icon', 'bytea', true)], 8);
    assert.equal(proposeRule(license.columns[1], license, true).rule, 'keep');
    const upload = table('upload', [col('id', 'integer', true), col('body', 'bytea', true)], 5000);
    assert.deepEqual(proposeRule(upload.columns[1], upload, false).rule, { sql: "''" });
  });

  it("keeps a catalog's names and places: a city, an actor", () => {
    const city = table('city', [col('city_id', 'integer', true), col('city', 'text', true)], 600);
    assert.equal(proposeRule(city.columns[1], city, true).rule, 'keep');
    const actor = table('actor', [col('actor_id', 'integer', true), col('last_name', 'text', true)], 200);
    assert.equal(proposeRule(actor.columns[1], actor, true).rule, 'keep');
  });
});

/** A music shop: members buy tracks; a track's artists and genres are the shop's catalog. */
const shop = (sizes: { trackArtist?: number } = {}): Catalog => {
  const fk = (t: string, columns: string[], ref: string): ForeignKey => ({
    name: `${t}_${columns.join('_')}_fkey`,
    table: `public.${t}`,
    columns,
    refTable: `public.${ref}`,
    refColumns: ['id'],
    onDelete: 'no action',
  });
  const withKey = (t: Table, primaryKey: string[]): Table => ({ ...t, primaryKey });
  return {
    tables: [
      table('member', [col('id', 'integer', true), col('name', 'text', true), col('email', 'text', true)], 400),
      table('track', [col('id', 'integer', true), col('title', 'text', true)], 900),
      table('purchase', [col('id', 'integer', true), col('member_id', 'integer', true), col('track_id', 'integer', true)], 3000),
      table('artist', [col('id', 'integer', true), col('name', 'text', true)], 200),
      table('genre', [col('id', 'integer', true), col('label', 'text', true)], 12),
      // Link tables: keys, a position, a timestamp.
      withKey(
        table(
          'track_artist',
          [col('track_id', 'integer', true), col('artist_id', 'integer', true), col('position', 'integer', true)],
          sizes.trackArtist ?? 2500,
        ),
        ['track_id', 'artist_id'],
      ),
      withKey(table('track_genre', [col('track_id', 'integer', true), col('genre_id', 'integer', true), col('added', 'timestamptz', true)], 900), [
        'track_id',
        'genre_id',
      ]),
      // Not a link: a note beside the key is someone's text.
      table('track_note', [col('id', 'integer', true), col('track_id', 'integer', true), col('body', 'text', true)], 50),
    ],
    foreignKeys: [
      fk('purchase', ['member_id'], 'member'),
      fk('purchase', ['track_id'], 'track'),
      fk('track_artist', ['track_id'], 'track'),
      fk('track_artist', ['artist_id'], 'artist'),
      fk('track_genre', ['track_id'], 'track'),
      fk('track_genre', ['genre_id'], 'genre'),
      fk('track_note', ['track_id'], 'track'),
    ],
    sequences: [],
  };
};

describe("init on a catalog's link tables", () => {
  it('copies whole a table that only links lookups (a track to its artists and genres), and the lookups it links', () => {
    const r = initSample(shop(), { root: 'member', fraction: 0.1, seed: 's' });
    assert.deepEqual([...r.referenceTables].sort(), ['public.artist', 'public.genre', 'public.track', 'public.track_artist', 'public.track_genre']);
    assert.deepEqual(r.emptyTables, [
      { table: 'public.track_note', why: 'nothing leads from it to the sampled rows; move it to reference-tables to copy it whole' },
    ]);
    assert.deepEqual([...r.publicTables].sort(), ['public.artist', 'public.genre', 'public.track']);
    assert.ok(r.columns.some((c) => c.ref === 'artist.name' && c.rule === 'keep'));
  });

  it('leaves a link table too large to be a catalog detail empty', () => {
    const r = initSample(shop({ trackArtist: 2_000_000 }), { root: 'member', fraction: 0.1, seed: 's' });
    assert.ok(r.emptyTables.some((t) => t.table === 'public.track_artist'));
    assert.ok(!r.referenceTables.includes('public.artist'));
  });
});
