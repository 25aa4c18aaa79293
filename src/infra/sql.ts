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
