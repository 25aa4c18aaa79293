/**
 * preflight: proves prod and dev are kept apart before anything changes the host. Reads both env
 * files (values are hashed at once and never logged) and each environment's merged compose
 * configuration, checks the isolation invariants, and optionally asks both sites over HTTP from the
 * host. Changes nothing on the host and takes no lock. Errors fail the step; warnings do not.
 *
 * deploy and promote run the same checks as a gate (isolationGate in src/safety/preflight.ts).
 */
import type { PreflightInputs, PreflightOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import type { Config } from '../../domain/config';
import { OperationFailed } from '../../infra/errors';
import { Summary } from '../../infra/summary';
import { findingsTable } from '../../safety/findings';
import { runPreflight, type PreflightReport } from '../../safety/preflight';
import { formatBytes, formatCpus } from '../../infra/units';

export { runPreflight, unsetVariables, type PreflightReport } from '../../safety/preflight';

export function preflightSummary(report: PreflightReport, config: Config): Summary {
  const s = new Summary().heading('twinstack preflight: are prod and dev kept apart?');
  if (report.errors > 0) {
    s.text(
      `❌ **${report.errors} error${report.errors === 1 ? '' : 's'}**${report.warnings ? `, ${report.warnings} warning${report.warnings === 1 ? '' : 's'}` : ''}: nothing was changed on the host. Fix the errors below, then run again.`,
    );
  } else if (report.warnings > 0) {
    s.text(`✅ No errors; ⚠️ ${report.warnings} warning${report.warnings === 1 ? '' : 's'} worth a look. Nothing was changed on the host.`);
  } else {
    s.text('✅ Every isolation check passed. Nothing was changed on the host.');
  }
  if (report.findings.length) s.text(findingsTable(report.findings));
  const checked: string[] = [];
  checked.push(
    report.ran.envFiles
      ? `env files: ${config.preflight['must-differ'].length} keys or groups that must differ, ${config.preflight['environment-key']}, OAuth redirect URIs (values compared by hash, never shown)`
      : 'env files: not compared (see the errors)',
  );
  checked.push(
    report.ran.compose
      ? 'compose: container names, volume names, host ports, domains, vault mounts, dev limits, noindex and basic auth labels'
      : 'compose: not compared (see the errors)',
  );
  const rolling = config.promote.rolling;
  if (rolling.length && report.ran.compose)
    checked.push(`rolling services on prod (${rolling.join(', ')}): no container_name, no published host ports, no host network, a healthcheck`);
  if (report.devLimits) {
    const p = config.preflight;
    checked.push(
      `dev's limits: ${formatCpus(report.devLimits.cpus)} and ${formatBytes(report.devLimits.memoryBytes)} over ${report.devLimits.services} services, share ${formatCpus(p['dev-cpus'])} and ${formatBytes(p['dev-memory'])}` +
        (report.host ? `; the host has ${formatCpus(report.host.cpus)} and ${formatBytes(report.host.memoryBytes)}` : ''),
    );
  }
  checked.push(report.ran.http ? 'HTTP: robots.txt and pages of both sites, from the host' : 'HTTP: off (preflight.http.enabled: true turns it on)');
  s.heading('What was checked', 3).list(checked);
  if (report.notes.length) s.heading('Notes', 3).list(report.notes);
  return s;
}

export const preflightAction: ActionDefinition<PreflightInputs, PreflightOutputs, Record<string, never>> = {
  name: 'preflight',
  prepare() {
    return {};
  },
  async execute(ctx) {
    const report = await runPreflight(ctx.host, ctx.config, ctx.log);
    for (const f of report.findings) {
      const line = `${f.check} (${f.environment}): ${f.message}. Fix: ${f.fix}`;
      if (f.severity === 'error') ctx.log.error(line);
      else ctx.log.warning(line);
    }
    ctx.io.output('errors', report.errors);
    ctx.io.output('warnings', report.warnings);
    ctx.io.output('findings', JSON.stringify(report.findings));
    await ctx.io.summary(preflightSummary(report, ctx.config).toMarkdown());
    if (report.errors > 0) {
      const first = report.findings[0];
      throw new OperationFailed(`${report.errors} isolation error${report.errors === 1 ? '' : 's'} between prod and dev; first: ${first.message}`);
    }
    ctx.log.info(`preflight: no isolation errors (${report.warnings} warning${report.warnings === 1 ? '' : 's'})`);
  },
};
