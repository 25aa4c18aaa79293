/**
 * Anonymization: which columns look sensitive, what each rule becomes as a SQL expression in the
 * production-side SELECT (so real values never leave production), and the dev password hash.
 */
import * as bcrypt from 'bcryptjs';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { Column } from './catalog';
import type { ColumnRule, SampleSettings } from '../config/sample';
import { ident, literal } from '../infra/sql';

/** The words of a column name: `lastLoginIP_hash` → last, login, ip, hash. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
    .toLowerCase()
    .split(/[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])/)
    .filter(Boolean);
}

/** The sensitive name fragment a column matches (a word of its name starting with it), if any. */
export function sensitiveMatch(column: Pick<Column, 'name' | 'category'>, patterns: readonly string[]): string | undefined {
  // A boolean cannot hold personal data (email_verified, is_private).
  if (column.category === 'B') return undefined;
  const words = nameWords(column.name);
  return patterns.find((p) => words.some((w) => w.startsWith(p)));
}

/** Types whose text form can carry a personal value (and can be searched for one). */
export function isTextual(column: Pick<Column, 'category' | 'baseType'>): boolean {
  return column.category === 'S' || ['citext', 'inet', 'cidr', 'macaddr', 'macaddr8', 'json', 'jsonb', 'xml'].includes(column.baseType);
}

/**
 * Columns that must have a rule when copied: text of any kind, JSON, XML, addresses, binary (a
 * staff member's photo, an uploaded document) and arrays of those.
 */
export function needsRule(column: Pick<Column, 'category' | 'baseType'>): boolean {
  return (
    isTextual(column) ||
    column.baseType === 'bytea' ||
    (column.category === 'A' && ['_text', '_varchar', '_bpchar', '_citext', '_json', '_jsonb', '_xml', '_inet', '_bytea'].includes(column.baseType))
  );
}

/** Values that are personal by their shape alone: e-mail addresses, IP addresses, phone numbers. */
export const PERSONAL_SHAPE =
  '^([^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+|[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]+)?|[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*(/[0-9]+)?|\\+?[0-9 ().-]{7,20})$';

export function describeRule(rule: ColumnRule): string {
  return typeof rule === 'string' ? rule : `sql: ${rule.sql}`;
}

export interface RunSecrets {
  /** The dev password's hash in the configured format, or undefined when no password was given. */
  devPasswordHash?: string;
  /** The key of the masking hash (rehash, fake-email, fake-name), from the seed. */
  maskKey: string;
}

/**
 * The same seed (and secret) give the same key, so masked values are the same in every run with
 * that seed. The key is sent to production's session; dev never sees it.
 */
export function maskKeyFor(seed: string, secret = ''): string {
  return createHmac('sha256', `twinstack masking key:${secret}`).update(seed).digest('hex');
}

/** passlib's adapted base64: '+' becomes '.', no padding. */
function ab64(buf: Buffer): string {
  return buf.toString('base64').replace(/\+/g, '.').replace(/=+$/, '');
}

/** One hash of the dev password, in a format the app's password check accepts. */
export function hashDevPassword(password: string, scheme: SampleSettings['password-hash'], salt = randomBytes(16)): string | undefined {
  switch (scheme) {
    case 'pbkdf2-sha256': {
      const rounds = 29000;
      return `$pbkdf2-sha256$${rounds}$${ab64(salt)}$${ab64(pbkdf2Sync(password, salt, rounds, 32, 'sha256'))}`;
    }
    case 'django-pbkdf2-sha256': {
      const iterations = 600000;
      const s = createHash('sha256').update(salt).digest('hex').slice(0, 22);
      return `pbkdf2_sha256$${iterations}$${s}$${pbkdf2Sync(password, s, iterations, 32, 'sha256').toString('base64')}`;
    }
    case 'pgcrypto-bcrypt':
      // On the runner, in the $2a$ form pgcrypto's crypt() checks: the password never reaches a
      // production session (pg_stat_activity, the server log).
      return bcrypt.hashSync(password, bcrypt.genSaltSync(10));
  }
}

export class RuleError extends Error {}

/**
 * The SQL expression a rule becomes, cast back to the column's type. `t` is the row's alias; a
 * `sql` rule's expression refers to the row's columns unqualified.
 */
export function ruleExpression(rule: ColumnRule, column: Column, where: string, secrets: RunSecrets): string {
  const col = `t.${ident(column.name)}`;
  const cast = (e: string) => `(${e})::${column.type}`;
  if (rule === 'keep') return col;
  if (rule === 'null') {
    if (column.notNull) throw new RuleError(`${where}: rule null on a NOT NULL column; use {sql: ...} to give it a harmless value`);
    return `NULL::${column.type}`;
  }
  if (rule === 'rehash' || rule === 'fake-email' || rule === 'fake-name') {
    const inet = ['inet', 'cidr'].includes(column.baseType);
    if (column.category !== 'S' && !(rule === 'rehash' && inet)) {
      throw new RuleError(`${where}: ${rule} makes text and ${column.type} is not a text type; use null or {sql: ...}`);
    }
    const made = maskedValue({ rule, col, key: secrets.maskKey, inet, unique: column.unique ?? false });
    const max = maxLength(column);
    if (column.unique && max !== undefined && max < made.length) {
      throw new RuleError(
        `${where}: ${rule} needs ${made.length} characters to keep this unique column unique and ${column.type} holds ${max}; use {sql: ...}`,
      );
    }
    return cast(`CASE WHEN ${col} IS NULL THEN NULL ELSE ${made.sql} END`);
  }
  if (rule === 'dev-password') {
    if (column.category !== 'S') throw new RuleError(`${where}: dev-password writes a text hash and ${column.type} is not a text type`);
    if (column.unique) throw new RuleError(`${where}: dev-password gives every row the same hash and the column is unique; use rehash or null`);
    const hash = secrets.devPasswordHash !== undefined ? literal(secrets.devPasswordHash) : undefined;
    if (hash === undefined) {
      if (column.notNull) throw new RuleError(`${where} is NOT NULL and gets the dev password hash: give the dev-password input`);
      return `NULL::${column.type}`;
    }
    // Users without a password (signed up with a provider) stay without one.
    return cast(`CASE WHEN ${col} IS NULL THEN NULL ELSE ${hash} END`);
  }
  return cast(rule.sql);
}

/** Invented syllables: fake names that no real person is likely to have, so no probe matches one. */
const SYLLABLES = [
  'ka',
  'lo',
  'mi',
  'ren',
  'ta',
  'vu',
  'shi',
  'no',
  'ber',
  'dal',
  'fen',
  'gro',
  'hal',
  'ix',
  'jo',
  'kel',
  'lum',
  'mar',
  'nev',
  'ost',
  'pra',
  'qui',
  'ros',
  'sel',
  'tor',
  'ul',
  'vin',
  'wex',
  'yar',
  'zed',
  'bri',
  'cas',
];

/** varchar(n)/char(n): the most characters the column holds. */
export function maxLength(column: Pick<Column, 'type'>): number | undefined {
  const m = /^(character varying|varchar|character|char)\((\d+)\)/.exec(column.type);
  return m ? Number(m[2]) : undefined;
}

/**
 * A masked value from the keyed hash of the value's text (sha256 of key and value, computed in
 * production). `length` is the longest text it makes, to check it fits a unique column.
 */
export function maskedValue({
  rule,
  col,
  key,
  inet,
  unique,
}: {
  rule: 'rehash' | 'fake-email' | 'fake-name';
  /** The column's SQL expression. */
  col: string;
  /** The keyed hash's key. */
  key: string;
  inet: boolean;
  unique: boolean;
}): { sql: string; length: number } {
  const digest = `sha256(convert_to(${literal(`${key}:`)} || ${col}::text, 'UTF8'))`;
  const hex = `encode(${digest}, 'hex')`;
  if (rule === 'rehash' && inet) {
    // An address in the private fd00::/8 range, 120 bits of the hash.
    const groups = [`'fd' || substr(h, 1, 2)`, ...[3, 7, 11, 15, 19, 23, 27].map((i) => `substr(h, ${i}, 4)`)];
    return { sql: `(SELECT (${groups.join(" || ':' || ")})::inet FROM (SELECT ${hex} AS h) x)`, length: 39 };
  }
  if (rule === 'rehash') return { sql: `substr(${hex}, 1, 32)`, length: 32 };
  if (rule === 'fake-email') return { sql: `('u' || substr(${hex}, 1, 20) || '@example.invalid')`, length: 37 };
  const syl = `ARRAY[${SYLLABLES.map((x) => literal(x)).join(', ')}]`;
  const pick = (i: number) => `a[1 + get_byte(d, ${i}) % ${SYLLABLES.length}]`;
  // Unique columns (user names) get 12 hex digits of the hash: names alone would collide.
  const suffix = unique ? ` || ' ' || substr(encode(d, 'hex'), 1, 12)` : '';
  return {
    sql: `(SELECT initcap(${pick(0)} || ${pick(1)}) || ' ' || initcap(${pick(2)} || ${pick(3)} || ${pick(4)})${suffix} FROM (SELECT ${digest} AS d, ${syl} AS a) x)`,
    length: 6 + 1 + 9 + (unique ? 13 : 0),
  };
}
