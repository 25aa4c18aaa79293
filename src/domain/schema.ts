/**
 * The database's schema as promote judges it: alembic's revision and a fingerprint of the whole
 * schema (pg_dump --schema-only, without its comments and per-run keys), read before anything
 * changes and again after a failure. When both are unchanged the failed migration rolled back by
 * itself (PostgreSQL's DDL is transactional): no restore, no write lost. Also the write counters of
 * the statistics views, so a restore can say how many rows it is about to lose.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import type { Host } from '../infra/host';
import { pgDump, psql } from '../infra/postgres';
import { sqlFile } from '../infra/sql';
import type { Environment } from './environment';

export interface SchemaState {
  /** alembic's revision(s), comma-separated; '' when there is no alembic_version table. */
  revision: string;
  /** sha256 of the schema-only dump, comments and `\restrict` keys left out. */
  fingerprint: string;
}

/** alembic's revision(s), comma-separated, '' without an alembic_version table: one statement that never fails. */
export const REVISION_SQL = sqlFile(fs.readFileSync(__dirname + '/alembic-revision.sql', 'utf8'));

/** The schema-only dump as a fingerprint: lines that differ between two dumps of one schema are dropped. */
export function fingerprintOf(dump: string): string {
  const kept = dump
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('--') && !/^\\(un)?restrict\b/.test(l) && !/^SET /.test(l) && !/^SELECT pg_catalog\.set_config/.test(l));
  return createHash('sha256').update(kept.join('\n')).digest('hex');
}

export async function schemaState(host: Host, env: Environment, database = env.cfg.database.name): Promise<SchemaState> {
  const rev = await host.run(psql(env, database, { tuples: true, run: [REVISION_SQL] }), {
    quiet: true,
    label: `${env.name}: alembic revision`,
    timeoutSeconds: 120,
  });
  const dump = await host.run(pgDump(env, database, { schemaOnly: true, noOwnership: true }), {
    quiet: true,
    label: `${env.name}: schema of ${database}`,
    timeoutSeconds: 600,
  });
  return { revision: rev.stdout.trim(), fingerprint: fingerprintOf(dump.stdout) };
}

/** Rows inserted, updated and deleted per table since the statistics were last reset (cumulative). */
export async function writeCounters(host: Host, env: Environment, database = env.cfg.database.name): Promise<Record<string, number>> {
  const r = await host.run(
    psql(env, database, {
      tuples: true,
      run: [`SELECT schemaname || '.' || relname || '|' || (n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables`],
    }),
    { quiet: true, label: `${env.name}: write counters`, timeoutSeconds: 120 },
  );
  const out: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const i = line.lastIndexOf('|');
    if (i > 0) out[line.slice(0, i)] = Number(line.slice(i + 1)) || 0;
  }
  return out;
}

/**
 * Rows written between two readings of the counters, in the tables that existed at the first (the
 * ones a restore of a backup taken then puts back). A counter that went down (statistics reset)
 * counts from zero.
 */
export function rowsWrittenBetween(
  before: Record<string, number>,
  after: Record<string, number>,
): { total: number; tables: Array<{ table: string; rows: number }> } {
  const tables: Array<{ table: string; rows: number }> = [];
  for (const [table, was] of Object.entries(before)) {
    const now = after[table];
    if (now === undefined) continue;
    const rows = now >= was ? now - was : now;
    if (rows > 0) tables.push({ table, rows });
  }
  tables.sort((a, b) => b.rows - a.rows || a.table.localeCompare(b.table));
  return { total: tables.reduce((n, t) => n + t.rows, 0), tables };
}

/** Write counters read just before the migration began and just after it ended. */
export interface MigrationWindow {
  before: Record<string, number>;
  after: Record<string, number>;
}

/**
 * The row writes a restore of the backup loses: every write since the backup, less the ones made
 * while the migration ran. Those are the migration's own (its backfills and updates, which the
 * restore is meant to undo) and can be told apart from the app's only by when they happened: the
 * app's writes in that window are counted apart, in `duringMigration`, never in `total`.
 */
export function rowsLostToRestore(
  backup: Record<string, number>,
  now: Record<string, number>,
  migration?: MigrationWindow,
): { total: number; tables: Array<{ table: string; rows: number }>; duringMigration: number } {
  const all = rowsWrittenBetween(backup, now);
  if (!migration) return { ...all, duringMigration: 0 };
  const during = new Map(rowsWrittenBetween(migration.before, migration.after).tables.map((t) => [t.table, t.rows]));
  const tables = all.tables
    .map((t) => ({ table: t.table, rows: Math.max(0, t.rows - (during.get(t.table) ?? 0)) }))
    .filter((t) => t.rows > 0)
    .sort((a, b) => b.rows - a.rows || a.table.localeCompare(b.table));
  const total = tables.reduce((n, t) => n + t.rows, 0);
  return { total, tables, duringMigration: all.total - total };
}
