/** The resample's job summary: what was copied, how every reference was resolved, what dev runs now. */
import { Summary } from '../infra/summary';
import type { ResampleReport } from './engine';
import { representativenessSection } from './representativeness';

function pct(copied: number, prod: number): string {
  return prod > 0 ? `${((copied / prod) * 100).toFixed(1)}%` : '';
}

export function resampleSummary(r: ResampleReport, outcome: { ok: boolean; error?: string }): Summary {
  const s = new Summary().heading(r.dryRun ? 'Resample plan (dry run: nothing changed)' : 'Resample of production into dev');
  const state = r.dryRun
    ? 'Dev is unchanged (dry run).'
    : r.swapped
      ? `Dev now runs on a fresh ${(r.fraction * 100).toFixed(1)}% sample (seed "${r.seed}"), ${r.rowsCopied} rows.`
      : `Dev is unchanged: the run failed before or during the swap and dev's previous database is in place. ${outcome.error ?? ''}`;
  s.text(`**${outcome.ok ? '✅' : '❌'} ${state}**`);
  s.list([
    `root: ${r.root}, fraction ${r.fraction}, seed "${r.seed}"`,
    `leak scan: ${r.dryRun ? 'not run' : r.leaks.length ? `${r.leaks.length} hit(s), run stopped` : `${r.probes} sensitive column(s) probed, nothing found`}`,
    `bytes over SSH: ${r.sshBytes.sent + r.sshBytes.received} (table data moves on the host only)`,
    `duration: ${r.seconds.toFixed(1)} s`,
    ...r.warnings.map((w) => `⚠️ ${w}`),
  ]);
  const cleared = r.tables.flatMap((t) =>
    t.ownersCleared.filter((o) => o.rows > 0).map((o) => `${t.table}: ${o.rows} row(s) came along through another key with their owner ${o.key} cleared`),
  );
  if (cleared.length)
    s.text(
      `Rows whose owner is outside the sample (set \`owns: false\` on the key that brought them under sample.foreign-keys if they should not come): ${cleared.join('; ')}.`,
    );
  const structural = r.tables.filter((t) => t.structure && (r.dryRun || t.structure.rows > 0));
  if (structural.length)
    s.text(
      `Rows brought along for structure (policy structure: present for the rows that name them, their owners outside the sample): ${structural
        .map((t) =>
          r.dryRun
            ? `${t.table}: counted by a real run`
            : `${t.table}: ${t.structure?.rows} row(s)${t.structure?.placeholder.length ? `, ${t.structure.placeholder.map((p) => `${p.rows} pointing at the placeholder (${p.key})`).join(', ')}` : ''}`,
        )
        .join('; ')}.`,
    );
  const checked = r.tables.flatMap((t) =>
    t.checkDrops.filter((d) => d.rows).map((d) => `${t.table}: ${d.rows} row(s) dropped, their nulled reference would break CHECK ${d.check}`),
  );
  if (checked.length) s.text(`Rows left out because nulling a reference outside the sample would break a CHECK constraint: ${checked.join('; ')}.`);
  if (r.leaks.length)
    s.table(
      ['production column', 'found in', 'rows', 'what to change'],
      r.leaks.map((l) => [l.source, `${l.table}.${l.column}`, String(l.rows), l.fix ?? '']),
    );
  if (r.afterLoad.length)
    s.table(
      ['after-load statement (sample.after-load)', 'rows', 'ms'],
      r.afterLoad.map((a) => [a.sql, String(a.rows), String(a.ms)]),
    );
  s.heading('Tables', 3);
  s.table(
    ['table', 'how', 'rows in prod', r.dryRun ? 'estimated rows' : 'rows copied', 'fraction', 'owner cleared', 'rules'],
    r.tables.map((t) => [
      t.table,
      t.note,
      `${t.prodRowsExact ? '' : '≈'}${t.prodRows}`,
      `${r.dryRun ? '≈' : ''}${t.copied}`,
      pct(t.copied, t.prodRows),
      t.ownersCleared.map((o) => `${o.rows} (${o.key})`).join('; '),
      t.rules.join('; '),
    ]),
  );
  if (r.representativeness) representativenessSection(s, r.representativeness);
  referencesSection(s, r);
  s.heading('Foreign keys', 3);
  s.table(
    ['table', 'columns', 'references', 'policy', r.dryRun ? '' : 'orphans'],
    r.foreignKeys.map((f) => [
      f.partitions ? `${f.table} (declared on ${f.partitions.length} partition${f.partitions.length > 1 ? 's' : ''})` : f.table,
      f.columns.join(', '),
      f.refTable,
      `${f.policy}${f.source === 'config' ? ' (config)' : ''}`,
      r.dryRun ? '' : String(f.orphans),
    ]),
  );
  if (!outcome.ok)
    s.text('Next: read the error above; fix sample rules or the failing step, then run resample again. Dev keeps working on its previous data meanwhile.');
  return s;
}

/** Every sample.references entry with its orphans in dev, apart from the foreign keys (whose table a large schema cuts). */
function referencesSection(s: Summary, r: ResampleReport): void {
  const refs = r.foreignKeys.filter((f) => f.virtual);
  if (!refs.length) return;
  s.heading('References without a foreign key (sample.references)', 3);
  s.table(
    ['entry', 'child', 'keys', 'parent', 'policy', 'orphans in dev'],
    refs.map((f) => [f.name, f.table, f.columns.join(', '), f.refTable, f.policy, r.dryRun ? 'not checked (dry run)' : String(f.orphans)]),
  );
}

/** The plan as plain lines for the log (dry run). */
export function planLines(r: ResampleReport): string[] {
  const lines = [`Sample of ${r.root}: fraction ${r.fraction}, seed "${r.seed}". Tables in copy order:`];
  for (const t of r.tables)
    lines.push(
      `  ${t.table} [${t.mode}] prod ${t.prodRowsExact ? '' : '≈'}${t.prodRows}, ${r.dryRun ? 'estimated' : 'copied'} ${t.copied}: ${t.note}${t.rules.length ? ` (rules: ${t.rules.join('; ')})` : ''}` +
        (t.structure && !r.dryRun ? `; ${t.structure.rows} for structure` : ''),
    );
  lines.push('Foreign keys:');
  for (const f of r.foreignKeys) lines.push(`  ${f.table}(${f.columns.join(', ')}) → ${f.refTable}: ${f.policy}${f.source === 'config' ? ' (config)' : ''}`);
  return lines;
}
