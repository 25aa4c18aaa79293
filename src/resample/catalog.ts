/**
 * What production's catalog says: tables (partitioned parents, not their partitions), columns,
 * primary keys, foreign keys (composite, self-referencing, cyclic, declared on the parent or on
 * each partition), CHECK constraints and sequences. Read with psql on
 * the host, which works whether the database runs in a container or not and needs no password.
 */
import type { Host } from '../infra/host';
import type { Environment } from '../domain/environment';
import { OperationFailed } from '../infra/errors';
import { literal, qualified } from '../infra/sql';
import { psql } from '../infra/postgres';

export interface Column {
  name: string;
  /** format_type(): the type as written in SQL, e.g. `character varying(255)`. */
  type: string;
  notNull: boolean;
  /** A stored generated column: never copied (the restore computes it). */
  generated: boolean;
  /** It has a default (a serial, now(), a constant): an INSERT may leave it out. */
  hasDefault?: boolean;
  /** pg_type.typcategory of the (base) type: S string, N numeric, A array, U user-defined... */
  category: string;
  /** The base type's name (for domains, the type underneath): text, jsonb, inet... */
  baseType: string;
  /** Part of a unique index or constraint (as a column or inside an expression such as lower(email)). */
  unique?: boolean;
  /** pg_stats.n_distinct when production was analyzed: distinct values (negative: a fraction of the rows). */
  distinct?: number | null;
}

export interface Table {
  /** `schema.name`, unquoted: the id used everywhere in plans and reports. */
  id: string;
  schema: string;
  name: string;
  partitioned: boolean;
  columns: Column[];
  primaryKey: string[] | null;
  /** Rows in production: exact for small tables, pg_class.reltuples for large ones. */
  rows: number;
  rowsExact: boolean;
  /**
   * Validated CHECK constraints (pg_dump creates them with the table, before the rows load; NOT
   * VALID ones come after and check no existing row). A partitioned parent's own are enough.
   */
  checks?: Check[];
}

export interface Check {
  name: string;
  /** pg_get_expr: unqualified column names of its table. */
  expression: string;
  columns: string[];
}

export interface ForeignKey {
  name: string;
  /** The table it constrains; for a key declared on partitions, their partitioned parent. */
  table: string;
  columns: string[];
  refTable: string;
  refColumns: string[];
  onDelete: 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';
  /**
   * Set when the key is declared on partitions rather than on their parent (as some schemas do,
   * one constraint per partition): the partitions that declare it, and their constraints' names.
   * The sample treats it as a key of the whole parent.
   */
  partitions?: string[];
  names?: string[];
}

export interface SequenceInfo {
  /** `schema.name`, unquoted. */
  id: string;
  schema: string;
  name: string;
  /** Columns whose values come from it (owned, identity, or a nextval default). */
  columns: Array<{ table: string; column: string }>;
  /** Production's last value, used for sequences that feed no column. */
  lastValue: string | null;
}

export interface Catalog {
  tables: Table[];
  foreignKeys: ForeignKey[];
  sequences: SequenceInfo[];
}

/** Runs one query through psql on the host and parses the single JSON value it prints. */
export async function queryJson<T>(host: Host, env: Environment, database: string, sql: string, label: string): Promise<T> {
  const cmd = psql(env, database, { tuples: true });
  const r = await host.run(cmd, { stdin: `${sql};\n`, quiet: true, label, timeoutSeconds: 1800 });
  const text = r.stdout.trim();
  try {
    return JSON.parse(text || 'null') as T;
  } catch {
    throw new OperationFailed(`${label}: psql printed something that is not JSON: ${text.slice(0, 200)}`);
  }
}

const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'`;
const NOT_EXTENSION_MEMBER = (oid: string) =>
  `NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = ${oid} AND d.deptype = 'e')`;

/** Tables at or below this many estimated rows are counted exactly. */
export const EXACT_COUNT_LIMIT = 200_000;

export const CATALOG_SQL = `
WITH tbl AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind = 'p' AS partitioned, c.reltuples::float8 AS reltuples
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND ${USER_SCHEMAS} AND ${NOT_EXTENSION_MEMBER('c.oid')}
),
cols AS (
  SELECT a.attrelid, json_agg(json_build_object(
      'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'notNull', a.attnotnull,
      'generated', a.attgenerated <> '', 'hasDefault', a.atthasdef, 'category', coalesce(bt.typcategory, t.typcategory)::text,
      'baseType', coalesce(bt.typname, t.typname)::text,
      'unique', EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique
          AND (a.attnum = ANY (i.indkey) OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
              AND d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum))),
      'distinct', (SELECT s.n_distinct FROM pg_stats s WHERE s.schemaname = tn.nspname AND s.tablename = tc.relname AND s.attname = a.attname ORDER BY s.inherited DESC LIMIT 1)
    ) ORDER BY a.attnum) AS columns
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
  JOIN pg_class tc ON tc.oid = a.attrelid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
  WHERE a.attrelid IN (SELECT oid FROM tbl) AND a.attnum > 0 AND NOT a.attisdropped
  GROUP BY a.attrelid
),
pk AS (
  SELECT con.conrelid, array_to_json(array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)) AS cols
  FROM pg_constraint con WHERE con.contype = 'p' AND con.conrelid IN (SELECT oid FROM tbl)
),
chk AS (
  SELECT con.conrelid, json_agg(json_build_object(
      'name', con.conname, 'expression', pg_get_expr(con.conbin, con.conrelid),
      'columns', array_to_json(array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i))
    ) ORDER BY con.conname) AS list
  FROM pg_constraint con WHERE con.contype = 'c' AND con.convalidated AND con.conrelid IN (SELECT oid FROM tbl)
  GROUP BY con.conrelid
),
fk AS (
  SELECT json_agg(json_build_object(
      'name', con.conname, 'table', ct.schema || '.' || ct.name, 'refTable', rt.schema || '.' || rt.name,
      'partition', CASE WHEN cc.relispartition THEN cn.nspname || '.' || cc.relname END,
      'columns', array_to_json(array(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.i)),
      'refColumns', array_to_json(array(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, i)
          JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.i)),
      'onDelete', CASE con.confdeltype WHEN 'r' THEN 'restrict' WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null' WHEN 'd' THEN 'set default' ELSE 'no action' END
    ) ORDER BY ct.schema, ct.name, con.conname) AS list
  -- Keys declared on a partition itself (not cloned from its parent's) belong to the partitioned
  -- table at the top of its tree: rows are read through that parent.
  FROM pg_constraint con
  JOIN pg_class cc ON cc.oid = con.conrelid JOIN pg_namespace cn ON cn.oid = cc.relnamespace
  JOIN pg_class rc ON rc.oid = con.confrelid
  JOIN tbl ct ON ct.oid = CASE WHEN cc.relispartition THEN pg_partition_root(cc.oid) ELSE cc.oid END
  JOIN tbl rt ON rt.oid = CASE WHEN rc.relispartition THEN pg_partition_root(rc.oid) ELSE rc.oid END
  WHERE con.contype = 'f' AND con.conparentid = 0
),
seq_cols AS (
  SELECT s.oid AS seq, d.refobjid AS rel, d.refobjsubid AS attnum
  FROM pg_class s JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  WHERE s.relkind = 'S'
  UNION
  SELECT s.oid, ad.adrelid, ad.adnum
  FROM pg_attrdef ad JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid AND d.refclassid = 'pg_class'::regclass
  JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
),
seqs AS (
  SELECT json_agg(json_build_object(
      'id', n.nspname || '.' || s.relname, 'schema', n.nspname, 'name', s.relname,
      'lastValue', (SELECT ps.last_value::text FROM pg_sequences ps WHERE ps.schemaname = n.nspname AND ps.sequencename = s.relname),
      'columns', coalesce((SELECT json_agg(json_build_object('table', t.schema || '.' || t.name, 'column', a.attname::text))
          FROM seq_cols sc JOIN tbl t ON t.oid = sc.rel JOIN pg_attribute a ON a.attrelid = sc.rel AND a.attnum = sc.attnum
          WHERE sc.seq = s.oid), '[]'::json)
    ) ORDER BY n.nspname, s.relname) AS list
  FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace
  WHERE s.relkind = 'S' AND ${USER_SCHEMAS} AND ${NOT_EXTENSION_MEMBER('s.oid')}
)
SELECT json_build_object(
  'tables', coalesce((SELECT json_agg(json_build_object(
      'id', t.schema || '.' || t.name, 'schema', t.schema, 'name', t.name, 'partitioned', t.partitioned,
      'columns', coalesce(c.columns, '[]'::json), 'primaryKey', p.cols, 'reltuples', t.reltuples,
      'checks', coalesce(k.list, '[]'::json)) ORDER BY t.schema, t.name)
    FROM tbl t LEFT JOIN cols c ON c.attrelid = t.oid LEFT JOIN pk p ON p.conrelid = t.oid LEFT JOIN chk k ON k.conrelid = t.oid), '[]'::json),
  'foreignKeys', coalesce((SELECT list FROM fk), '[]'::json),
  'sequences', coalesce((SELECT list FROM seqs), '[]'::json)
)`;

interface RawTable extends Omit<Table, 'rows' | 'rowsExact'> {
  reltuples: number;
}

/** Reads production's catalog, and row counts (exact where cheap). Changes nothing. */
export async function readCatalog(host: Host, env: Environment): Promise<Catalog> {
  const db = env.cfg.database.name;
  const raw = await queryJson<{ tables: RawTable[]; foreignKeys: RawForeignKey[]; sequences: SequenceInfo[] }>(
    host,
    env,
    db,
    CATALOG_SQL,
    'reading the production catalog',
  );
  // Never-analyzed tables say -1 (PostgreSQL 14+) or 0: count those, and the small ones, exactly.
  const toCount = raw.tables.filter((t) => t.reltuples <= EXACT_COUNT_LIMIT);
  const exact = new Map<string, number>();
  if (toCount.length) {
    const parts = toCount.map((t) => `${literal(t.id)}, (SELECT count(*) FROM ${t.partitioned ? '' : 'ONLY '}${qualified(t.schema, t.name)})`);
    // json_build_object takes at most 100 arguments: build one object per 50 tables.
    const chunks: string[] = [];
    for (let i = 0; i < parts.length; i += 50) chunks.push(`json_build_object(${parts.slice(i, i + 50).join(', ')})::jsonb`);
    const counts = await queryJson<Record<string, number>>(host, env, db, `SELECT ${chunks.join(' || ')}`, 'counting production rows');
    for (const [k, v] of Object.entries(counts)) exact.set(k, Number(v));
  }
  const tables: Table[] = raw.tables.map(({ reltuples, ...t }) => ({
    ...t,
    rows: exact.get(t.id) ?? Math.max(0, Math.round(reltuples)),
    rowsExact: exact.has(t.id),
  }));
  return { tables, foreignKeys: mergePartitionKeys(raw.foreignKeys), sequences: raw.sequences };
}

type RawForeignKey = ForeignKey & { partition?: string | null };

/**
 * Keys declared partition by partition become one key of their parent: the same columns to the
 * same referenced columns, whatever each partition's constraint is called.
 */
export function mergePartitionKeys(raw: RawForeignKey[]): ForeignKey[] {
  const out: ForeignKey[] = [];
  const merged = new Map<string, ForeignKey>();
  for (const { partition, ...fk } of raw) {
    if (!partition) {
      out.push(fk);
      continue;
    }
    const key = JSON.stringify([fk.table, fk.columns, fk.refTable, fk.refColumns]);
    const seen = merged.get(key);
    if (seen) {
      seen.partitions?.push(partition);
      seen.names?.push(fk.name);
      continue;
    }
    const one: ForeignKey = { ...fk, partitions: [partition], names: [fk.name] };
    merged.set(key, one);
    out.push(one);
  }
  return out;
}
