/** Quoting for SQL text that twinstack generates (identifiers and literals from the catalog and the config). */

export function ident(name: string): string {
  if (name.includes('\0')) throw new Error('an identifier contains a NUL byte');
  return `"${name.replace(/"/g, '""')}"`;
}

export function literal(value: string): string {
  if (value.includes('\0')) throw new Error('a SQL literal contains a NUL byte');
  // E'' syntax is not needed: standard_conforming_strings is on in every supported version.
  return `'${value.replace(/'/g, "''")}'`;
}

/** `"schema"."table"` for a table id `schema.table`. */
export function qualified(schema: string, name: string): string {
  return `${ident(schema)}.${ident(name)}`;
}

/** `t.a` or `(t.a, t.b)`: a column tuple for IN comparisons. */
export function tuple(alias: string, columns: readonly string[]): string {
  const cols = columns.map((c) => `${alias}.${ident(c)}`);
  return cols.length === 1 ? cols[0] : `(${cols.join(', ')})`;
}

/** A dollar-quote tag that does not occur in the body. */
export function dollarTag(body: string, base = 'ts'): string {
  let tag = `$${base}$`;
  for (let i = 0; body.includes(tag); i++) tag = `$${base}${i}$`;
  return tag;
}

/**
 * A statement from a `.sql` file under src/ (shipped beside the bundles), as one line: its `--`
 * comment lines left out, the others trimmed and joined by a space. The files hold no string
 * literal that spans lines, so the statement means what the file says.
 */
export function sqlFile(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('--'));
  // Joined, a comment at the end of a line would swallow the rest of the statement.
  const commented = lines.find((l) => l.includes('--'));
  if (commented) throw new Error(`a .sql file has a comment after SQL on one line (put it on a line of its own): ${commented}`);
  return lines.join(' ');
}
