/**
 * Anonymization: which columns look sensitive, what each rule becomes as a SQL expression in the
 * production-side SELECT (so real values never leave production), and the dev password hash.
 */
import * as bcrypt from 'bcryptjs';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { Column } from './catalog';
import type { ColumnRule, SampleSettings } from './settings';
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

/** Values that are personal by their shape alone: e-mail addresses, IP addresses, phone numbers. */
export const PERSONAL_SHAPE =
  '^([^@[:space:]]+@[^@[:space:]]+\\.[^@[:space:]]+|[0-9]{1,3}(\\.[0-9]{1,3}){3}(/[0-9]+)?|[0-9a-fA-F]*:[0-9a-fA-F]*:[0-9a-fA-F:.]*(/[0-9]+)?|\\+?[0-9 ().-]{7,20})$';

export function describeRule(rule: ColumnRule): string {
  return typeof rule === 'string' ? rule : `sql: ${rule.sql}`;
}

export interface RunSecrets {
  /** The dev password's hash in the configured format, or undefined when no password was given. */
  devPasswordHash?: string;
  /** Per-run salt for `rehash`. */
  salt: string;
}

export function newSalt(): string {
  return randomBytes(12).toString('hex');
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
  if (rule === 'rehash') {
    if (column.category !== 'S') throw new RuleError(`${where}: rehash makes text and ${column.type} is not a text type; use null or {sql: ...}`);
    return cast(`CASE WHEN ${col} IS NULL THEN NULL ELSE md5(${literal(secrets.salt)} || ${col}::text) END`);
  }
  if (rule === 'dev-password') {
    if (column.category !== 'S') throw new RuleError(`${where}: dev-password writes a text hash and ${column.type} is not a text type`);
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
