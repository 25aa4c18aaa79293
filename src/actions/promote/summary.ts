/**
 * promote's job summary, for a person at 3 a.m.: what happened, what prod and dev run now, what
 * happened to the data, and what to do next. Read from the outcome alone.
 */
import { short } from '../../infra/sha';
import type { Environment } from '../../domain/environment';
import type { RehearsalResult } from '../../domain/rehearsal';
import type { ShipPlan } from '../../domain/ship';
import { shortId } from '../../domain/state';
import { Summary } from '../../infra/summary';
import { servicesTable } from '../common';
import type { GatedRelease } from './gated';
import { failureOf, type DataReport, type MigrationReport, type Outcome, type OutcomeName, type Stage } from './outcome';

export function promoteSummary(prod: Environment, r: Outcome, gated: GatedRelease): Summary {
  const s = new Summary().heading('Flip the switch: dev → prod');
  s.text(headline(r, gated));
  s.list(whatHappened(r));
  if (r.ship) imagesSection(s, r, r.ship);
  if (r.digests) digestsSection(s, r, r.digests);
  if (r.rehearsal || r.migration) {
    s.heading('Migration', 3);
    s.list([...(r.rehearsal ? rehearsalLines(r.rehearsal) : []), ...(r.migration ? migrationLines(r, r.migration) : [])]);
  }
  s.heading(`${prod.name}`, 3);
  servicesTable(s, r.containers);
  const failure = failureOf(r);
  if (failure?.engine) {
    s.heading("What the engine did (prod's stack)", 3);
    s.list(failure.engine);
  }
  if (failure?.logs) s.detailsCode(`last log lines of ${failure.service}`, failure.logs);
  if (gated.devRelease) s.text(`dev still runs \`${gated.devRelease.release}\`.`);
  return s;
}

/** The first line: the outcome, and what prod runs now. */
function headline(r: Outcome, gated: GatedRelease): string {
  const shown = short(r.sha);
  switch (r.outcome) {
    case 'promoted':
      return `✅ **prod now runs \`${shown}\`** (release \`${r.releaseId}\`), the commit that passed on dev${gated.devRelease ? ` (release \`${gated.devRelease.release}\`)` : ''}.`;
    case 'unchanged':
      return `➖ **prod already runs \`${shown}\`** (release \`${r.releaseId}\`). Nothing was changed.`;
    case 'refused':
      return `🛑 **Refused before anything on prod changed.** prod still runs \`${r.previous?.release ?? '?'}\`: same containers, same database.`;
    case 'rolled-back':
      return `↩️ **The promotion failed and prod was rolled back.** prod runs its previous release \`${r.releaseId}\` (\`${r.previous ? short(r.previous.sha) : '?'}\`) again, healthy.`;
    case 'rollback-failed':
      return `🚨 **The promotion failed and the rollback did not complete. prod needs a person now.**`;
  }
}

/** Where it stopped, what the data lost, the backup, the freeze, and what to do next. */
function whatHappened(r: Outcome): string[] {
  const items: string[] = [];
  const failure = failureOf(r);
  if (failure) items.push(`${r.outcome === 'refused' ? 'stopped at' : 'failed during'} **${failure.stage}**: ${failure.message}`);
  // What was lost: "nothing" unless the schema moved.
  if (r.outcome === 'rolled-back' || r.outcome === 'rollback-failed') items.push(dataLine(r.data, r.backup?.id, r.backup?.database));
  if (r.outcome === 'refused') items.push('**data: nothing lost**, nothing restarted.');
  if (r.outcome === 'rollback-failed') items.push(`rollback error: ${r.rollbackError}`);
  if (r.backup) items.push(`backup before the change: \`${r.backup.id}\` (${r.backup.files['db.dump']?.bytes ?? 0} bytes, ${r.backup.verification.detail})`);
  if (r.base) items.push(`base backup before the change (backup.wal): \`${r.base.dir}\``);
  if (r.frozen)
    items.push(`write freeze (promote.write-freeze): ${r.frozen.join(', ')} ${r.frozen.length > 1 ? 'were' : 'was'} stopped from the backup to the end`);
  if (r.previous && r.outcome === 'promoted') items.push(`previous release (rollback target): \`${r.previous.release}\``);
  for (const i of r.interrupted) items.push(`⚠️ an earlier operation on prod was interrupted: ${i}`);
  if (r.outcome === 'rollback-failed')
    items.push(`Next: look at the containers below; run the rollback workflow with a release id, or restore backup \`${r.backup?.id}\` by hand.`);
  if (r.outcome === 'rolled-back' || r.outcome === 'refused') items.push(`Next: fix the cause on dev, gate it, and flip the switch again.`);
  return items;
}

/** What a failure past the point of no return did to the data. */
function dataLine(data: DataReport, backupId: string | undefined, database: string | undefined): string {
  if (!data.schemaMoved) return `**data: nothing lost.** The schema is unchanged (the migration rolled back by itself, or never ran): no restore.`;
  const tables = data.lostTables?.length
    ? ` (${data.lostTables
        .slice(0, 10)
        .map((t) => `${t.table}: ${t.rows}`)
        .join(', ')})`
    : '';
  return (
    `**data:** the schema had moved, so the database was ${data.restored ? `restored from backup \`${backupId}\`: ${data.restored}` : 'to be restored'}. ` +
    `${data.rowsLost !== undefined ? `**${data.rowsLost} row write(s)** made since the backup ${data.restored ? 'are' : 'would be'} lost` : 'The rows written since the backup could not be counted'}` +
    `${tables}. ` +
    `${data.duringMigration ? `${data.duringMigration} more were made while the migration ran: its own, left out of that count, and any the app made meanwhile, which are lost too. ` : ''}` +
    `${data.aside ? `They are kept in database \`${data.aside}\` until the next restore: copy them back with \`pg_dump -a -t <table> ${data.aside}\` into \`${database}\`.` : ''}`
  );
}

/** Which image each service got, and why. */
function imagesSection(s: Summary, r: Outcome, ship: ShipPlan): void {
  s.heading('Images', 3);
  if (r.outcome === 'refused') s.text(`None of these reached prod's containers: prod still runs \`${r.previous?.release ?? '?'}\`.`);
  s.table(
    ['service', imagesColumn(r.outcome), 'why'],
    [
      ...ship.ship.map((x) => [x.service, x.id.includes('@') ? `gated \`${x.id}\`` : `gated image \`${shortId(x.id)}\``, 'what the gate tested on dev']),
      ...ship.rebuild.map((x) => [x.service, 'rebuilt from the same commit', x.reasons.join('; ')]),
      ...ship.asConfigured.map((x) => [x.service, x.builds ? 'built for prod' : 'as prod configures it', x.reason]),
    ],
  );
}

/** On a swarm: the digest each service of prod's stack was given. */
function digestsSection(s: Summary, r: Outcome, digests: Record<string, string>): void {
  s.heading('Digests (swarm)', 3);
  const rebuilt = new Set(r.ship?.rebuild.map((x) => x.service));
  s.list(
    Object.entries(digests)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([service, ref]) => `\`${service}\`: \`${ref}\` (${rebuilt.has(service) ? 'built for prod and pushed' : "dev's, as gated"})`),
  );
}

/** What the images table says prod did with each image: only a promotion ships them for good. */
function imagesColumn(outcome: OutcomeName): string {
  if (outcome === 'refused') return 'prod would have got (not shipped)';
  if (outcome === 'rolled-back' || outcome === 'rollback-failed') return 'prod got, until the rollback';
  return 'prod gets';
}

/** The rehearsal on a full copy of prod: how long, which locks, which tables rewritten. */
function rehearsalLines(h: RehearsalResult): string[] {
  const m: string[] = [];
  m.push(
    h.error
      ? `rehearsal on a full copy of prod: **failed** after ${ms(h.durationMs)}: \`${h.error}\``
      : `rehearsal on a full copy of prod (restored in ${ms(h.restoreMs)}): ${h.revisionBefore || 'none'} → ${h.revisionAfter || 'none'} in ${ms(h.durationMs)}`,
  );
  m.push(
    h.locks.length
      ? `ACCESS EXCLUSIVE locks: ${h.locks.map((l) => `\`${l.table}\` ${ms(l.ms)}`).join(', ')}`
      : 'ACCESS EXCLUSIVE locks: none seen (sampled every 100 ms)',
  );
  if (!h.error)
    m.push(h.rewritten.length ? `tables rewritten: ${h.rewritten.map((t) => `\`${t.table}\` (${t.rows} rows)`).join(', ')}` : 'tables rewritten: none');
  if (!h.error) m.push(`rows updated: ${h.updatedRows}`);
  return m;
}

/** prod's own migration: where it ran, and whether it finished. */
function migrationLines(r: Outcome, g: MigrationReport): string[] {
  const m: string[] = [];
  if (g.inPlace) m.push(`⚠️ ${g.inPlace}`);
  if (!g.pending && g.inPlace && !g.planRead) m.push(`the migration was to run in the new api container after the swap; it never ran`);
  else if (!g.pending) m.push(`no migration pending: prod's database is at ${g.from || 'none'}`);
  else if (r.outcome !== 'promoted') m.push(unfinishedMigration(g, failureOf(r)?.stage));
  else if (g.inPlace) m.push(`prod migrated ${g.from || 'none'} → ${g.to} in ${ms(g.ms)} in the new api container, after the swap`);
  else
    m.push(
      `prod migrated ${g.from || 'none'} → ${g.to} in ${ms(g.ms)} before the swap, old containers serving (${g.attempts} attempt${g.attempts > 1 ? 's' : ''})`,
    );
  if (g.entrypoint) m.push(`⚠️ the schema changed again when the new containers started (now ${g.to}): the app migrates on start`);
  return m;
}

/** A pending migration of a promotion that did not end promoted: whether it failed itself or ran before the failure. */
function unfinishedMigration(g: MigrationReport, stage: Stage | undefined): string {
  const where = g.inPlace ? ' in the new api container, after the swap' : ' before the swap';
  if (stage === 'migration') return `prod's migration ${g.from || 'none'} → ${g.to || '?'} **failed**${where}`;
  if (stage === 'swap' || stage === 'health') return `prod migrated ${g.from || 'none'} → ${g.to || '?'}${where}, then the ${stage} failed`;
  return `the migration ${g.from || 'none'} → ${g.to || '?'} did not run`;
}

function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${n} ms`;
}
