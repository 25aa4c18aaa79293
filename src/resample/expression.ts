/**
 * SQL text from the config that twinstack pastes into generated scripts: a column rule's `sql:`
 * expression and the sample `filter` (both run in production, inside the read-only snapshot), and
 * vault-sync's `query` (on dev). The config comes from whatever branch dispatched the workflow, so
 * that text is lexed here and must be one expression (or one query) and nothing else: it cannot end
 * its statement, reach psql's backslash commands or variables, hide text in a comment or a dollar
 * quote, or call the server functions that act outside the transaction.
 */

export type SqlFragmentKind = 'expression' | 'query';

/** Functions an expression may never call: server administration, large objects, other connections. */
const DENIED_FUNCTION = /^(pg_|lo_|dblink)|^(set_config|query_to_xml|query_to_xml_and_xmlschema|query_to_xmlschema|cursor_to_xml)$/i;
/** Keywords that would carry an expression past its place in a SELECT list or a WHERE clause. */
const STATEMENT_WORDS = new Set([
  'from',
  'union',
  'intersect',
  'except',
  'into',
  'order',
  'limit',
  'offset',
  'group',
  'having',
  'window',
  'fetch',
  'for',
  'to',
  'returning',
]);

/**
 * Returns what is wrong with the fragment (one phrase, for "<where>: <problem>"), or undefined.
 * `expression`: one scalar expression or condition; top-level commas and clause keywords refused.
 * `query`: one SELECT; clause keywords allowed, statements still cannot be chained.
 */
export function fragmentProblem(text: string, kind: SqlFragmentKind): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return 'contains a control character';
  let depth = 0;
  let i = 0;
  let previous = '';
  while (i < text.length) {
    const c = text[i];
    const next = text[i + 1] ?? '';
    if (c === "'" || c === '"') {
      // A quoted literal or identifier; a doubled quote is the quote itself.
      let j = i + 1;
      for (;;) {
        if (j >= text.length) return `has an unterminated ${c === "'" ? 'string' : 'quoted identifier'}`;
        if (text[j] === c) {
          if (text[j + 1] === c) {
            j += 2;
            continue;
          }
          break;
        }
        if (text[j] === '\\') return 'contains a backslash (psql would read it as a command)';
        j++;
      }
      i = j + 1;
      continue;
    }
    if (c === ';') return 'contains ";": it must be one expression, not statements';
    if (c === '\\') return 'contains a backslash (psql would read it as a command)';
    if (c === '$') return 'contains "$" (dollar quoting and parameters are not allowed)';
    if (c === '-' && next === '-') return 'contains a comment ("--")';
    if (c === '/' && next === '*') return 'contains a comment ("/*")';
    if (c === ':' && next !== ':' && text[i - 1] !== ':' && /[A-Za-z_'"{]/.test(next)) return `contains a psql variable (":${next}…")`;
    if (c === '(') depth++;
    if (c === ')') {
      depth--;
      if (depth < 0) return 'has a ")" without its "(" (it would close the surrounding SQL)';
    }
    if (c === ',' && depth === 0 && kind === 'expression') return 'has a comma outside parentheses: it must be one expression';
    if (/[A-Za-z_]/.test(c)) {
      let j = i;
      while (j < text.length && /[A-Za-z0-9_]/.test(text[j])) j++;
      const word = text.slice(i, j);
      let k = j;
      while (k < text.length && /\s/.test(text[k])) k++;
      if (text[k] === '(' && DENIED_FUNCTION.test(word)) return `calls ${word}(), which is not allowed in twinstack's SQL`;
      const lower = word.toLowerCase();
      // IS [NOT] DISTINCT FROM and SIMILAR TO are operators, not clauses.
      const operator = (lower === 'from' && previous === 'distinct') || (lower === 'to' && previous === 'similar');
      if (depth === 0 && kind === 'expression' && STATEMENT_WORDS.has(lower) && !operator)
        return `has ${word.toUpperCase()} outside parentheses: it must be one expression`;
      previous = lower;
      i = j;
      continue;
    }
    i++;
  }
  if (depth !== 0) return 'has a "(" that is never closed';
  return undefined;
}
