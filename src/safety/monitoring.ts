/**
 * Monitor's measurements and their judgement against the design's thresholds (section 12):
 * production P99 latency over 500 ms, production database connections over 80 % of the pool, disk
 * over 80 % on either vault, development containers using more than their limits. Pure: the action
 * collects, this decides.
 */
import type { EnvironmentName } from '../domain/config';
import type { MonitorSettings } from '../config/checks';
import type { Finding } from './findings';
import type { ContainerLimits, DiskUse, LatencyStats, Sample, StatsRow } from './metrics';
import { formatBytes, formatCpus } from '../infra/units';
import { shortId } from '../infra/docker';
import type { WalHealth } from '../domain/wal';
import type { OffsitePoint } from '../domain/wal-offsite';

export interface ContainerMetric {
  service: string;
  name: string;
  status: string;
  cpuPercent?: number;
  cpuLimit?: number;
  /** CPU use as a share of the limit, in percent. */
  cpuOfLimit?: number;
  memUsageBytes?: number;
  memLimitBytes?: number;
  memOfLimit?: number;
  oomKilled: boolean;
  restartCount: number;
  /** On a swarm, the hostname of the node it runs on when that is not the manager's. */
  node?: string;
}

export interface EnvironmentMetrics {
  environment: EnvironmentName;
  project: string;
  containers: ContainerMetric[];
  containersError?: string;
  /** On a swarm: nodes that run tasks of the stack but have no swarm.nodes entry, so their containers were not measured. */
  unreachedNodes?: string[];
  database?: { connections: number; max: number; percent: number };
  databaseError?: string;
}

export interface DiskMetric {
  label: string;
  environment: Finding['environment'];
  path: string;
  use?: DiskUse;
  error?: string;
}

export interface Metrics {
  time: string;
  docker: { available: boolean; version?: string; error?: string };
  environments: EnvironmentMetrics[];
  disks: DiskMetric[];
  latency?: { url: string; samples: Sample[]; stats: LatencyStats };
  latencyError?: string;
  /** prod's WAL archive, when backup.wal is enabled. */
  wal?: WalHealth;
  walError?: string;
  /** With backup.offsite too: the newest segment pushed off the host, as the VPS's marker says (none yet: null). */
  walOffsite?: OffsitePoint | null;
}

const round1 = (n: number) => Math.round(n * 10) / 10;

/** Joins `docker stats` rows (running containers) with their limits from `docker inspect` (all containers). */
export function combineContainers(stats: readonly StatsRow[], limits: readonly ContainerLimits[]): ContainerMetric[] {
  return limits.map((l) => {
    const s = stats.find((r) => r.name === l.name || (r.id && l.id.startsWith(shortId(r.id))));
    const cpuOfLimit = s && l.cpus ? round1(s.cpuPercent / l.cpus) : undefined;
    const memLimit = l.memoryBytes;
    const memOfLimit = s && memLimit ? round1(Number.isFinite(s.memUsageBytes) ? (s.memUsageBytes / memLimit) * 100 : s.memPercent) : undefined;
    return {
      service: l.service || l.name,
      name: l.name,
      status: l.status,
      cpuPercent: s?.cpuPercent,
      cpuLimit: l.cpus,
      cpuOfLimit,
      memUsageBytes: s?.memUsageBytes,
      memLimitBytes: memLimit,
      memOfLimit,
      oomKilled: l.oomKilled,
      restartCount: l.restartCount,
    };
  });
}

type EnvMetrics = EnvironmentMetrics;
type Container = EnvMetrics['containers'][number];

/** Every threshold the monitor judges, in the order the summary lists them: engine, environments, disks, latency. */
export function judgeMetrics(m: Metrics, s: MonitorSettings): Finding[] {
  return [...judgeDocker(m), ...m.environments.flatMap((e) => judgeEnvironment(m, e, s)), ...m.disks.flatMap((d) => judgeDisk(d, s)), ...judgeLatency(m, s)];
}

function judgeDocker(m: Metrics): Finding[] {
  if (m.docker.available) return [];
  return [
    {
      check: 'docker',
      environment: 'host',
      severity: 'error',
      message: `docker did not answer on the host, so container and database metrics are missing: ${m.docker.error ?? 'no reason given'}`,
      fix: 'start the Docker engine on the host (systemctl start docker), or let the SSH user run docker',
    },
  ];
}

function judgeEnvironment(m: Metrics, e: EnvMetrics, s: MonitorSettings): Finding[] {
  const out: Finding[] = [];
  if (e.containersError) {
    out.push({
      check: 'containers',
      environment: e.environment,
      severity: 'error',
      message: `${e.environment}'s containers could not be measured: ${e.containersError}`,
      fix: 'run docker stats on the host to see why',
    });
  } else if (m.docker.available && e.containers.length === 0) {
    out.push({
      check: 'containers',
      environment: e.environment,
      severity: 'warning',
      message: `no containers found for compose project ${e.project}`,
      fix: `deploy ${e.environment}, or check environments.${e.environment}.project`,
    });
  }
  if (e.unreachedNodes?.length) {
    out.push({
      check: 'containers',
      environment: e.environment,
      severity: 'warning',
      message: `${e.environment}'s tasks on node(s) ${e.unreachedNodes.join(', ')} were not measured: the manager has no endpoint for them`,
      fix: `add swarm.nodes.${e.unreachedNodes[0]} (the Docker endpoint the manager reaches that node's engine by, e.g. ssh://user@${e.unreachedNodes[0]})`,
    });
  }
  for (const c of e.containers) {
    out.push(...judgeContainer(e, c));
    if (e.environment === 'dev' && c.status === 'running') out.push(...judgeDevLimits(c, s));
  }
  return [...out, ...judgeDatabase(e, s)];
}

function judgeContainer(e: EnvMetrics, c: Container): Finding[] {
  const out: Finding[] = [];
  if (c.status !== 'running')
    out.push({
      check: 'containers',
      environment: e.environment,
      severity: e.environment === 'prod' ? 'error' : 'warning',
      message: `${e.environment} ${c.service} (${c.name}) is ${c.status}`,
      fix: `look at its logs: docker logs ${c.name}`,
    });
  if (c.oomKilled)
    out.push({
      check: 'memory',
      environment: e.environment,
      severity: 'error',
      message: `${e.environment} ${c.service} was killed for running out of memory${c.memLimitBytes ? ` (limit ${formatBytes(c.memLimitBytes)})` : ''}`,
      fix: `raise its memory limit or find what grows; docker logs ${c.name}`,
    });
  return out;
}

/** A running dev container: it has both limits, and is not pinned at either. */
function judgeDevLimits(c: Container, s: MonitorSettings): Finding[] {
  const out: Finding[] = [];
  if (c.cpuLimit === undefined || c.memLimitBytes === undefined) {
    const missing = [c.cpuLimit === undefined ? 'CPU' : '', c.memLimitBytes === undefined ? 'memory' : ''].filter(Boolean).join(' and ');
    out.push({
      check: 'dev-limits',
      environment: 'dev',
      severity: 'warning',
      message: `dev ${c.service} runs without a ${missing} limit: it can take the host from prod`,
      fix: `set deploy.resources.limits for ${c.service} in dev's overlay and redeploy dev (preflight checks this too)`,
    });
  }
  if (c.cpuOfLimit !== undefined && c.cpuOfLimit >= s['dev-limit-percent']) {
    out.push({
      check: 'dev-limits',
      environment: 'dev',
      severity: 'error',
      message: `dev ${c.service} uses ${c.cpuOfLimit} % of its ${formatCpus(c.cpuLimit as number)} limit (${c.cpuPercent} % of one CPU): it is throttled at its limit`,
      fix: `find what keeps ${c.service} busy, or give it more CPU within dev's share`,
    });
  }
  if (c.memOfLimit !== undefined && c.memOfLimit >= s['dev-limit-percent']) {
    out.push({
      check: 'dev-limits',
      environment: 'dev',
      severity: 'error',
      message: `dev ${c.service} uses ${c.memOfLimit} % of its ${formatBytes(c.memLimitBytes as number)} memory limit: it is about to be killed`,
      fix: `find what grows in ${c.service}, or give it more memory within dev's share`,
    });
  }
  return out;
}

function judgeDatabase(e: EnvMetrics, s: MonitorSettings): Finding[] {
  const severity = e.environment === 'prod' ? 'error' : 'warning';
  if (e.database) {
    if (e.database.percent <= s['db-connections-percent']) return [];
    return [
      {
        check: 'db-connections',
        environment: e.environment,
        severity,
        message: `${e.environment}'s database has ${e.database.connections} of ${e.database.max} connections in use (${e.database.percent} %, limit ${s['db-connections-percent']} %)`,
        fix: 'look for connection leaks or a pool sized above max_connections; raise max_connections only with the memory to back it',
      },
    ];
  }
  if (!e.databaseError) return [];
  return [
    {
      check: 'db-connections',
      environment: e.environment,
      severity,
      message: `${e.environment}'s database connections could not be counted: ${e.databaseError}`,
      fix: `check environments.${e.environment}.database and that the db container runs`,
    },
  ];
}

function judgeDisk(d: Metrics['disks'][number], s: MonitorSettings): Finding[] {
  if (d.error)
    return [
      {
        check: 'disk',
        environment: d.environment,
        severity: 'warning',
        message: `${d.label} (${d.path}) could not be measured: ${d.error}`,
        fix: `create ${d.path}, or correct the path in the config`,
      },
    ];
  if (!d.use || d.use.percent <= s['disk-percent']) return [];
  return [
    {
      check: 'disk',
      environment: d.environment,
      severity: 'error',
      message: `the file system of ${d.label} (${d.path}, on ${d.use.mountedOn}) is ${d.use.percent} % full, ${formatBytes(d.use.availableBytes)} left (limit ${s['disk-percent']} %)`,
      fix: 'free space (old backups, old images: docker image prune) or grow the disk',
    },
  ];
}

function judgeLatency(m: Metrics, s: MonitorSettings): Finding[] {
  if (!m.latency) {
    return m.latencyError
      ? [
          {
            check: 'latency',
            environment: 'prod',
            severity: 'error',
            message: `prod's health URL could not be measured: ${m.latencyError}`,
            fix: 'check that curl is installed on the host',
          },
        ]
      : [];
  }
  const out: Finding[] = [];
  const st = m.latency.stats;
  if (st.p99Ms !== undefined && st.p99Ms > s['latency-p99-ms']) {
    out.push({
      check: 'latency',
      environment: 'prod',
      severity: 'error',
      message: `prod's ${m.latency.url} P99 is ${st.p99Ms} ms over ${st.requests} requests (limit ${s['latency-p99-ms']} ms; P50 ${st.p50Ms} ms)`,
      fix: "look at prod's load and at dev's containers (dev must not starve prod)",
    });
  }
  if (st.errorRatePercent > s['error-rate-percent']) {
    out.push({
      check: 'error-rate',
      environment: 'prod',
      severity: 'error',
      message: `${st.errors} of ${st.requests} requests to prod's ${m.latency.url} failed (${st.errorRatePercent} %, limit ${s['error-rate-percent']} %)`,
      fix: "look at prod's api logs and container states",
    });
  }
  return out;
}
