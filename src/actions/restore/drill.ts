/**
 * restore with drill: true: the weekly restore drill (src/domain/drill.ts). Recovers prod's
 * database to `latest` in a scratch server, checks it, measures RTO and RPO, removes it, records a
 * `drill` host-log line and writes a summary for the person reading it at 3 a.m. Prod is never
 * touched: no lock, no swap, no service stopped.
 */
import type { RestoreInputs, RestoreOutputs } from '../../../action-types';
import type { Config } from '../../domain/config';
import { DrillFailed, runDrill, type DrillReport } from '../../domain/drill';
import type { OffsiteSource } from '../../domain/offsite-restore';
import { Environment } from '../../domain/environment';
import { HostLog } from '../../domain/host-log';
import { newOperationId } from '../../domain/operation';
import { OperationFailed, errorMessage } from '../../infra/errors';
import type { Host } from '../../infra/host';
import type { ActionIO, RunInfo } from '../../infra/actions-io';
import { ignored, type Logger } from '../../infra/logger';
import { Summary } from '../../infra/summary';

interface DrillContext {
  host: Host;
  config: Config;
  io: ActionIO<RestoreInputs, RestoreOutputs>;
  log: Logger;
  run: RunInfo;
  /** source offsite: recover from the off-host copies alone. */
  offsite?: OffsiteSource;
}

export async function executeDrill({ host, config, io, log, run, offsite }: DrillContext): Promise<void> {
  const prod = new Environment('prod', config);
  const hostLog = new HostLog(host, config['state-dir'], 'prod');
  const base = { action: 'restore', op: newOperationId(), run: run.url, actor: run.actor };
  let report: DrillReport;
  try {
    report = await runDrill({ host, config, env: prod, log }, config.backup.drill, undefined, offsite);
  } catch (e) {
    const backup = e instanceof DrillFailed ? e.backup?.id : undefined;
    await hostLog.append({ ...base, event: 'drill', status: 'failed', backup, error: errorMessage(e) }).catch(ignored(log, 'recording the drill'));
    await io.summary(failedSummary(errorMessage(e)).toMarkdown());
    throw e instanceof DrillFailed ? new OperationFailed(`restore drill: ${e.message}`) : e;
  }
  const r = report;
  const passed = r.problems.length === 0;
  await hostLog
    .append({
      ...base,
      event: 'drill',
      status: passed ? 'passed' : 'failed',
      rtoSeconds: r.rtoSeconds,
      rpoSeconds: r.rpoSeconds,
      recoveryPoint: r.recovery.recoveryPoint.toISOString(),
      base: r.recovery.base.dir,
      backup: r.backup.id,
      problems: r.problems,
    })
    .catch(ignored(log, 'recording the drill'));
  io.output('recovery-point', r.recovery.recoveryPoint.toISOString());
  io.output('base-backup', r.recovery.base.dir);
  io.output('rto-seconds', r.rtoSeconds);
  io.output('rpo-seconds', r.rpoSeconds);
  await io.summary(reportSummary(config, r).toMarkdown());
  if (!passed) throw new OperationFailed(`restore drill failed: ${r.problems[0]}${r.problems.length > 1 ? ` (and ${r.problems.length - 1} more)` : ''}`);
}

function reportSummary(config: Config, r: DrillReport): Summary {
  const d = config.backup.drill;
  const passed = r.problems.length === 0;
  const s = new Summary().heading('Restore drill of prod');
  s.text(
    passed
      ? `✅ **prod's database can be recovered**: RTO **${r.rtoSeconds} s** (limit ${d['max-rto-seconds']}), RPO **${r.rpoSeconds} s** (limit ${d['max-rpo-seconds']}).`
      : `❌ **The restore drill failed**: ${r.problems[0]}`,
  );
  s.list([
    ...r.problems.slice(1).map((p) => `also: ${p}`),
    `prod was not touched: the recovery ran in a scratch server on copies of the base backup and the WAL from ${r.recovery.from ?? 'the VPS'}, and it is removed.`,
    `RTO ${r.rtoSeconds} s: from the drill's start to the recovered copy answering its checks (unpacking, replay, counts, smoke queries).`,
    `RPO ${r.rpoSeconds} s: the last transaction recovered committed at ${r.recovery.recoveryPoint.toISOString()}, the drill began at ${r.started.toISOString()}${r.recovery.pointIsBackupStart ? ' (no transaction after the base backup: the point is its start)' : ''}.`,
    `base backup \`${r.recovery.base.dir}\` (started ${r.recovery.base.startTime.toISOString()}); WAL ${r.segments.first} to ${r.segments.last} (${r.recovery.walFiles} file(s)); replay ended in ${r.segments.replayedTo}.`,
    `alembic revision of the recovered copy: \`${r.recovery.alembicRevision || 'none'}\`.`,
    passed
      ? 'Next: nothing. A restore of prod (restore action, target latest or a time) would take about the RTO above plus the swap.'
      : 'Next: the archive cannot be trusted to its end. Take a base backup now (backup action with base-backup), check monitor for the WAL receiver, and run the drill again; until it passes, rely on the newest verified dump.',
  ]);
  s.table(
    ['table', `rows in ${r.backup.id}`, 'rows recovered', ''],
    r.counts.map((k) => [
      k.table,
      String(k.dumped),
      k.recovered === undefined ? 'missing' : String(k.recovered),
      k.recovered !== undefined && k.recovered >= k.dumped ? '✅' : '❌',
    ]),
  );
  if (r.smoke.length)
    s.table(
      ['smoke query', 'result', ''],
      r.smoke.map((q) => [`\`${q.sql}\``, q.detail, q.ok ? '✅' : '❌']),
    );
  return s;
}

function failedSummary(error: string): Summary {
  return new Summary()
    .heading('Restore drill of prod')
    .text(`❌ **The restore drill failed before its checks**: ${error}`)
    .list([
      'prod was not touched; the scratch server and directory are removed.',
      "Next: if the recovery failed, the scratch server's last log lines are in the error: a damaged base backup or WAL segment. Take a base backup now and run the drill again; check monitor for the WAL receiver.",
    ]);
}
