/**
 * SQL from the config, admitted only when it is known to be harmless. The config comes from
 * whatever branch dispatched the workflow, and its SQL runs in production's snapshot (a column's
 * `sql:` rule, the sample `filter`, a reference's `keys`) or in dev (vault-sync's `query`,
 * `sample.after-load`). Each piece is parsed by PostgreSQL's own parser and its tree walked against
 * an allowlist: node types, functions, types and tables twinstack knows to be read-only and local.
 * Anything else is refused, in one line that names the node and where it stands. Names are compared
 * as the parser resolved them, so quoting (`"pg_read_file"`), Unicode escapes (`U&"lo\005fimport"`)
 * and schema qualification (`pg_catalog.lo_export`) change nothing.
 *
 * The text is also pasted into psql scripts, so psql's own syntax is refused around it: backslash
 * commands, `:variables`, control characters, and a trailing comment that would swallow what
 * twinstack writes after the fragment.
 */
import { parseSql, SqlSyntaxError, type PgNode } from '../infra/pg-parser';

/**
 * `expression`: one scalar expression over a row's columns (no subquery, no aggregate).
 * `query`: one SELECT (vault-sync's query on dev): tables, joins, subqueries and aggregates.
 * `statement`: one UPDATE, INSERT, DELETE or REFRESH MATERIALIZED VIEW (after-load, in staging).
 */
export type SqlFragmentKind = 'expression' | 'query' | 'statement';

/** Functions without side effects outside the expression: text, numbers, dates, hashing, JSON, arrays. */
const SCALAR_FUNCTIONS = new Set(
  // text
  (
    'lower upper initcap length char_length character_length octet_length bit_length substr substring left right lpad rpad ' +
    'ltrim rtrim btrim trim replace translate concat concat_ws format split_part strpos position overlay repeat reverse ' +
    'starts_with ascii chr to_hex quote_ident quote_literal quote_nullable regexp_replace regexp_match regexp_like ' +
    'regexp_count regexp_instr regexp_substr regexp_split_to_array similar_to_escape like_escape textcat normalize ' +
    'unistr string_to_array array_to_string md5 sha224 sha256 sha384 sha512 encode decode convert_to convert_from ' +
    'hashtext hashtextextended uuid_in text ' +
    // numbers
    'abs ceil ceiling floor round trunc mod div power pow sqrt cbrt exp ln log log10 sign width_bucket greatest least ' +
    'gcd lcm factorial scale min_scale trim_scale random ' +
    // dates and times
    'now current_date current_time current_timestamp localtime localtimestamp clock_timestamp statement_timestamp ' +
    'transaction_timestamp date_trunc date_part date_bin extract make_date make_time make_timestamp make_timestamptz ' +
    'make_interval age justify_days justify_hours justify_interval to_char to_date to_timestamp to_number timezone ' +
    'isfinite overlaps ' +
    // JSON
    'to_json to_jsonb json_build_object jsonb_build_object json_build_array jsonb_build_array json_object jsonb_object ' +
    'jsonb_set jsonb_set_lax jsonb_insert jsonb_strip_nulls json_strip_nulls jsonb_extract_path jsonb_extract_path_text ' +
    'json_extract_path json_extract_path_text jsonb_typeof json_typeof jsonb_array_length json_array_length ' +
    'jsonb_pretty row_to_json array_to_json ' +
    // arrays
    'array_length array_lower array_upper array_ndims array_dims cardinality array_position array_positions ' +
    'array_remove array_replace array_append array_prepend array_cat array_fill trim_array ' +
    // network addresses
    'host hostmask masklen netmask network set_masklen family abbrev broadcast inet_same_family inet_merge ' +
    // uuid and hashing extensions twinstack's users have (pgcrypto, uuid-ossp): their calls fail where not installed
    'gen_random_uuid uuid_generate_v4 digest hmac crypt gen_salt ' +
    // ltree (thread-shaped data: a reply tree's path)
    'ltree2text text2ltree subpath subltree nlevel index lca'
  ).split(' '),
);

/** Aggregates: allowed where rows are grouped (vault-sync's query, after-load), never in a row's expression. */
const AGGREGATES = new Set('count sum min max avg string_agg array_agg bool_and bool_or every jsonb_agg json_agg jsonb_object_agg json_object_agg'.split(' '));

/** Types a value may be cast to: casts to reg* types, or to a type with an input function of the app's own, are refused. */
const CAST_TYPES = new Set(
  (
    'text varchar bpchar char name int2 int4 int8 smallint integer int bigint numeric decimal float4 float8 real ' +
    'bool boolean date time timetz timestamp timestamptz interval uuid json jsonb inet cidr macaddr bytea bit varbit ' +
    'ltree citext'
  ).split(' '),
);

/** Schemas whose tables a query may never read, and a qualifier no function or type may carry but pg_catalog. */
const CATALOG_SCHEMAS = new Set(['pg_catalog', 'information_schema', 'pg_toast']);

class Refusal extends Error {}

interface Walk {
  kind: SqlFragmentKind;
  /** Characters before the fragment in the parsed text (the `SELECT ` of an expression). */
  offset: number;
}

function where(node: Record<string, unknown>, w: Walk): string {
  const loc = typeof node.location === 'number' && node.location >= 0 ? node.location - w.offset : undefined;
  return loc !== undefined && loc >= 0 ? ` at character ${loc + 1}` : '';
}

/** Stops the walk: `what` the node is, where it stands, and why it is refused (when not obvious). */
function refuse(what: string, node: Record<string, unknown>, w: Walk, why?: string): never {
  throw new Refusal(`${what}${where(node, w)}${why ? `, ${why}` : ''}`);
}

/** The names of a node list of String nodes (`funcname`, `names`, `fields`), as the parser resolved them. */
function names(list: unknown): string[] {
  return (Array.isArray(list) ? list : []).map((n: PgNode) => {
    const s = n.String as { sval?: string } | undefined;
    return s?.sval ?? '*';
  });
}

function each(list: unknown, w: Walk): void {
  if (Array.isArray(list)) for (const item of list) node(item as PgNode, w);
}

/** One parse-tree node: its single key is its type. */
function node(n: PgNode | undefined, w: Walk): void {
  if (!n) return;
  const [type] = Object.keys(n);
  if (type === undefined) return; // an empty node (a plain DISTINCT's marker)
  const v = n[type] as Record<string, unknown>;
  const grouped = w.kind !== 'expression';
  switch (type) {
    case 'A_Const':
    case 'SQLValueFunction':
    case 'String':
    case 'Integer':
    case 'Float':
    case 'Boolean':
      return;
    case 'ColumnRef':
      return columnRef(v, w);
    case 'TypeCast':
      node(v.arg as PgNode, w);
      return typeName(v.typeName as Record<string, unknown>, w);
    case 'A_Expr': {
      const op = names(v.name);
      if (op.length > 1 && op[0] !== 'pg_catalog') refuse(`the operator OPERATOR(${op.join('.')})`, v, w);
      node(v.lexpr as PgNode, w);
      return node(v.rexpr as PgNode, w);
    }
    case 'List':
      return each(v.items, w);
    case 'BoolExpr':
    case 'CoalesceExpr':
    case 'MinMaxExpr':
    case 'RowExpr':
    case 'A_ArrayExpr':
      return each(v.args ?? v.elements, w);
    case 'NullTest':
    case 'BooleanTest':
    case 'CollateClause':
      return node(v.arg as PgNode, w);
    case 'CaseExpr':
      node(v.arg as PgNode, w);
      each(v.args, w);
      return node(v.defresult as PgNode, w);
    case 'CaseWhen':
      node(v.expr as PgNode, w);
      return node(v.result as PgNode, w);
    case 'A_Indirection':
      return indirection(v, w);
    case 'FuncCall':
      return funcCall(v, w);
    case 'NamedArgExpr':
      return node(v.arg as PgNode, w);
    case 'SubLink':
      if (!grouped) refuse('a subquery', v, w, 'and an expression here reads one row only');
      node(v.testexpr as PgNode, w);
      return select(v.subselect as PgNode, w);
    case 'SortBy':
      return node(v.node as PgNode, w);
    case 'ResTarget':
      each(v.indirection, w);
      return node(v.val as PgNode, w);
    case 'SetToDefault':
      if (w.kind !== 'statement') refuse('DEFAULT', v, w);
      return;
    case 'SelectStmt':
      if (!grouped) refuse('a SELECT', v, w);
      return select(n, w);
    default:
      return refuse(`a ${type} node`, v, w, 'which is not one of the expressions twinstack allows');
  }
}

function columnRef(v: Record<string, unknown>, w: Walk): void {
  const fields = names(v.fields);
  if (fields.includes('*') && w.kind === 'expression') refuse('a * in a row expression', v, w);
  if (fields.length > 3) refuse(`the name ${fields.join('.')}`, v, w);
}

/** A subscript or a field of a value: `a[1]`, `(row).field`; never `.*`. */
function indirection(v: Record<string, unknown>, w: Walk): void {
  node(v.arg as PgNode, w);
  for (const i of (v.indirection as PgNode[]) ?? []) {
    if ('A_Star' in i) refuse('a .* selection', v, w);
    if ('A_Indices' in i) {
      const ix = i.A_Indices as Record<string, unknown>;
      node(ix.lidx as PgNode, w);
      node(ix.uidx as PgNode, w);
    }
  }
}

function typeName(t: Record<string, unknown>, w: Walk): void {
  const parts = names(t.names);
  const name = parts[parts.length - 1];
  if ((parts.length === 2 && parts[0] !== 'pg_catalog') || parts.length > 2 || !CAST_TYPES.has(name))
    refuse(`a cast to ${parts.join('.')}`, t, w, 'and only text, numbers, dates, json, uuid, inet, bytea and ltree (and their arrays) are allowed');
  each(t.typmods, w);
}

function funcCall(v: Record<string, unknown>, w: Walk): void {
  const parts = names(v.funcname);
  const name = parts[parts.length - 1];
  const qualified = parts.join('.');
  if (parts.length > 2 || (parts.length === 2 && parts[0] !== 'pg_catalog'))
    refuse(`a call of ${qualified}()`, v, w, 'and only pg_catalog may qualify a function');
  const aggregate = AGGREGATES.has(name);
  if (aggregate && w.kind === 'expression') refuse(`the aggregate ${qualified}()`, v, w, 'and an expression here reads one row');
  if (!aggregate && !SCALAR_FUNCTIONS.has(name)) refuse(`a call of ${qualified}()`, v, w, "which is not on twinstack's list of read-only functions");
  if (v.over) refuse(`the window function call ${qualified}() OVER`, v, w);
  if (v.agg_star && !aggregate) refuse(`${qualified}(*)`, v, w);
  if (v.func_variadic) refuse(`VARIADIC in ${qualified}()`, v, w);
  each(v.args, w);
  each(v.agg_order, w);
  node(v.agg_filter as PgNode, w);
}

function rangeVar(r: Record<string, unknown>, w: Walk): void {
  const schema = typeof r.schemaname === 'string' ? r.schemaname : undefined;
  const rel = typeof r.relname === 'string' ? r.relname : '';
  if (typeof r.catalogname === 'string' || (schema && CATALOG_SCHEMAS.has(schema)) || (!schema && rel.startsWith('pg_')))
    refuse(`the table ${[schema, rel].filter(Boolean).join('.')}`, r, w, 'a system catalog');
}

function fromItem(n: PgNode, w: Walk): void {
  const [type] = Object.keys(n);
  const v = n[type] as Record<string, unknown>;
  if (type === 'RangeVar') return rangeVar(v, w);
  if (type === 'RangeSubselect') return select(v.subquery as PgNode, w);
  if (type === 'JoinExpr') {
    fromItem(v.larg as PgNode, w);
    fromItem(v.rarg as PgNode, w);
    return node(v.quals as PgNode, w);
  }
  refuse(`a ${type} in FROM`, v, w, 'where only tables, joins and subqueries are allowed');
}

/** WITH: only SELECTs (a data-modifying CTE would write wherever the statement runs). */
function withClause(c: Record<string, unknown> | undefined, w: Walk): void {
  if (!c) return;
  if (c.recursive) refuse('WITH RECURSIVE', c, w);
  for (const cte of (c.ctes as PgNode[]) ?? []) {
    const v = cte.CommonTableExpr as Record<string, unknown>;
    select(v.ctequery as PgNode, w);
  }
}

function select(n: PgNode | undefined, w: Walk): void {
  if (!n) return;
  const s = n.SelectStmt as Record<string, unknown> | undefined;
  if (!s) refuse(`a ${Object.keys(n)[0]} where a SELECT was expected`, (Object.values(n)[0] ?? {}) as Record<string, unknown>, w);
  if (s.intoClause) refuse('SELECT INTO', s, w);
  if (s.lockingClause) refuse('a locking clause (FOR UPDATE/SHARE)', s, w);
  if (s.windowClause) refuse('a WINDOW clause', s, w);
  withClause(s.withClause as Record<string, unknown> | undefined, w);
  if (s.op && s.op !== 'SETOP_NONE') {
    select(s.larg as PgNode, w);
    return select(s.rarg as PgNode, w);
  }
  for (const f of (s.fromClause as PgNode[]) ?? []) fromItem(f, w);
  for (const key of ['targetList', 'distinctClause', 'groupClause', 'sortClause', 'valuesLists']) each(s[key], w);
  for (const key of ['whereClause', 'havingClause', 'limitCount', 'limitOffset']) node(s[key] as PgNode, w);
}

/** One after-load statement: the writes that make derived data true for the sample, nothing else. */
function statement(n: PgNode, w: Walk): void {
  const [type] = Object.keys(n);
  const v = n[type] as Record<string, unknown>;
  switch (type) {
    case 'UpdateStmt':
    case 'DeleteStmt':
    case 'InsertStmt':
      withClause(v.withClause as Record<string, unknown> | undefined, w);
      rangeVar(v.relation as Record<string, unknown>, w);
      for (const f of [...((v.fromClause as PgNode[]) ?? []), ...((v.usingClause as PgNode[]) ?? [])]) fromItem(f, w);
      each(v.targetList, w);
      each(v.returningList, w);
      node(v.whereClause as PgNode, w);
      if (v.selectStmt) select(v.selectStmt as PgNode, w);
      if (v.onConflictClause) {
        const oc = v.onConflictClause as Record<string, unknown>;
        each(oc.targetList, w);
        node(oc.whereClause as PgNode, w);
      }
      return;
    case 'RefreshMatViewStmt':
      return rangeVar(v.relation as Record<string, unknown>, w);
    default:
      refuse(`a ${type}`, v, w, 'and after-load takes UPDATE, INSERT, DELETE or REFRESH MATERIALIZED VIEW');
  }
}

/**
 * psql's own syntax around the fragment: it reads backslash commands and `:name` variables outside
 * quotes before the server sees the text. Returns the problem, or undefined.
 */
function psqlProblem(text: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return 'contains a control character';
  if (text.includes('\\')) return 'contains a backslash (psql would read it as a command)';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) return undefined; // the parser reports it
      i = end; // a doubled quote closes and reopens: the same regions
      continue;
    }
    if (c === '$') return 'contains "$" outside a string (dollar quoting and parameters are not allowed)';
    if (c === ':' && text[i + 1] !== ':' && text[i - 1] !== ':' && /[A-Za-z_'"{]/.test(text[i + 1] ?? ''))
      return `contains a psql variable (":${text[i + 1]}…")`;
  }
  return undefined;
}

function syntaxProblem(e: unknown, offset: number): string {
  if (e instanceof SqlSyntaxError) {
    const at = e.position !== undefined && e.position >= offset ? ` at character ${e.position - offset + 1}` : '';
    return `does not parse as PostgreSQL: ${e.message}${at}`;
  }
  throw e;
}

/**
 * Returns what is wrong with the fragment (one phrase, for "<where>: <problem>"), or undefined when
 * every node of its parse tree is on the allowlist for its kind.
 */
export function fragmentProblem(text: string, kind: SqlFragmentKind): string | undefined {
  const psql = psqlProblem(text);
  if (psql) return psql;
  const prefix = kind === 'expression' ? 'SELECT ' : '';
  let parsed: PgNode[];
  try {
    parsed = parseSql(prefix + text).statements;
  } catch (e) {
    return syntaxProblem(e, prefix.length);
  }
  if (parsed.length !== 1) return `holds ${parsed.length} statements: it must be one ${kind === 'statement' ? 'statement' : kind}`;
  const w: Walk = { kind, offset: prefix.length };
  try {
    const [stmt] = parsed;
    if (kind === 'statement') statement(stmt, w);
    else if (kind === 'query') select(stmt, w);
    else {
      const s = stmt.SelectStmt as Record<string, unknown> | undefined;
      const targets = (s?.targetList as PgNode[] | undefined) ?? [];
      const extra = s && Object.keys(s).filter((k) => !['targetList', 'limitOption', 'op'].includes(k));
      if (!s || targets.length !== 1 || extra?.length) return 'must be one expression (no FROM, WHERE, commas or other clauses)';
      const target = targets[0].ResTarget as Record<string, unknown>;
      if (target.name) return 'must be one expression (no AS)';
      node(target.val as PgNode, w);
    }
  } catch (e) {
    if (e instanceof Refusal) return `holds ${e.message}`;
    throw e;
  }
  // Pasted into twinstack's own SQL, the fragment is followed by more text on the same line: a
  // trailing comment would swallow it. Parsed again with something after it, it must still be whole.
  try {
    const [followed, expected] = kind === 'statement' ? [`${text} ;SELECT 1`, 2] : [`SELECT (${text}) + 1`, 1];
    if (parseSql(followed).statements.length !== expected) throw new Error('swallowed');
  } catch {
    return 'ends in a comment that would swallow the SQL after it';
  }
  return undefined;
}
