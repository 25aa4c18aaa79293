/**
 * JSON read from the host is parsed with its schema, never cast: a value of another shape (a file
 * cut short by a full disk, edited by hand, written by another version) is refused in one line
 * that names where it was read and what is wrong, before anything decides on it.
 */
import type { z } from 'zod';
import { HostDataError, errorMessage, shorten } from './errors';

/** Parses `text` as JSON and checks it against `schema`; `what` names the file or record, e.g. "the lock holder /var/lib/twinstack/prod/lock-holder.json". */
export function parseHostJson<S extends z.ZodTypeAny>(schema: S, text: string, what: string): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HostDataError(`${what} is not JSON (${errorMessage(e)}): ${shorten(text, 120) || 'empty'}`);
  }
  return checkHostValue(schema, value, what);
}

/** Checks a value already parsed from JSON against `schema`, refusing it as parseHostJson does. */
export function checkHostValue<S extends z.ZodTypeAny>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new HostDataError(`${what} is not what twinstack expects: ${describeIssues(r.error)}`);
  return r.data as z.output<S>;
}

/** The first problem of a failed parse, in one line: where in the value, and what is wrong there. */
export function describeIssues(error: z.ZodError): string {
  const [first, ...rest] = error.issues;
  if (!first) return 'invalid';
  const where = first.path.length ? first.path.join('.') : 'the value';
  return `${where}: ${first.message}${rest.length ? ` (and ${rest.length} more problem${rest.length > 1 ? 's' : ''})` : ''}`;
}
