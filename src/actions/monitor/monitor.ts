/**
 * monitor: measures both environments on the host and judges the numbers against the design's
 * thresholds. Per environment: each container's CPU and memory against its limits (docker stats,
 * docker inspect) and the database's connections against max_connections; for the host: disk use
 * of each vault and of the backup directory (df -P); for prod: the health URL's latency P50/P99 and
 * error rate over N requests made from the host. Changes nothing and takes no lock. A breached
 * threshold fails the step, so GitHub notifies; the metrics are an output in JSON.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MonitorInputs, MonitorOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import { ENVIRONMENTS, type Config } from '../../domain/config';
import { Environment } from '../../domain/environment';
import { OperationFailed, errorMessage, tailLines } from '../../infra/errors';
import type { CommandResult, Host } from '../../infra/host';
import type { Logger } from '../../infra/logger';
import { projectLabel } from '../../infra/docker';
import { hostScript, sh } from '../../infra/shell';
import { stackLabel } from '../../infra/swarm';
import { Summary } from '../../infra/summary';
import { latencyMermaid, latencySvg, sparkline } from '../../safety/chart';
import { counts, findingsTable, sortFindings, type Finding } from '../../safety/findings';
import { latencyStats, parseConnections, parseContainerLimits, parseDf, parseDockerStats, parseTimings } from '../../safety/metrics';
import { combineContainers, judgeMetrics, type DiskMetric, type EnvironmentMetrics, type Metrics } from '../../safety/monitoring';
import { formatBytes, formatCpus } from '../../infra/units';
import { psql } from '../../infra/postgres';
import { receiverName, walDir, walHealth } from '../../domain/wal';
import { offsitePoint, pushedMarker, type OffsitePoint } from '../../domain/wal-offsite';

const SPLIT = '--twinstack-inspect--';
const CONTAINER_STATS = fs.readFileSync(__dirname + '/container-stats.sh', 'utf8');
const TASK_STATS = fs.readFileSync(__dirname + '/task-stats.sh', 'utf8');
const LATENCY = fs.readFileSync(__dirname + '/latency.sh', 'utf8');
/** Counted like max_connections counts them: client sessions, not PostgreSQL's own background workers. */
const CONNECTIONS_SQL = "select count(*) from pg_stat_activity where backend_type = 'client backend'";

export interface MonitorReport {
  metrics: Metrics;
  findings: Finding[];
  breaches: number;
  warnings: number;
}

async function dockerState(host: Host): Promise<Metrics['docker']> {
  const r = await host.run("docker info --format '{{.ServerVersion}}'", { quiet: true, check: false, label: 'docker info', timeoutSeconds: 60 });
  if (r.exitCode === 0 && r.stdout.trim()) return { available: true, version: r.stdout.trim() };
  return { available: false, error: tailLines(r.stderr || r.stdout, 2) || `docker info exited with ${r.exitCode}` };
}

export async function containerMetrics(host: Host, env: Environment, into: EnvironmentMetrics): Promise<void> {
  if (env.onSwarm) return taskMetrics(host, env, into);
  const script = hostScript(CONTAINER_STATS, { PROJECT_LABEL: projectLabel(env.project), SPLIT });
  const r = await host.run(script, { quiet: true, check: false, label: `${env.name}: docker stats`, timeoutSeconds: 120 });
  readStats(r, into, undefined);
}

/** container-stats.sh's or task-stats.sh's output, added to `into` (each container marked with `node` when on another node). */
function readStats(r: CommandResult, into: EnvironmentMetrics, o: { stack: string; node?: string } | undefined): void {
  if (r.exitCode !== 0) {
    into.containersError = tailLines(r.stderr, 2) || `exit ${r.exitCode}`;
    return;
  }
  const [stats, inspect = '[]'] = r.stdout.split(`${SPLIT}\n`);
  try {
    const found = combineContainers(parseDockerStats(stats), parseContainerLimits(inspect, o?.stack));
    into.containers.push(...(o?.node ? found.map((c) => ({ ...c, node: o.node })) : found));
  } catch (e) {
    into.containersError = `unexpected docker output: ${errorMessage(e)}`;
  }
}

/** On a swarm: the stack's running task containers, each read on its own node's engine (the manager's, and those of swarm.nodes). */
async function taskMetrics(host: Host, env: Environment, into: EnvironmentMetrics): Promise<void> {
  let found: Awaited<ReturnType<Environment['taskEngines']>>;
  try {
    found = await env.taskEngines(host);
  } catch (e) {
    into.containersError = errorMessage(e);
    return;
  }
  if (found.unreached.length) into.unreachedNodes = found.unreached;
  for (const { hostname, endpoint } of found.engines) {
    const script = hostScript(TASK_STATS, { STACK_FILTER: stackLabel(env.project), SPLIT, DOCKER_ENDPOINT: endpoint ?? '' });
    const r = await host.run(script, {
      quiet: true,
      check: false,
      label: `${env.name}: docker stats${endpoint ? ` on node ${hostname}` : ''}`,
      timeoutSeconds: 120,
    });
    readStats(r, into, { stack: env.project, node: endpoint ? hostname : undefined });
  }
}

export async function databaseMetrics(host: Host, env: Environment, into: EnvironmentMetrics): Promise<void> {
  const cmd = psql(env, env.cfg.database.name, { tuples: true, run: [CONNECTIONS_SQL, 'show max_connections'] });
  const r = await host.run(cmd, { quiet: true, check: false, label: `${env.name}: database connections`, timeoutSeconds: 60 });
  const parsed = r.exitCode === 0 ? parseConnections(r.stdout) : undefined;
  if (parsed) into.database = { ...parsed, percent: Math.round((parsed.connections / parsed.max) * 1000) / 10 };
  else into.databaseError = tailLines(r.stderr, 2) || (r.exitCode === 0 ? 'psql printed no counts' : `psql exited with ${r.exitCode}`);
}

export function diskPaths(config: Config): Array<Omit<DiskMetric, 'use' | 'error'>> {
  const out: Array<Omit<DiskMetric, 'use' | 'error'>> = [];
  for (const name of ENVIRONMENTS) {
    const vault = config.environments[name].vault;
    if (vault) out.push({ label: `${name} vault`, environment: name, path: vault });
  }
  out.push({ label: 'backups', environment: 'host', path: config.monitor['backup-dir'] ?? config.backup.dir });
  for (const p of config.monitor['disk-paths']) out.push({ label: p, environment: 'host', path: p });
  return out;
}

async function diskMetrics(host: Host, config: Config): Promise<DiskMetric[]> {
  const out: DiskMetric[] = [];
  for (const d of diskPaths(config)) {
    const r = await host.run(sh`df -P ${d.path}`, { quiet: true, check: false, label: `df ${d.path}`, timeoutSeconds: 60 });
    const use = r.exitCode === 0 ? parseDf(r.stdout) : undefined;
    out.push(use ? { ...d, use } : { ...d, error: tailLines(r.stderr, 1).replace(/^df: /, '') || 'df printed nothing' });
  }
  return out;
}

async function latency(host: Host, config: Config, into: Metrics): Promise<void> {
  const prod = config.environments.prod;
  const url = `${prod.url}${prod.healthPath}`;
  const n = config.monitor.requests;
  const t = config.monitor['request-timeout-seconds'];
  // One remote command: the requests are made from the host, one after another, so SSH adds nothing to the times.
  const script = hostScript(LATENCY, { REQUESTS: n, TIMEOUT: t, URL: url });
  const r = await host.run(script, { quiet: true, check: false, label: `GET ${url} x${n}`, timeoutSeconds: n * (t + 5) + 30 });
  const samples = parseTimings(r.stdout);
  if (r.exitCode !== 0 || samples.length === 0) {
    into.latencyError = tailLines(r.stderr, 1) || `no timings came back (exit ${r.exitCode})`;
    return;
  }
  into.latency = { url, samples, stats: latencyStats(samples) };
}

/** prod's WAL archive (backup.wal): the receiver's state and the lag, each problem a breach. */
async function walMetrics(host: Host, config: Config, into: Metrics): Promise<Finding[]> {
  if (!config.backup.wal.enabled) return [];
  const prod = new Environment('prod', config);
  try {
    into.wal = await walHealth(host, config, prod);
    // Read on the VPS only (the marker and the segment's time): monitor holds no key of the backup host.
    if (config.backup.offsite) into.walOffsite = (await offsitePoint(host, config, await pushedMarker(host, config))) ?? null;
  } catch (e) {
    into.walError = errorMessage(e);
    return [
      {
        check: 'wal-archive',
        environment: 'prod',
        severity: 'error',
        message: `the WAL archive could not be read: ${into.walError}`,
        fix: 'check the host and run monitor again',
      },
    ];
  }
  return into.wal.problems.map((p) => ({ check: 'wal-archive', environment: 'prod', severity: 'error', message: p.message, fix: p.fix }));
}

export async function runMonitor(host: Host, config: Config, log: Logger): Promise<MonitorReport> {
  const metrics: Metrics = { time: new Date().toISOString(), docker: await dockerState(host), environments: [], disks: [] };
  if (!metrics.docker.available) log.warning(`docker did not answer: ${metrics.docker.error}`);
  for (const name of ENVIRONMENTS) {
    const env = new Environment(name, config);
    const em: EnvironmentMetrics = { environment: name, project: env.project, containers: [] };
    if (metrics.docker.available) await containerMetrics(host, env, em);
    if (metrics.docker.available || env.cfg.database.via === 'host') await databaseMetrics(host, env, em);
    else em.databaseError = 'not measured: docker did not answer';
    metrics.environments.push(em);
    log.info(
      `${name}: ${em.containersError ? 'containers not measured' : `${em.containers.length} containers`}; ` +
        `${em.database ? `${em.database.connections}/${em.database.max} database connections` : 'database connections not counted'}`,
    );
  }
  metrics.disks = await diskMetrics(host, config);
  await latency(host, config, metrics);
  if (metrics.latency) {
    const st = metrics.latency.stats;
    log.info(
      `prod ${metrics.latency.url}: ${st.p50Ms === undefined ? 'no answers' : `P50 ${st.p50Ms} ms, P99 ${st.p99Ms} ms`}, ${st.errors}/${st.requests} failed`,
    );
  }
  const wal = await walMetrics(host, config, metrics);
  if (metrics.wal) log.info(`prod WAL archive: receiver ${metrics.wal.receiver}, lag ${metrics.wal.lagSeconds} s`);
  const findings = sortFindings([...judgeMetrics(metrics, config.monitor), ...wal]);
  const c = counts(findings);
  return { metrics, findings, breaches: c.errors, warnings: c.warnings };
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${v} %`);

export function monitorSummary(report: MonitorReport, config: Config): Summary {
  const m = report.metrics;
  const s = new Summary().heading('twinstack monitor');
  s.text(
    report.breaches > 0
      ? `❌ **${report.breaches} threshold${report.breaches === 1 ? '' : 's'} breached**${report.warnings ? `, ${report.warnings} warning${report.warnings === 1 ? '' : 's'}` : ''} (measured ${m.time}).`
      : `✅ Every measurement is within its threshold${report.warnings ? `; ⚠️ ${report.warnings} warning${report.warnings === 1 ? '' : 's'}` : ''} (measured ${m.time}).`,
  );
  if (report.findings.length) s.text(findingsTable(report.findings));

  if (m.latency) {
    const st = m.latency.stats;
    const limit = config.monitor['latency-p99-ms'];
    s.heading(`prod latency: ${m.latency.url}`, 3);
    s.table(
      ['requests', 'P50', 'P99', 'slowest', 'failed', 'samples'],
      [
        [
          String(st.requests),
          `${st.p50Ms ?? '–'} ms`,
          `${st.p99Ms ?? '–'} ms (limit ${limit})`,
          `${st.maxMs ?? '–'} ms`,
          `${st.errors} (${st.errorRatePercent} %)`,
          sparkline(m.latency.samples),
        ],
      ],
    );
    s.text(latencyMermaid(m.latency.samples, { thresholdMs: limit, title: `prod ${config.environments.prod.healthPath} response times (ms)` }));
  }

  for (const e of m.environments) {
    s.heading(`${e.environment} (${e.project})`, 3);
    const notes: string[] = [];
    notes.push(
      e.database
        ? `database connections: ${e.database.connections} of ${e.database.max} (${e.database.percent} %; limit ${config.monitor['db-connections-percent']} %)`
        : `database connections: not counted (${e.databaseError ?? 'unknown'})`,
    );
    if (e.containersError) notes.push(`containers: not measured (${e.containersError})`);
    s.list(notes);
    if (e.containers.length) {
      s.table(
        ['service', 'state', 'CPU', 'CPU limit', 'memory', 'memory limit'],
        e.containers.map((c) => [
          c.service + (c.node ? ` (node ${c.node})` : ''),
          c.status + (c.oomKilled ? ' (OOM-killed)' : ''),
          c.cpuPercent === undefined ? '–' : `${c.cpuPercent} %`,
          c.cpuLimit === undefined ? 'none' : `${formatCpus(c.cpuLimit)} (${pct(c.cpuOfLimit)} used)`,
          c.memUsageBytes === undefined || Number.isNaN(c.memUsageBytes) ? '–' : formatBytes(c.memUsageBytes),
          c.memLimitBytes === undefined ? 'none' : `${formatBytes(c.memLimitBytes)} (${pct(c.memOfLimit)} used)`,
        ]),
      );
    }
  }

  s.heading('disks', 3);
  s.table(
    ['what', 'path', 'file system', 'used', 'free', 'use'],
    m.disks.map((d) =>
      d.use
        ? [
            d.label,
            d.path,
            d.use.mountedOn,
            formatBytes(d.use.usedBytes),
            formatBytes(d.use.availableBytes),
            `${d.use.percent} % (limit ${config.monitor['disk-percent']} %)`,
          ]
        : [d.label, d.path, '–', '–', '–', `not measured: ${d.error}`],
    ),
  );
  if (m.wal || m.walError) walSection(s, config, m);
  if (!m.docker.available) s.list([`docker: did not answer (${m.docker.error}); container metrics are missing`]);
  return s;
}

function walSection(s: Summary, config: Config, m: Metrics): void {
  s.heading(`prod WAL archive: ${walDir(config)}`, 3);
  if (!m.wal) {
    s.list([`not read: ${m.walError ?? 'unknown'}`]);
    return;
  }
  const w = m.wal;
  s.list([
    `receiver ${receiverName(new Environment('prod', config))}: ${w.receiver}`,
    `lag: ${w.lagSeconds} s (limit ${config.backup.wal['max-lag-seconds']} s)`,
    `newest archived segment: ${w.segment ? `${w.segment.name}, ${w.segment.ageSeconds} s old` : 'none yet'}`,
    `being received: ${w.partial ? `${w.partial.name}, written ${w.partial.ageSeconds} s ago` : 'nothing'}`,
    ...(m.walOffsite === undefined ? [] : [offsiteLine(m.walOffsite)]),
  ]);
}

/** The off-host recovery point, as the last WAL push left it (backup action, wal: push). */
function offsiteLine(p: OffsitePoint | null): string {
  if (!p) return 'off the host: no segment pushed yet (schedule the backup action with wal: push)';
  return `off the host: up to ${p.segment}${p.ageSeconds === undefined ? '' : `, completed ${p.ageSeconds} s ago (the off-host recovery point)`}`;
}

/** Writes the SVG chart where the runner keeps temporary files; returns its path. */
function writeChart(report: MonitorReport, config: Config): string | undefined {
  const lat = report.metrics.latency;
  if (!lat) return undefined;
  const dir = process.env.RUNNER_TEMP || os.tmpdir();
  const file = path.join(dir, `twinstack-latency-${process.env.GITHUB_RUN_ID ?? process.pid}.svg`);
  fs.writeFileSync(
    file,
    latencySvg(lat.samples, { thresholdMs: config.monitor['latency-p99-ms'], title: `prod ${lat.url}: ${lat.stats.requests} requests from the host` }),
  );
  return file;
}

export const monitorAction: ActionDefinition<MonitorInputs, MonitorOutputs, Record<string, never>> = {
  name: 'monitor',
  prepare() {
    return {};
  },
  async execute(ctx) {
    const report = await runMonitor(ctx.host, ctx.config, ctx.log);
    for (const f of report.findings) {
      const line = `${f.check} (${f.environment}): ${f.message}. ${f.fix}`;
      if (f.severity === 'error') ctx.log.error(line);
      else ctx.log.warning(line);
    }
    ctx.io.output('breaches', report.breaches);
    ctx.io.output('warnings', report.warnings);
    ctx.io.output('metrics', JSON.stringify({ ...report.metrics, findings: report.findings }));
    const chart = writeChart(report, ctx.config);
    if (chart) ctx.io.output('chart', chart);
    await ctx.io.summary(monitorSummary(report, ctx.config).toMarkdown());
    if (report.breaches > 0) {
      throw new OperationFailed(`${report.breaches} threshold${report.breaches === 1 ? '' : 's'} breached; first: ${report.findings[0].message}`);
    }
  },
};
