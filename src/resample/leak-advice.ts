/**
 * What a leak-scan hit asks of a person, in one line: the rule that masks the column the value was
 * found in, or the marker that declares that column's values public (catalog data that merely
 * shares a value with a personal column, as an actor's surname may be a customer's).
 */
import { describeRule } from './anonymize';
import type { LeakHit } from './engine';
import { suggestRule } from './init';
import type { SamplePlan } from './plan';

/** How the config names a table: its bare name in the public schema, else schema.name. */
function configName(id: string): string {
  return id.startsWith('public.') ? id.slice('public.'.length) : id;
}

export function leakFix(plan: SamplePlan, hit: Pick<LeakHit, 'table' | 'column'>): string {
  const tp = plan.tables.find((t) => t.table.id === hit.table);
  const column = tp?.table.columns.find((c) => c.name === hit.column);
  const ref = `${configName(hit.table)}.${hit.column}`;
  const marker = `or, if its values are public (catalog data), declare it: sample.public-columns: [${ref}] (or public-tables: [${configName(hit.table)}])`;
  if (!tp || !column) return `declare ${ref} public or mask it under sample.columns`;
  const current = tp.columns.find((c) => c.name === hit.column)?.rule;
  if (current?.startsWith('sql:')) return `its rule lets production's value through: change sample.columns ${ref} (${current}), ${marker}`;
  const isKey = tp.table.primaryKey?.includes(hit.column) || plan.fks.some((p) => p.fk.table === hit.table && p.fk.columns.includes(hit.column));
  if (isKey)
    return `${ref} is a key and can only be kept: declare it public if its values are catalog data (sample.public-columns: [${ref}]), or leave the table out`;
  const suggested = describeRule(suggestRule(column, tp.table, false).rule);
  return `if it is personal, mask it: sample.columns: { ${ref}: ${suggested} }, ${marker}`;
}

/** One hit, with what to change. */
export function leakLine(plan: SamplePlan, hit: LeakHit): string {
  return `${hit.source} found in ${hit.table}.${hit.column} (${hit.rows} row${hit.rows === 1 ? '' : 's'}): ${leakFix(plan, hit)}`;
}
