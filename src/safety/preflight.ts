/**
 * The isolation checks against the host: both env files (values hashed at once, never logged), each
 * environment's merged compose configuration, the host's size, and optionally both sites over
 * HTTP. Read-only: changes nothing and takes no lock. The preflight action reports them; deploy and
 * promote run them as a gate on the commit they are about to start (isolationGate).
 */
import * as fs from 'node:fs';
import type { Config, EnvironmentName } from '../domain/config';
import { Environment } from '../domain/environment';
import { OperationFailed, RemoteCommandError, errorMessage, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { argv, hostScript, sh } from '../infra/shell';
import { ComposeConfigError, addEnvFiles, parseComposeConfig } from './compose-model';
import type { PreflightSettings } from '../config/checks';
import { EnvFileError, SECRET_KEY, digestEnv, parseEnvFile, scrub } from '../domain/env-file';
import { counts, sortFindings, type Finding } from './findings';
import { judgeProbe, parseCurlResponse, type Probe } from './http-probe';
import { checkIsolation, parseHostTotals, pathsToResolve, type EnvironmentFacts, type HostTotals, type IsolationInput } from './isolation';
import { placementFindings } from './placement';
import { stackMergeFindings } from './stack-merge';
import { dbInitFindings } from './db-init';
import { checkRolling } from './rolling';
import { walSettingFindings } from './wal-settings';

export interface PreflightReport {
  findings: Finding[];
  notes: string[];
  errors: number;
  warnings: number;
  host?: HostTotals;
  /** dev's summed limits, for the summary. */
  devLimits?: { cpus: number; memoryBytes: number; services: number };
  /** Which groups of checks could run. */
  ran: { envFiles: boolean; compose: boolean; http: boolean };
}

interface Reading {
  facts: EnvironmentFacts;
  findings: Finding[];
  /** The env files' values: only to scrub text that came back from the host, never logged. */
  secrets: string[];
}

const secretsOf = (r: Record<EnvironmentName, Reading>) => [...r.prod.secrets, ...r.dev.secrets];

/** Env file keys whose values are treated as secrets (masked in everything logged). */
export { SECRET_KEY };

export function preflightSettings(config: Config): PreflightSettings {
  return config.preflight;
}

async function readEnvironment(host: Host, config: Config, name: EnvironmentName, log: Logger): Promise<Reading> {
  const env = new Environment(name, config);
  const settings = preflightSettings(config);
  const facts: EnvironmentFacts = { name, config: env.cfg };
  const findings: Finding[] = [];
  const path = `${env.cfg.checkout}/${env.cfg.envFile}`;
  let values: Map<string, string> = new Map();

  // The env file: read with cat and never streamed to the log (quiet), then parsed here.
  try {
    const text = (await host.readFile(path)).toString('utf8');
    values = parseEnvFile(text);
    // Secret-looking values are masked from here on: a streamed compose build or a container log
    // printed later in the same run could carry them.
    for (const [key, value] of values) if (SECRET_KEY.test(key) && value.length >= 6) log.secret(value);
    facts.env = digestEnv(values, [...settings['redirect-uri-keys'], ...settings['domain-keys']]);
    log.info(`${name}: read ${values.size} keys from ${path}`);
  } catch (e) {
    const why = e instanceof EnvFileError ? e.message : e instanceof RemoteCommandError ? tailLines(e.stderr, 1).replace(/^cat: .*?: /, '') : errorMessage(e);
    findings.push({
      check: 'env-file',
      environment: name,
      severity: 'error',
      message: e instanceof EnvFileError ? `${name}'s env file ${path}: ${why}` : `${name}'s env file ${path} could not be read: ${why}`,
      fix:
        e instanceof EnvFileError
          ? `correct that line of ${env.cfg.envFile}`
          : `create ${env.cfg.envFile} in ${env.cfg.checkout}, or correct environments.${name}.env-file`,
    });
  }
  // Only to scrub text that came back from the host; never logged.
  const secrets = [...values.values()];

  // The merged compose configuration. Its output holds every env value: it is parsed, never printed.
  // docker compose v2 drops env_file from it (the values are inlined); `config --no-interpolate` keeps
  // the list, with absolute paths. Dev's files are checked against dev's own paths, so dev needs it.
  const v2 = config['compose-command'] === 'docker compose';
  const [r, raw] = await Promise.all([
    host.run(env.compose('config'), env.composeOptions({ quiet: true, check: false, label: `${name}: compose config`, timeoutSeconds: 180 })),
    name === 'dev' && v2
      ? host.run(
          env.compose('config', '--no-interpolate'),
          env.composeOptions({ quiet: true, check: false, label: `${name}: compose config --no-interpolate`, timeoutSeconds: 180 }),
        )
      : undefined,
  ]);
  for (const v of unsetVariables(r.stderr)) {
    findings.push({
      check: 'compose-config',
      environment: name,
      severity: 'warning',
      message: `${v} is not set for ${name}: compose puts a blank string where the compose files use it`,
      fix: `set ${v} in ${env.cfg.envFile}`,
    });
  }
  if (r.exitCode !== 0) {
    findings.push({
      check: 'compose-config',
      environment: name,
      severity: 'error',
      message: `${name}'s compose configuration does not load (exit ${r.exitCode}): ${scrub(tailLines(r.stderr, 3), secrets) || 'no message'}`,
      fix: `run "${config['compose-command']} ... config" in ${env.cfg.checkout} and correct the compose files or env file it names`,
    });
  } else {
    try {
      facts.compose = parseComposeConfig(r.stdout, env.project, facts.env?.profiles ?? []);
      if (raw && raw.exitCode === 0) addEnvFiles(facts.compose, raw.stdout);
      else if (raw)
        throw new ComposeConfigError(`"config --no-interpolate" (for the env_file lists) failed (exit ${raw.exitCode}): ${tailLines(raw.stderr, 1)}`);
      else if (name === 'dev') facts.envFilesUnread = true;
      log.info(
        `${name}: ${facts.compose.services.length} services in the merged compose configuration${facts.compose.inactive.length ? ` (${facts.compose.inactive.join(', ')} not started: inactive profile)` : ''}`,
      );
    } catch (e) {
      const why = e instanceof ComposeConfigError ? e.message : errorMessage(e);
      findings.push({
        check: 'compose-config',
        environment: name,
        severity: 'error',
        message: `${name}: ${scrub(why, secrets)}`,
        fix: 'check the compose command in compose-command',
      });
    }
  }
  return { facts, findings, secrets };
}

/** Variables compose reports as unset: v1 `The FOO variable is not set.`, v2 `The "FOO" variable is not set.` */
export function unsetVariables(stderr: string): string[] {
  const out = new Set<string>();
  for (const m of stderr.matchAll(/The \\?"?([A-Za-z_][A-Za-z0-9_]*)\\?"? variable is not set/g)) out.add(m[1]);
  return [...out].sort();
}

/**
 * Each path as the host resolves it (`realpath -m`: every symlink followed, missing parts allowed),
 * all in one round trip; NUL-separated, as a path may hold a newline. A string says why it failed.
 */
export async function resolvePaths(host: Host, paths: readonly string[]): Promise<Map<string, string> | string> {
  if (paths.length === 0) return new Map();
  const r = await host.run(argv('realpath', '-m', '-z', '--', paths), { quiet: true, check: false, label: 'resolving host paths', timeoutSeconds: 60 });
  const out = r.stdout.split('\0').slice(0, -1);
  if (r.exitCode !== 0 || out.length !== paths.length)
    return `realpath exited with ${r.exitCode}: ${tailLines(r.stderr, 1) || `${out.length} of ${paths.length} paths`}`;
  return new Map(paths.map((p, i) => [p, out[i]]));
}

const HOST_SIZE = fs.readFileSync(__dirname + '/host-size.sh', 'utf8');

async function hostTotals(host: Host): Promise<HostTotals | undefined> {
  const r = await host.run(hostScript(HOST_SIZE, {}), { quiet: true, check: false, label: 'reading the host size', timeoutSeconds: 30 });
  return r.exitCode === 0 ? parseHostTotals(r.stdout) : undefined;
}

async function probe(
  host: Host,
  { environment, url, kind, timeout }: { environment: EnvironmentName; url: string; kind: Probe['kind']; timeout: number },
): Promise<Probe> {
  // Prod follows redirects (http -> https, www); dev is judged on its first answer to a stranger.
  const follow = environment === 'prod' ? ['-L', '--max-redirs', '5'] : [];
  const r = await host.run(sh`curl -sS -i ${follow} --max-time ${timeout} -A twinstack-preflight -H ${'Accept: text/html,*/*'} ${url}`, {
    quiet: true,
    check: false,
    label: `GET ${url}`,
    timeoutSeconds: timeout + 30,
  });
  const response = r.exitCode === 0 ? parseCurlResponse(r.stdout) : undefined;
  return { environment, url, kind, response, error: response ? undefined : tailLines(r.stderr, 1) || `curl exited with ${r.exitCode}` };
}

/** Each environment's database runs under an init, so an orphan in its container cannot crash-restart it. */
function dbInit(config: Config, readings: Record<EnvironmentName, Reading>): Finding[] {
  return (['prod', 'dev'] as const).flatMap((name) => {
    const { compose } = readings[name].facts;
    const env = config.environments[name];
    return compose ? dbInitFindings({ compose, environment: name, service: env.database.service, composeFiles: env.composeFiles }) : [];
  });
}

/** Runs every check against the host; reports, never throws for a finding. */
export async function runPreflight(host: Host, config: Config, log: Logger, opts: { http?: boolean; wal?: boolean } = {}): Promise<PreflightReport> {
  const settings = preflightSettings(config);
  // Both environments at once: each `config` run is a few seconds of compose start-up.
  const [prodReading, devReading, totals] = await Promise.all([
    readEnvironment(host, config, 'prod', log),
    readEnvironment(host, config, 'dev', log),
    hostTotals(host),
  ]);
  const readings: Record<EnvironmentName, Reading> = { prod: prodReading, dev: devReading };
  const input: IsolationInput = {
    prod: readings.prod.facts,
    dev: readings.dev.facts,
    settings,
    host: totals,
    paths: { stateDir: config['state-dir'], backupDir: config.backup.dir },
  };
  const resolved = await resolvePaths(host, pathsToResolve(input));
  const findings = [...readings.prod.findings, ...readings.dev.findings];
  if (resolved instanceof Map) input.realPaths = resolved;
  else
    findings.push({
      check: 'dev-paths',
      environment: 'host',
      severity: 'error',
      message: `the host paths dev's services use could not be resolved on the host: ${scrub(resolved, secretsOf(readings))}`,
      fix: 'check that the host has GNU realpath (coreutils) and that the SSH user can run it',
    });
  const result = checkIsolation(input);
  findings.push(...result.findings);
  // Rolling services are switched on prod (promote, rollback): its compose configuration must allow it.
  const prodCompose = readings.prod.facts.compose;
  if (prodCompose)
    findings.push(
      ...checkRolling({
        compose: prodCompose,
        rolling: config.promote.rolling,
        environment: 'prod',
        warnOnly: settings['warn-only'],
        code: { checkout: config.environments.prod.checkout, releaseDirs: config.promote['release-dirs'] },
      }),
    );
  findings.push(...dbInit(config, readings));
  // A swarm environment's services must stay on its own nodes (only for target: swarm).
  findings.push(...(await placementFindings(host, config, { prod: readings.prod.facts.compose, dev: readings.dev.facts.compose }, settings['warn-only'])));
  // ...and its overlays must not set what `docker stack deploy` appends instead of replacing.
  findings.push(...(await stackMergeFindings({ host, config, log }, settings['warn-only'])));

  // Replication settings matter to the WAL receiver only: the gate before deploy and promote leaves them out.
  if (opts.wal !== false) findings.push(...(await walSettingFindings(host, config, settings['warn-only'].includes('wal-settings'))));

  const http = settings.http;
  if (http.enabled && opts.http !== false) {
    const probes: Probe[] = [];
    const prodUrl = config.environments.prod.url;
    probes.push(await probe(host, { environment: 'prod', url: `${prodUrl}/robots.txt`, kind: 'robots', timeout: http['timeout-seconds'] }));
    for (const p of http['prod-pages'])
      probes.push(await probe(host, { environment: 'prod', url: `${prodUrl}${p}`, kind: 'page', timeout: http['timeout-seconds'] }));
    for (const p of http['dev-pages'])
      probes.push(await probe(host, { environment: 'dev', url: `${config.environments.dev.url}${p}`, kind: 'page', timeout: http['timeout-seconds'] }));
    for (const p of probes) {
      for (const f of judgeProbe(p)) {
        const downgrade = f.severity === 'error' && settings['warn-only'].includes('http');
        findings.push(downgrade ? { ...f, severity: 'warning', message: `${f.message} (warn-only)` } : f);
      }
    }
  }

  const dev = readings.dev.facts.compose;
  return {
    findings: sortFindings(findings),
    notes: result.notes,
    ...counts(findings),
    host: totals,
    devLimits: dev
      ? {
          cpus: dev.services.reduce((a, s) => a + (s.cpus ?? 0), 0),
          memoryBytes: dev.services.reduce((a, s) => a + (s.memoryBytes ?? 0), 0),
          services: dev.services.length,
        }
      : undefined,
    ran: {
      envFiles: !!(readings.prod.facts.env && readings.dev.facts.env),
      compose: !!(readings.prod.facts.compose && readings.dev.facts.compose),
      http: http.enabled,
    },
  };
}

/**
 * The isolation checks as a gate: run on the merged configuration of what the caller is about to
 * start (after its checkout, before build and up). Errors refuse, warnings are logged; `warn-only`
 * turns a check's errors into warnings for gradual adoption. HTTP is left to preflight itself.
 */
export async function isolationGate(host: Host, config: Config, log: Logger, what: string): Promise<PreflightReport> {
  log.startGroup(`isolation checks on ${what}`);
  try {
    const report = await runPreflight(host, config, log, { http: false, wal: false });
    for (const f of report.findings.filter((x) => x.severity === 'warning')) log.warning(`${f.check} (${f.environment}): ${f.message}. Fix: ${f.fix}`);
    const errors = report.findings.filter((x) => x.severity === 'error');
    if (errors.length) {
      for (const f of errors) log.error(`${f.check} (${f.environment}): ${f.message}. Fix: ${f.fix}`);
      throw new IsolationRefused(
        `the isolation checks refuse ${what}: ${errors.length} error${errors.length === 1 ? '' : 's'}; first: ${errors[0].check} (${errors[0].environment}): ${errors[0].message}. Fix: ${errors[0].fix}`,
        errors,
      );
    }
    log.info(`isolation checks on ${what}: no errors (${report.warnings} warning${report.warnings === 1 ? '' : 's'})`);
    return report;
  } finally {
    log.endGroup();
  }
}

export class IsolationRefused extends OperationFailed {
  constructor(
    message: string,
    readonly findings: Finding[],
  ) {
    super(message);
  }
}
