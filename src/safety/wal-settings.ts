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
import { parseHostJson } from '../infra/json';
import { WAL_HBA_SQL, WAL_SETTINGS_SQL } from '../infra/wal';
import { adminOf, toolContainer } from '../domain/wal';
import { z } from 'zod';
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
  return [...judgeWalSettings(r.stdout, severity), ...(await hbaFindings(host, config, prod, severity))];
}

/** One rule of pg_hba_file_rules. */
const hbaRule = z.object({
  line: z.number(),
  type: z.string().nullable(),
  database: z.array(z.string()).nullable(),
  user: z.array(z.string()).nullable(),
  address: z.string().nullable(),
  netmask: z.string().nullable(),
  method: z.string().nullable(),
  error: z.string().nullable(),
});
export type HbaRule = z.infer<typeof hbaRule>;

/** Where the receiver connects from: an IPv4 address and the prefix of its network. */
export interface Origin {
  ip: string;
  prefix: number;
}

function ipv4(ip: string): number | undefined {
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return undefined;
  return ((p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3]) >>> 0;
}

/** Whether a rule's address field covers every address of the origin's network. */
function addressMatches(rule: HbaRule, from: Origin): boolean {
  if (rule.address === 'all' || rule.address === 'samenet') return true;
  if (rule.address === 'samehost') return from.ip === '127.0.0.1';
  const net = ipv4(rule.address ?? '');
  const mask = ipv4(rule.netmask ?? '');
  const ip = ipv4(from.ip);
  if (net === undefined || mask === undefined || ip === undefined) return false;
  const bits = mask.toString(2).replace(/0+$/, '').length;
  return (ip & mask) >>> 0 === (net & mask) >>> 0 && bits <= from.prefix;
}

/**
 * pg_hba is read top down and the first rule that matches decides: undefined when that rule lets
 * `role` open a replication connection over TCP from `from`, otherwise why not. `all` in the
 * database field does not match replication; a `+group` user or a host name is not resolved here.
 */
export function judgeHba(rules: HbaRule[], role: string, from: Origin): string | undefined {
  const match = rules.find(
    (r) =>
      !r.error &&
      (r.type ?? '').startsWith('host') &&
      (r.database ?? []).includes('replication') &&
      (r.user ?? []).some((u) => u === role || u === 'all') &&
      addressMatches(r, from),
  );
  if (!match) return `prod's pg_hba.conf has no rule that admits replication connections of ${role} from ${from.ip}/${from.prefix}`;
  if (match.method === 'reject') return `prod's pg_hba.conf line ${match.line} rejects replication connections of ${role} from ${from.ip}/${from.prefix}`;
  return undefined;
}

/** prod's pg_hba rules (read as backup.wal.admin-user) against a receiver on its db's network. */
async function hbaFindings(host: Host, config: Config, prod: Environment, severity: Finding['severity']): Promise<Finding[]> {
  const role = config.backup.wal.role;
  const finding = (message: string, fix: string): Finding[] => [{ check: 'wal-settings', environment: 'prod', severity, message, fix }];
  const r = await host.run(psql(adminOf(config, prod), prod.cfg.database.name, { tuples: true, run: [WAL_HBA_SQL] }), {
    check: false,
    quiet: true,
    label: "reading prod's pg_hba rules",
    timeoutSeconds: 60,
  });
  if (r.exitCode !== 0)
    return finding(
      `prod's pg_hba rules could not be read: ${tailLines(r.stderr, 1)}`,
      'set backup.wal.admin-user to a superuser of prod (pg_hba_file_rules is readable by superusers only)',
    );
  const tool = await toolContainer(host, config, prod);
  const from: Origin = tool.network === 'host' ? { ip: '127.0.0.1', prefix: 32 } : (tool.dbAddress ?? { ip: '0.0.0.0', prefix: 0 });
  const why = judgeHba(parseHostJson(z.array(hbaRule), r.stdout.trim(), 'pg_hba_file_rules'), role, from);
  const where = tool.network === 'host' ? 'samehost' : 'samenet';
  return why
    ? finding(
        why,
        `add "host replication ${role} ${where} scram-sha-256" to pg_hba.conf in prod's db, above any rule that rejects, then SELECT pg_reload_conf()`,
      )
    : [];
}
