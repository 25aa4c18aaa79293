/**
 * Validation of inputs that name things on the host. Each check throws a ConfigurationError with
 * one line saying what to change; all of them run before anything is sent to the host.
 */
import { ConfigurationError } from './errors';
import { parseSha, type Sha } from './sha';

const MAX = 200;

function check(name: string, value: string, re: RegExp, what: string): string {
  if (value.length > MAX) throw new ConfigurationError(`${name} is ${value.length} characters long; at most ${MAX} are allowed`);
  if (!re.test(value)) throw new ConfigurationError(`${name} "${printable(value)}" is not valid: ${what}`);
  return value;
}

/**
 * Shows a bad value safely in an error line: control characters escaped, and so are invisible
 * format characters (bidi overrides, zero-width spaces), which could make the line read as
 * something else; length capped.
 */
export function printable(value: string): string {
  const escaped = JSON.stringify(value)
    .slice(1, -1)
    .replace(/[\p{Cf}\p{Zl}\p{Zp}\u0080-\u009f]/gu, (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`);
  return escaped.length > 60 ? `${escaped.slice(0, 59)}…` : escaped;
}

export function environmentName(value: string, name = 'environment'): string {
  return check(name, value, /^[a-z][a-z0-9-]{0,30}$/, 'use lower-case letters, digits and dashes, starting with a letter (e.g. dev, prod)');
}

/** A git ref or sha as `git check-ref-format` would accept, and never an option. */
export function gitRef(value: string, name = 'ref'): string {
  const ok =
    /^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(value) &&
    !value.includes('..') &&
    !value.includes('//') &&
    !value.endsWith('/') &&
    !value.endsWith('.') &&
    !value.endsWith('.lock') &&
    !value.includes('@{');
  if (value.length > MAX) throw new ConfigurationError(`${name} is ${value.length} characters long; at most ${MAX} are allowed`);
  if (!ok) throw new ConfigurationError(`${name} "${printable(value)}" is not a git branch, tag or commit sha: use letters, digits, '.', '_', '-' and '/'`);
  return value;
}

const FULL_COMMIT = 'expected a full hexadecimal commit id (40 characters, or 64 in a SHA-256 repository)';

/** A full commit id (40 hexadecimal characters, or 64 in a SHA-256 repository; upper case is read as lower), as resolveRef gives it. */
export function sha(value: string, name = 'sha'): Sha {
  const parsed = parseSha(check(name, value.trim(), /^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$/, FULL_COMMIT));
  if (!parsed) throw new ConfigurationError(`${name} "${printable(value)}" is not valid: ${FULL_COMMIT}`);
  return parsed;
}

/** Release ids are made by twinstack: r<UTC time>-<short sha>. */
export function releaseId(value: string, name = 'release-id'): string {
  return check(name, value, /^r\d{8}T\d{6}Z-[0-9a-f]{7,12}$/, 'expected an id like r20260101T120000Z-1a2b3c4 (see the status action or the host log)');
}

export function backupId(value: string, name = 'backup-id'): string {
  return check(name, value, /^b\d{8}T\d{6}Z-[a-z][a-z0-9-]{0,30}$/, 'expected an id like b20260101T120000Z-prod (see the backup action output)');
}

/** An absolute path on the host, without traversal or shell-special surprises. */
export function absolutePath(value: string, name = 'path'): string {
  check(name, value, /^\/[A-Za-z0-9._/@+-]*$/, 'use an absolute path of letters, digits and . _ / @ + -');
  if (value.split('/').some((seg) => seg === '..')) throw new ConfigurationError(`${name} "${printable(value)}" must not contain ".."`);
  return value.length > 1 ? value.replace(/\/+$/, '') : value;
}

/** A path relative to a checkout. */
export function relativePath(value: string, name = 'path'): string {
  check(name, value, /^[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*$/, 'use a relative path of letters, digits and . _ / @ + -');
  if (value.split('/').some((seg) => seg === '..')) throw new ConfigurationError(`${name} "${printable(value)}" must not contain ".."`);
  return value;
}

export function composeName(value: string, name = 'name'): string {
  return check(name, value, /^[a-z0-9][a-z0-9_-]{0,62}$/, 'use lower-case letters, digits, dashes and underscores (a compose project or service name)');
}

export function positiveInt(value: string, name: string, max = 1_000_000): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) < 1 || Number(value) > max) {
    throw new ConfigurationError(`${name} "${printable(value)}" must be a whole number from 1 to ${max}`);
  }
  return Number(value);
}

export function boolean(value: string, name: string): boolean {
  const v = value.trim().toLowerCase();
  if (['true', 'yes', '1', 'on'].includes(v)) return true;
  if (['false', 'no', '0', 'off', ''].includes(v)) return false;
  throw new ConfigurationError(`${name} "${printable(value)}" must be true or false`);
}
