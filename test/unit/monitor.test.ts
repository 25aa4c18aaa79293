/**
 * Monitor's parsers (on output captured from the real commands), its judgement against the
 * design's thresholds, and its pictures.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { diskPaths, monitorSummary, type MonitorReport } from '../../src/actions/monitor/monitor';
import { parseConfig, type Config } from '../../src/domain/config';
import { latencyMermaid, latencySvg, niceCeiling, sparkline } from '../../src/safety/chart';
import { counts } from '../../src/safety/findings';
import {
  latencyStats,
  parseConnections,
  parseContainerLimits,
  parseDf,
  parseDockerStats,
  parseTimings,
  percentile,
  type Sample,
} from '../../src/safety/metrics';
import { combineContainers, judgeMetrics, type EnvironmentMetrics, type Metrics } from '../../src/safety/monitoring';
import { parseDockerSize } from '../../src/infra/units';

const samples = path.join(__dirname, '../fixtures/preflight/samples');
const read = (f: string) => fs.readFileSync(path.join(samples, f), 'utf8');
const config: Config = parseConfig(fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8'), 'makapix.yml');

describe('parsing what the host prints', () => {
  it('reads docker stats --no-stream --format {{json .}}', () => {
    const rows = parseDockerStats(read('docker-stats.jsonl'));
    assert.equal(rows.length, 3);
    const hog = rows.find((r) => r.name === 'twinstack-sample-hog')!;
    assert.equal(hog.memPercent, 92.21);
    assert.equal(hog.memUsageBytes, Math.round(59.01 * 1024 ** 2));
    assert.equal(hog.memLimitBytes, 64 * 1024 ** 2);
    const burner = rows.find((r) => r.name === 'twinstack-sample-burner')!;
    assert.equal(burner.cpuPercent, 20.41);
    assert.equal(burner.id, '45639a2d6761');
  });

  it('skips lines that are not stats', () => {
    assert.deepEqual(parseDockerStats('WARNING: something\n\n{broken json\n'), []);
  });

  it('reads sizes the way docker stats writes them', () => {
    assert.equal(parseDockerSize('772KiB'), 772 * 1024);
    assert.equal(parseDockerSize('23.54GiB'), Math.round(23.54 * 1024 ** 3));
    assert.equal(parseDockerSize('0B'), 0);
    assert.equal(parseDockerSize('1.2kB'), 1200);
    assert.equal(parseDockerSize('12MB'), 12_000_000);
  });

  it('reads limits, OOM kills and states from docker inspect', () => {
    const limits = parseContainerLimits(read('docker-inspect.json'));
    assert.deepEqual(
      limits.map((l) => [l.service, l.status, l.cpus, l.memoryBytes, l.oomKilled]),
      [
        ['burner', 'running', 0.2, 64 * 1024 ** 2, false],
        ['hog', 'running', 0.5, 64 * 1024 ** 2, false],
        ['idle', 'running', undefined, undefined, false],
        ['oom', 'exited', undefined, 32 * 1024 ** 2, true],
      ],
    );
    assert.deepEqual(parseContainerLimits('[]'), []);
  });

  it('reads psql connection counts', () => {
    assert.deepEqual(parseConnections('7\n100\n'), { connections: 7, max: 100 });
    assert.equal(parseConnections('ERROR: nope\n'), undefined);
  });

  it('reads df -P', () => {
    const root = parseDf(read('df-root.txt'))!;
    assert.equal(root.filesystem, '/dev/vda');
    assert.equal(root.percent, 23);
    assert.equal(root.mountedOn, '/');
    assert.equal(root.sizeBytes, 264212084 * 1024);
    const shm = parseDf(read('df-shm.txt'))!;
    assert.deepEqual([shm.filesystem, shm.percent, shm.usedBytes, shm.mountedOn], ['tmpfs', 0, 0, '/dev/shm']);
    assert.equal(parseDf('df: /x: No such file or directory\n'), undefined);
  });

  it("reads curl -w '%{http_code} %{time_total}' lines, answered or not", () => {
    const s = parseTimings(read('curl-timings.txt'));
    assert.equal(s.length, 13);
    assert.deepEqual(s[0], { code: 200, ms: 12.95 });
    assert.deepEqual(s[6], { code: 503, ms: 6.57 });
    assert.deepEqual(s[11], { code: 0, ms: 0.17 });
    assert.deepEqual(s[12], { code: 0, ms: 201.11 });
  });
});

describe('latency statistics', () => {
  it('uses nearest-rank percentiles', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(v, 50), 50);
    assert.equal(percentile(v, 99), 99);
    assert.equal(percentile([5], 99), 5);
    assert.equal(percentile([], 50), undefined);
    assert.equal(percentile([3, 1, 2], 50), 2);
  });

  it('counts failures (no answer, 400 and up) and leaves unanswered requests out of the percentiles', () => {
    const st = latencyStats(parseTimings(read('curl-timings.txt')));
    assert.equal(st.requests, 13);
    assert.equal(st.errors, 3);
    assert.equal(st.errorRatePercent, 23.1);
    assert.equal(st.p50Ms, 6.52);
    assert.equal(st.p99Ms, 603.6);
  });
});

function env(environment: 'prod' | 'dev', over: Partial<EnvironmentMetrics> = {}): EnvironmentMetrics {
  const api = {
    service: 'api',
    name: `makapix-${environment}-api`,
    status: 'running',
    cpuPercent: 3,
    cpuLimit: 0.5,
    cpuOfLimit: 6,
    memUsageBytes: 100 * 1024 ** 2,
    memLimitBytes: 512 * 1024 ** 2,
    memOfLimit: 19.5,
    oomKilled: false,
    restartCount: 0,
  };
  return { environment, project: `makapix-${environment}`, containers: [api], database: { connections: 10, max: 100, percent: 10 }, ...over };
}

function metrics(over: Partial<Metrics> = {}): Metrics {
  const fast: Sample[] = Array.from({ length: 20 }, (_, i) => ({ code: 200, ms: 20 + i }));
  return {
    time: '2026-01-01T00:00:00.000Z',
    docker: { available: true, version: '20.10.24' },
    environments: [env('prod'), env('dev')],
    disks: [{ label: 'prod vault', environment: 'prod', path: '/mnt/vault-1', use: parseDf(read('df-root.txt')) }],
    latency: { url: 'https://makapix.club/api/health', samples: fast, stats: latencyStats(fast) },
    ...over,
  };
}

const judge = (m: Metrics) => judgeMetrics(m, config.monitor);

describe("judging against the design's thresholds", () => {
  it('passes healthy numbers', () => {
    assert.deepEqual(judge(metrics()), []);
  });

  it('flags a dev container pinned at its CPU limit and one about to hit its memory limit (captured from real containers)', () => {
    const containers = combineContainers(parseDockerStats(read('docker-stats.jsonl')), parseContainerLimits(read('docker-inspect.json')));
    const f = judge(metrics({ environments: [env('prod'), env('dev', { containers })] }));
    const msgs = f.map((x) => `${x.severity} ${x.check}: ${x.message}`);
    assert.ok(
      msgs.includes('error dev-limits: dev burner uses 102.1 % of its 0.2 CPUs limit (20.41 % of one CPU): it is throttled at its limit'),
      msgs.join('\n'),
    );
    assert.ok(
      msgs.some((m) => /^error dev-limits: dev hog uses 92\.2 % of its 64 MiB memory limit/.test(m)),
      msgs.join('\n'),
    );
    assert.ok(msgs.some((m) => /^error memory: dev oom was killed for running out of memory \(limit 32 MiB\)/.test(m)));
    assert.ok(msgs.some((m) => /^warning dev-limits: dev idle runs without a CPU and memory limit/.test(m)));
    assert.ok(msgs.some((m) => /^warning containers: dev oom \(twinstack-sample-oom\) is exited/.test(m)));
  });

  it('does not hold prod containers to dev limits', () => {
    const containers = combineContainers(parseDockerStats(read('docker-stats.jsonl')), parseContainerLimits(read('docker-inspect.json')));
    const f = judge(metrics({ environments: [env('prod', { containers }), env('dev')] }));
    assert.ok(!f.some((x) => x.check === 'dev-limits'));
  });

  it('flags prod latency with P99 over 500 ms', () => {
    const slow: Sample[] = [...Array.from({ length: 19 }, () => ({ code: 200, ms: 40 })), { code: 200, ms: 603.6 }];
    const f = judge(metrics({ latency: { url: 'https://makapix.club/api/health', samples: slow, stats: latencyStats(slow) } }));
    assert.equal(f.length, 1);
    assert.match(f[0].message, /^prod's https:\/\/makapix\.club\/api\/health P99 is 603\.6 ms over 20 requests \(limit 500 ms; P50 40 ms\)$/);
  });

  it('flags an error rate over the limit', () => {
    const s: Sample[] = [...Array.from({ length: 18 }, () => ({ code: 200, ms: 10 })), { code: 503, ms: 5 }, { code: 0, ms: 0.2 }];
    const f = judge(metrics({ latency: { url: 'u', samples: s, stats: latencyStats(s) } }));
    assert.deepEqual(
      f.map((x) => x.message),
      ["2 of 20 requests to prod's u failed (10 %, limit 5 %)"],
    );
  });

  it('flags prod database connections over 80 % of the pool, and only warns for dev', () => {
    const f = judge(
      metrics({
        environments: [
          env('prod', { database: { connections: 81, max: 100, percent: 81 } }),
          env('dev', { database: { connections: 45, max: 50, percent: 90 } }),
        ],
      }),
    );
    assert.deepEqual(
      f.map((x) => [x.environment, x.severity]),
      [
        ['prod', 'error'],
        ['dev', 'warning'],
      ],
    );
    assert.match(f[0].message, /81 of 100 connections in use \(81 %, limit 80 %\)/);
    assert.equal(judge(metrics({ environments: [env('prod', { database: { connections: 80, max: 100, percent: 80 } }), env('dev')] })).length, 0);
  });

  it('flags a vault disk over 80 %', () => {
    const full = { ...parseDf(read('df-root.txt'))!, percent: 81 };
    const f = judge(metrics({ disks: [{ label: 'dev vault', environment: 'dev', path: '/mnt/vault-dev', use: full }] }));
    assert.equal(f.length, 1);
    assert.match(f[0].message, /^the file system of dev vault \(\/mnt\/vault-dev, on \/\) is 81 % full/);
  });

  it('reports a missing backup directory as a warning', () => {
    const f = judge(metrics({ disks: [{ label: 'backups', environment: 'host', path: '/var/lib/twinstack/backups', error: 'No such file or directory' }] }));
    assert.deepEqual(
      f.map((x) => x.severity),
      ['warning'],
    );
  });

  it('reports docker not answering as a finding, not a crash', () => {
    const f = judge(
      metrics({
        docker: { available: false, error: 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' },
        environments: [
          env('prod', { database: undefined, databaseError: 'not measured: docker did not answer' }),
          env('dev', { database: undefined, databaseError: 'not measured: docker did not answer' }),
        ],
      }),
    );
    assert.equal(f[0].check, 'docker');
    assert.equal(f[0].severity, 'error');
    assert.match(f[0].message, /^docker did not answer on the host, so container and database metrics are missing: Cannot connect to the Docker daemon/);
    assert.ok(!f.some((x) => x.check === 'containers'), 'no second finding per environment for the same cause');
  });

  it('has the design defaults when the config has no monitor section', () => {
    const m = config.monitor;
    assert.deepEqual([m['latency-p99-ms'], m['db-connections-percent'], m['disk-percent'], m.requests], [500, 80, 80, 20]);
    assert.deepEqual(
      diskPaths(config).map((d) => d.path),
      ['/mnt/vault-1', '/mnt/vault-dev', '/var/backups/twinstack'],
    );
  });
});

describe('pictures of the latency samples', () => {
  const s = parseTimings(read('curl-timings.txt'));

  it('draws one bar per request, failures in red, and the threshold as a dashed line', () => {
    const svg = latencySvg(s, { thresholdMs: 500, title: 'prod <health> & "latency"' });
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="640" height="220"/);
    assert.ok(svg.endsWith('</svg>'));
    assert.equal((svg.match(/<rect class="sample"/g) ?? []).length, 13);
    assert.equal((svg.match(/fill="#cf222e"><title>request/g) ?? []).length, 3, 'the 503 and the two unanswered requests are red');
    assert.equal((svg.match(/fill="#bf8700"/g) ?? []).length, 3, 'the three 600 ms answers are over the limit');
    // Axis max is a nice number above the slowest sample: 1000 ms; 500 ms sits half way up the 164 px plot.
    assert.match(svg, /<line class="threshold" x1="64" y1="110" x2="628" y2="110"/);
    assert.ok(svg.includes('prod &lt;health&gt; &amp; &quot;latency&quot;'));
    assert.ok(!svg.includes('<health>'));
    // Every opened element is closed.
    const opened = (svg.match(/<(rect|text|title|svg)\b([^>]*[^/>])?>/g) ?? []).length;
    const closed = (svg.match(/<\/(rect|text|title|svg)>/g) ?? []).length;
    assert.equal(opened, closed);
  });

  it('draws an empty chart for no samples', () => {
    const svg = latencySvg([], { thresholdMs: 500, title: 't' });
    assert.equal((svg.match(/<rect class="sample"/g) ?? []).length, 0);
    assert.match(svg, /0 requests, in order/);
  });

  it('picks nice axis maxima', () => {
    assert.deepEqual([niceCeiling(603.6), niceCeiling(600), niceCeiling(120), niceCeiling(0)], [1000, 1000, 200, 1]);
  });

  it('writes a Mermaid chart GitHub can draw in a job summary', () => {
    const m = latencyMermaid(s.slice(0, 3), { thresholdMs: 500, title: 'prod "health"' });
    assert.equal(
      m,
      [
        '```mermaid',
        'xychart-beta',
        `    title "prod 'health'"`,
        '    x-axis "request" [1, 2, 3]',
        '    y-axis "ms" 0 --> 1000',
        '    bar [13, 6, 6]',
        '    line [500, 500, 500]',
        '```',
      ].join('\n'),
    );
  });

  it('writes a sparkline with failures marked', () => {
    assert.equal(sparkline(s), '▁▁▁▁▁▁✖▁███✖✖');
  });
});

describe('the summary', () => {
  it('shows the verdict, the findings, each environment, the disks and the latency chart', () => {
    const containers = combineContainers(parseDockerStats(read('docker-stats.jsonl')), parseContainerLimits(read('docker-inspect.json')));
    const m = metrics({ environments: [env('prod'), env('dev', { containers })] });
    const findings = judge(m);
    const report: MonitorReport = { metrics: m, findings, breaches: counts(findings).errors, warnings: counts(findings).warnings };
    const md = monitorSummary(report, config).toMarkdown();
    assert.match(md, /^## twinstack monitor\n\n❌ \*\*3 thresholds breached\*\*, 2 warnings/);
    assert.match(md, /\| burner \| running \| 20\.41 % \| 0\.2 CPUs \(102\.1 % used\) \| 400 KiB \| 64 MiB \(0\.6 % used\) \|/);
    assert.match(md, /database connections: 10 of 100 \(10 %; limit 80 %\)/);
    assert.match(md, /\| prod vault \| \/mnt\/vault-1 \| \/ \|/);
    assert.match(md, /```mermaid\nxychart-beta/);
    assert.match(md, /P99 \| slowest/);
  });
});
