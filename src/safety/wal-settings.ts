/**
 * Preflight's `wal-settings` check: where backup.wal is enabled, prod's server must allow streaming
 * replication. Read with SHOW-equivalents (pg_settings) and never changed: the user's compose files
 * are theirs, so each finding says in one line which setting to put in the prod overlay.
 */
import type { Config } from '../domain/config';
import { Environment } from '../domain/environment';
import { tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { psql } from '../infra/postgres';
import { WAL_SETTINGS_SQL } from '../infra/wal';
import type { Finding } from './findings';

/** What each setting must be for a receiver and a base backup beside it: the minimum, and the value to set. */
const NEEDED = {
  wal_level: { ok: (v: string) => v === 'replica' || v === 'logical', set: 'replica', why: 'pg_receivewal needs replica' },
  max_wal_senders: { ok: (v: string) => Number(v) >= 2, set: '10', why: 'the receiver and a base backup each take one' },
  max_replication_slots: { ok: (v: string) => Number(v) >= 1, set: '10', why: 'the receiver streams from a slot' },
} as const;

/** The findings for prod's settings as read (`name|setting` lines). */
export function judgeWalSettings(text: string, severity: Finding['severity'] = 'error'): Finding[] {
  const read = new Map(
    text
      .split('\n')
      .map((l) => l.trim().split('|'))
      .filter((p) => p.length === 2) as Array<[string, string]>,
  );
  const findings: Finding[] = [];
  for (const [name, need] of Object.entries(NEEDED)) {
    const v = read.get(name);
    if (v !== undefined && need.ok(v)) continue;
    findings.push({
      check: 'wal-settings',
      environment: 'prod',
      severity,
      message: v === undefined ? `prod's db did not report ${name}` : `prod's db has ${name}=${v}: ${need.why}`,
      fix: `set ${name}=${need.set} (command: postgres -c ${name}=${need.set}) in the prod overlay, then recreate prod's db container`,
    });
  }
  return findings;
}

/** Reads prod's settings when backup.wal is enabled; none otherwise. */
export async function walSettingFindings(host: Host, config: Config, warnOnly: boolean): Promise<Finding[]> {
  if (!config.backup.wal.enabled) return [];
  const prod = new Environment('prod', config);
  const r = await host.run(psql(prod, prod.cfg.database.name, { tuples: true, run: [WAL_SETTINGS_SQL] }), {
    check: false,
    quiet: true,
    label: "reading prod's replication settings",
    timeoutSeconds: 60,
  });
  const severity = warnOnly ? 'warning' : 'error';
  if (r.exitCode !== 0)
    return [
      {
        check: 'wal-settings',
        environment: 'prod',
        severity,
        message: `prod's replication settings could not be read: ${tailLines(r.stderr, 1)}`,
        fix: "start prod's db (deploy prod), then run preflight again",
      },
    ];
  return judgeWalSettings(r.stdout, severity);
}
