/**
 * The resample benches' production: the Makapix-shaped fixture at a chosen scale, generated into a
 * new database on the bench's own server.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import type { TestPostgres } from '../test/harness/postgres';
import { SCHEMA_SQL, dataSql } from '../test/fixtures/sample-schema/generate';

/** Creates `db` with `users` users' rows; returns the row count. */
export function generateMakapix(prod: TestPostgres, db: string, users: number): number {
  const t = process.hrtime.bigint();
  prod.psql(`CREATE DATABASE ${db}`);
  // The generator's keys are consistent by construction (post-data's foreign keys validate them
  // where a bench restores it): its rows go in without a foreign-key trigger per row, since at
  // 500,000 users (29 million rows) those triggers alone take many minutes.
  execFileSync(
    path.join(prod.bin, 'psql'),
    ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(prod.port), '-U', prod.user, '-d', db, '-f', '-'],
    {
      input: `${SCHEMA_SQL}\nSET session_replication_role = replica;\n${dataSql(users)}`,
      stdio: ['pipe', 'ignore', 'inherit'],
      timeout: 3 * 3600_000,
    },
  );
  const rows = Number(prod.psql('SELECT sum(n_live_tup) FROM pg_stat_user_tables', db).trim());
  const size = prod.psql(`SELECT pg_size_pretty(pg_database_size('${db}'))`).trim();
  console.log(`generated ${db}: ${users} users, ${rows} rows, ${size} in ${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(1)} s`);
  return rows;
}
