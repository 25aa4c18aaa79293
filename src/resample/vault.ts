/**
 * Vault sync: the files the refreshed dev database references, copied from the production vault
 * into the dev vault on the host with rsync (only new or changed files), and the dev vault's files
 * that nothing references any more removed. File lists never leave the host; only counts return.
 */
import * as fs from 'node:fs';
import type { RunInfo } from '../infra/actions-io';
import type { Config } from '../domain/config';
import { Environment } from '../domain/environment';
import { ConfigurationError } from '../infra/errors';
import type { Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { underLock } from '../domain/operation';
import type { VaultSyncSettings } from '../config/sample';
import { literal } from '../infra/sql';
import { psql } from '../infra/postgres';

export interface VaultSyncReport {
  dryRun: boolean;
  referenced: number;
  copied: number;
  bytesCopied: number;
  deleted: number;
  bytesDeleted: number;
  /** Primary files the dev database references that production's vault lacks. */
  missing: number;
  missingExamples: string[];
  /** Paths refused as unsafe (absolute, `..`, control characters). */
  invalid: number;
  /** Symlinks found in the dev vault and removed (never vault files; rsync could write through them). */
  links: number;
  /** Unreferenced names whose resolved location is outside the dev vault: never deleted. */
  outside: number;
  seconds: number;
  sshBytes: number;
}

/** Both vaults set, different, neither inside the other, neither `/`. Checked before connecting. */
export function checkVaultPaths(prod: string | undefined, dev: string | undefined): { prod: string; dev: string } {
  if (!prod || !dev) throw new ConfigurationError('vault-sync needs environments.prod.vault and environments.dev.vault in the config');
  const norm = (p: string) => p.replace(/\/+$/, '') || '/';
  const a = norm(prod);
  const b = norm(dev);
  if (a === '/' || b === '/') throw new ConfigurationError(`vault-sync refuses to run on / (prod vault ${a}, dev vault ${b})`);
  if (a === b) throw new ConfigurationError(`vault-sync: the prod and dev vaults are the same directory (${a})`);
  if (a.startsWith(`${b}/`) || b.startsWith(`${a}/`))
    throw new ConfigurationError(`vault-sync: one vault is inside the other (${a}, ${b}); they must be separate directories`);
  return { prod: a, dev: b };
}

/** SQL listing `p<TAB>path` for referenced files, `v<TAB>path` for variants, `i<TAB>` for unsafe paths. */
export function listSql(settings: VaultSyncSettings): string {
  const variants = settings.variants.map(
    (pattern) =>
      `SELECT 'v', replace(replace(replace(${literal(pattern)}, '{stem}', regexp_replace(p, '\\.[^./]*$', '')), '{ext}', coalesce(substring(p from '\\.([^./]*)$'), '')), '{path}', p) FROM ok`,
  );
  return (
    `COPY (WITH q(p) AS (${settings.query}), ` +
    `paths AS (SELECT DISTINCT p::text AS p FROM q WHERE p IS NOT NULL AND p::text <> ''), ` +
    `ok AS (SELECT p FROM paths WHERE p !~ '(^/|(^|/)\\.\\.(/|$)|[[:cntrl:]]|\\\\)') ` +
    `SELECT 'p', p FROM ok UNION ALL SELECT 'i', '' FROM paths WHERE p NOT IN (SELECT p FROM ok)` +
    `${variants.map((v) => ` UNION ALL ${v}`).join('')}) TO STDOUT`
  );
}

/**
 * The host-side script (src/resample/vault-sync.sh, under shellcheck): lists, rsync, deletions.
 * Paths arrive in its environment, never pasted into it. Read once, next to the bundle in dist/.
 */
export const SYNC_SCRIPT = fs.readFileSync(__dirname + '/vault-sync.sh', 'utf8');

export function parseSyncOutput(stdout: string): Omit<VaultSyncReport, 'dryRun' | 'seconds' | 'sshBytes'> {
  const line = stdout.split('\n').find((l) => l.startsWith('ts-vault '));
  if (!line) throw new Error('vault sync printed no summary');
  const v = Object.fromEntries(
    line
      .slice(9)
      .split(' ')
      .map((kv) => kv.split('=') as [string, string]),
  );
  const n = (k: string) => Number(v[k] ?? 0);
  return {
    referenced: n('referenced'),
    copied: n('copied'),
    bytesCopied: n('bytes'),
    deleted: n('deleted'),
    bytesDeleted: n('deleted_bytes'),
    missing: n('missing'),
    missingExamples: stdout
      .split('\n')
      .filter((l) => l.startsWith('ts-missing '))
      .map((l) => l.slice(11)),
    invalid: n('invalid'),
    links: n('links'),
    outside: n('outside'),
  };
}

export interface VaultSyncContext {
  host: Host;
  config: Config;
  log: Logger;
  run: RunInfo;
  lockTimeoutSeconds: number;
}

export async function vaultSync(ctx: VaultSyncContext, opts: { dryRun: boolean }): Promise<VaultSyncReport> {
  const started = Date.now();
  const t0 = ctx.host.traffic();
  const { prod, dev: devVault } = checkVaultPaths(ctx.config.environments.prod.vault, ctx.config.environments.dev.vault);
  const dev = new Environment('dev', ctx.config);
  const settings = ctx.config['vault-sync'];
  const list = psql(dev, dev.cfg.database.name, { run: [listSql(settings)] });
  const sync = async () => {
    const r = await ctx.host.run(SYNC_SCRIPT, {
      env: { PROD_VAULT: prod, DEV_VAULT: devVault, LIST_COMMAND: list, DRY_RUN: opts.dryRun ? '1' : '0', DELETE: settings.delete ? '1' : '0' },
      label: 'syncing the dev vault',
      timeoutSeconds: ctx.config['command-timeout-seconds'],
      quiet: true,
    });
    return parseSyncOutput(r.stdout);
  };
  const result = opts.dryRun
    ? await sync()
    : await underLock(
        {
          host: ctx.host,
          stateDir: ctx.config['state-dir'],
          project: ctx.config.environments.dev.project,
          env: 'dev',
          action: 'vault-sync',
          run: ctx.run,
          log: ctx.log,
          lockTimeoutSeconds: ctx.lockTimeoutSeconds,
        },
        async (op) => {
          const r = await sync();
          await op.record('vault-synced', {
            copied: r.copied,
            bytes: r.bytesCopied,
            deleted: r.deleted,
            missing: r.missing,
            links: r.links,
            outside: r.outside,
          });
          return r;
        },
      );
  if (result.missing)
    ctx.log.warning(`${result.missing} file(s) referenced by dev are missing from the production vault, e.g. ${result.missingExamples.slice(0, 3).join(', ')}`);
  if (result.invalid) ctx.log.warning(`${result.invalid} path(s) from the vault query were refused as unsafe (absolute, "..", or control characters)`);
  const t = ctx.host.traffic();
  return { ...result, dryRun: opts.dryRun, seconds: (Date.now() - started) / 1000, sshBytes: t.sent - t0.sent + t.received - t0.received };
}
