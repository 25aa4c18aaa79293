/** What preflight and monitor report: one line per problem, naming the key or service and what to change. */
import { escapeCell } from '../infra/summary';

export type Severity = 'error' | 'warning';

export interface Finding {
  /** The check's name (see PREFLIGHT_CHECKS), or the monitor metric. */
  check: string;
  environment: 'prod' | 'dev' | 'both' | 'host';
  severity: Severity;
  /** What is wrong, naming the key, service, port or path; never an env file value. */
  message: string;
  /** What to change. */
  fix: string;
}

export interface Counts {
  errors: number;
  warnings: number;
}

export function counts(findings: readonly Finding[]): Counts {
  return {
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
  };
}

const ORDER: Record<Severity, number> = { error: 0, warning: 1 };

export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) => ORDER[a.severity] - ORDER[b.severity] || a.check.localeCompare(b.check) || a.environment.localeCompare(b.environment));
}

/** The findings as a Markdown table: check, environment, verdict, what is wrong, what to change. */
export function findingsTable(findings: readonly Finding[]): string {
  const rows = sortFindings(findings).map((f) => [f.check, f.environment, f.severity === 'error' ? '❌ error' : '⚠️ warning', f.message, f.fix]);
  return [
    '| check | environment | verdict | finding | what to change |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.map((c) => escapeCell(c)).join(' | ')} |`),
  ].join('\n');
}
