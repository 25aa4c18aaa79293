/**
 * A commit id as twinstack records and compares it: the full 40 hexadecimal characters of a
 * SHA-1 repository, lower case. Made only by parsing (an input, git's own output), so a value of
 * type Sha has been checked once and is never checked again; `short()` is how it is shown.
 */

declare const brand: unique symbol;

/** A full commit id, lower case (see parseSha). */
export type Sha = string & { readonly [brand]: 'Sha' };

const FULL = /^[0-9a-f]{40}$/;

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
