/**
 * What production's catalog says: tables (partitioned parents, not their partitions), columns,
 * primary keys, foreign keys (composite, self-referencing, cyclic, declared on the parent or on
 * each partition), CHECK constraints and sequences. Read with psql on
 * the host, which works whether the database runs in a container or not and needs no password.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import type { Host } from '../infra/host';
import type { Environment } from '../domain/environment';
import { parseHostJson } from '../infra/json';
import { sqlFile } from '../infra/sql';
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
  /**
   * Production's constraint is validated (not NOT VALID): restoring it in staging (post-data) checks
   * every copied row against it. Unset when not read from a catalog.
   */
  validated?: boolean;
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

/** One query whose single printed JSON value is checked against `schema`; `label` says what it reads. */
export interface JsonQuery<S extends z.ZodTypeAny> {
  database: string;
  sql: string;
  label: string;
  schema: S;
}

/**
 * Runs one query through psql on the host and parses the single JSON value it prints with its
 * schema: an answer of another shape is refused in one line naming what was read.
 */
export async function queryJson<S extends z.ZodTypeAny>(host: Host, env: Environment, q: JsonQuery<S>): Promise<z.output<S>> {
  const cmd = psql(env, q.database, { tuples: true });
  const r = await host.run(cmd, { stdin: `${q.sql};\n`, quiet: true, label: q.label, timeoutSeconds: 1800 });
  return parseHostJson(q.schema, r.stdout.trim() || 'null', `psql's answer when ${q.label}`);
}

const names = z.array(z.string());

const column = z.object({
  name: z.string(),
  type: z.string(),
  notNull: z.boolean(),
  generated: z.boolean(),
  hasDefault: z.boolean().optional(),
  category: z.string(),
  baseType: z.string(),
  unique: z.boolean().optional(),
  distinct: z.number().nullable().optional(),
});

const rawTable = z.object({
  id: z.string(),
  schema: z.string(),
  name: z.string(),
  partitioned: z.boolean(),
  columns: z.array(column),
  primaryKey: names.nullable(),
  reltuples: z.number(),
  /** The exact row count, for tables of at most EXACT_COUNT_LIMIT estimated rows. */
  exact: z.number().nullable().optional(),
  checks: z.array(z.object({ name: z.string(), expression: z.string(), columns: names })).optional(),
});

const rawForeignKey = z.object({
  name: z.string(),
  table: z.string(),
  columns: names,
  refTable: z.string(),
  refColumns: names,
  onDelete: z.enum(['no action', 'restrict', 'cascade', 'set null', 'set default']),
  partition: z.string().nullable().optional(),
  validated: z.boolean().optional(),
});

const sequence = z.object({
  id: z.string(),
  schema: z.string(),
  name: z.string(),
  columns: z.array(z.object({ table: z.string(), column: z.string() })),
  lastValue: z.string().nullable(),
});

/** What catalog.sql prints. */
export const rawCatalog = z.object({ tables: z.array(rawTable), foreignKeys: z.array(rawForeignKey), sequences: z.array(sequence) });

/** Tables at or below this many estimated rows are counted exactly (the limit is written in catalog.sql). */
export const EXACT_COUNT_LIMIT = 200_000;

/** Production's catalog as one JSON object (see catalog.sql). */
export const CATALOG_SQL = sqlFile(fs.readFileSync(__dirname + '/catalog.sql', 'utf8'));

/** Reads production's catalog, and row counts (exact where cheap), in one query. Changes nothing. */
export async function readCatalog(host: Host, env: Environment): Promise<Catalog> {
  const db = env.cfg.database.name;
  const raw = await queryJson(host, env, { database: db, sql: CATALOG_SQL, label: 'reading the production catalog', schema: rawCatalog });
  // Never-analyzed tables say -1 (PostgreSQL 14+) or 0: those, and the small ones, were counted exactly.
  const tables: Table[] = raw.tables.map(({ reltuples, exact, ...t }) => ({
    ...t,
    rows: exact ?? Math.max(0, Math.round(reltuples)),
    rowsExact: exact !== null && exact !== undefined,
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
