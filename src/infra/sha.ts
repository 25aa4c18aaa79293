/**
 * A commit id as twinstack records and compares it: the full id, lower case: 40 hexadecimal
 * characters in a SHA-1 repository, 64 in a SHA-256 one (git init --object-format=sha256). Made only by parsing (an input, git's own output), so a value of
 * type Sha has been checked once and is never checked again; `short()` is how it is shown.
 */

declare const brand: unique symbol;

/** A full commit id, lower case (see parseSha). */
export type Sha = string & { readonly [brand]: 'Sha' };

const FULL = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** The same rule as a regular expression's source, for the places that find ids in text. */
export const SHA_PATTERN = '(?:[0-9a-f]{40}|[0-9a-f]{64})';

/** How many characters of a commit id are shown to people (git's `--abbrev=12`). */
export const SHORT_LENGTH = 12;

/** Whether `value` is already a full, lower-case commit id. */
export function isSha(value: string): value is Sha {
  return FULL.test(value);
}

/** The commit id in `value` (surrounding blanks and upper case allowed), or undefined when it is not one. */
export function parseSha(value: string): Sha | undefined {
  const v = value.trim().toLowerCase();
  return isSha(v) ? v : undefined;
}

/** The 12-character form of a commit id, for messages and labels; a shorter value is shown whole. */
export function short(sha: string): string {
  return sha.slice(0, SHORT_LENGTH);
}
