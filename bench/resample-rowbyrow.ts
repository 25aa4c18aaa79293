/**
 * The seed design's approach, as a baseline: select the sampled rows in production, then insert
 * them into dev one INSERT per row (in one transaction, as the design's script did). The same
 * membership and rules as the resample are used, so only the way rows move differs.
 */
import { Client } from 'pg';
import type { SamplePlan } from '../src/resample/plan';
import { copiedTables, membershipProgram, selectFor, tempTables } from '../src/resample/plan';
import { ident, qualified } from '../src/infra/sql';

export interface Endpoint {
  port: number;
  user: string;
  database: string;
}

/** Keeps every value as text, so it goes back in exactly as it came out. */
const asText = { getTypeParser: () => (v: string) => v };

export async function rowByRow(plan: SamplePlan, prod: Endpoint, dev: Endpoint): Promise<number> {
  const src = new Client({ host: '127.0.0.1', ...prod, types: asText });
  const dst = new Client({ host: '127.0.0.1', ...dev, types: asText });
  await src.connect();
  await dst.connect();
  let rows = 0;
  try {
    for (const t of tempTables(plan)) await src.query(t);
    await src.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await src.query(membershipProgram(plan));
    await dst.query('BEGIN');
    for (const tp of copiedTables(plan)) {
      const { rows: data } = await src.query({ text: selectFor(plan, tp), rowMode: 'array' });
      const insert = `INSERT INTO ${qualified(tp.table.schema, tp.table.name)} (${tp.columns.map((c) => ident(c.name)).join(', ')}) OVERRIDING SYSTEM VALUE VALUES (${tp.columns.map((_, i) => `$${i + 1}`).join(', ')})`;
      for (const row of data as unknown[][]) {
        await dst.query(insert, row);
        rows++;
      }
    }
    await dst.query('COMMIT');
    await src.query('COMMIT');
  } finally {
    await src.end();
    await dst.end();
  }
  return rows;
}
