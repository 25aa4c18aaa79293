/**
 * Parsers for what monitor reads on the host: `docker stats --no-stream --format '{{json .}}'`,
 * `docker inspect`, psql's connection counts, `df -P`, and curl's `-w '%{http_code} %{time_total}\n'`.
 * Each is pure and tested against output captured from the real commands.
 */
import { z } from 'zod';
import { parseDockerSize, scalarText } from '../infra/units';
import { shortId } from '../infra/docker';
import { parseContainerInspect } from '../infra/docker-inspect';
import { parseHostJson } from '../infra/json';
import { TASK_LABELS, stackServiceName } from '../infra/swarm';

export interface StatsRow {
  name: string;
  id: string;
  /** Percent of one CPU (200 means two CPUs busy), as docker stats reports it. */
  cpuPercent: number;
  memUsageBytes: number;
  /** The container's memory limit, or the host's memory when it has none. */
  memLimitBytes: number;
  memPercent: number;
}

const percent = (s: unknown) => (typeof s === 'string' && /^\s*[\d.]+\s*%\s*$/.test(s) ? Number(s.replace('%', '')) : NaN);

/** One JSON object per line; lines that are not (warnings, blank) are skipped. */
export function parseDockerStats(text: string): StatsRow[] {
  const out: StatsRow[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    let o: Record<string, unknown>;
    try {
      // Each field is read leniently below (scalarText, percent): the line need only be an object.
      o = parseHostJson(z.record(z.unknown()), t, 'a docker stats line');
    } catch {
      continue;
    }
    const [used, limit] = scalarText(o.MemUsage)
      .split('/')
      .map((x) => parseDockerSize(x));
    out.push({
      name: scalarText(o.Name).replace(/^\//, ''),
      id: scalarText(o.ID ?? o.Container),
      cpuPercent: percent(o.CPUPerc),
      memUsageBytes: used ?? NaN,
      memLimitBytes: limit ?? NaN,
      memPercent: percent(o.MemPerc),
    });
  }
  return out;
}

export interface ContainerLimits {
  name: string;
  id: string;
  service: string;
  status: string;
  /** CPUs the container may use (NanoCpus, or CpuQuota / CpuPeriod); undefined when unlimited. */
  cpus?: number;
  memoryBytes?: number;
  oomKilled: boolean;
  restartCount: number;
}

/** `docker inspect` of containers, each named by its compose service, or by its service in `stack` for a stack's task containers. */
export function parseContainerLimits(json: string, stack?: string): ContainerLimits[] {
  return parseContainerInspect(json)
    .map((c) => {
      const h = c.HostConfig ?? {};
      const quota = h.CpuQuota && h.CpuQuota > 0 ? h.CpuQuota / (h.CpuPeriod && h.CpuPeriod > 0 ? h.CpuPeriod : 100_000) : undefined;
      const nano = h.NanoCpus && h.NanoCpus > 0 ? h.NanoCpus / 1e9 : undefined;
      return {
        name: c.Name.replace(/^\//, ''),
        id: shortId(c.Id),
        service:
          stack === undefined
            ? (c.Config?.Labels?.['com.docker.compose.service'] ?? '')
            : (stackServiceName(stack, c.Config?.Labels?.[TASK_LABELS.service]) ?? ''),
        status: c.State?.Status ?? 'unknown',
        cpus: nano ?? quota,
        memoryBytes: h.Memory && h.Memory > 0 ? h.Memory : undefined,
        oomKilled: c.State?.OOMKilled === true,
        restartCount: c.RestartCount ?? 0,
      };
    })
    .sort((a, b) => a.service.localeCompare(b.service) || a.name.localeCompare(b.name));
}

/** `psql -A -t -c 'select count(*) ...' -c 'show max_connections'`: two numbers, one a line. */
export function parseConnections(text: string): { connections: number; max: number } | undefined {
  const nums = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
  if (nums.length < 2 || !(nums[1] > 0)) return undefined;
  return { connections: nums[0], max: nums[1] };
}

export interface DiskUse {
  filesystem: string;
  sizeBytes: number;
  usedBytes: number;
  availableBytes: number;
  /** df's Capacity: used / (used + available), rounded up, as a percentage. */
  percent: number;
  mountedOn: string;
}

/** The data line of `df -P <path>` (1024-byte blocks; POSIX output never wraps). */
export function parseDf(text: string): DiskUse | undefined {
  for (const line of text.split('\n')) {
    const m = /^(\S.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)%\s+(\/.*)$/.exec(line.trimEnd());
    if (!m) continue;
    return {
      filesystem: m[1],
      sizeBytes: Number(m[2]) * 1024,
      usedBytes: Number(m[3]) * 1024,
      availableBytes: Number(m[4]) * 1024,
      percent: Number(m[5]),
      mountedOn: m[6],
    };
  }
  return undefined;
}

export interface Sample {
  /** HTTP status; 0 when no answer came (refused, timed out). */
  code: number;
  ms: number;
}

/** Lines of `curl -w '%{http_code} %{time_total}\n'` (time_total in seconds). */
export function parseTimings(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d{3})\s+(\d+(?:[.,]\d+)?)\s*$/.exec(line);
    if (m) out.push({ code: Number(m[1]), ms: Math.round(Number(m[2].replace(',', '.')) * 1000 * 100) / 100 });
  }
  return out;
}

/** Nearest-rank percentile: the smallest sample with at least p % of samples at or below it. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

export interface LatencyStats {
  requests: number;
  /** Requests with no answer or a status of 400 or more. */
  errors: number;
  errorRatePercent: number;
  /** Over the requests that were answered. */
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
}

export const isFailure = (s: Sample) => s.code === 0 || s.code >= 400;

export function latencyStats(samples: readonly Sample[]): LatencyStats {
  const answered = samples.filter((s) => s.code !== 0).map((s) => s.ms);
  const errors = samples.filter(isFailure).length;
  return {
    requests: samples.length,
    errors,
    errorRatePercent: samples.length ? Math.round((errors / samples.length) * 1000) / 10 : 0,
    p50Ms: percentile(answered, 50),
    p99Ms: percentile(answered, 99),
    maxMs: answered.length ? Math.max(...answered) : undefined,
  };
}
