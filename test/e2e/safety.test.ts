/**
 * Preflight and monitor, end to end: the bundled actions read the fixture host's real env files and
 * merged compose configurations, and measure its real containers, database and health URL. Each
 * deliberately broken state (a shared secret, a dev service without limits, a dev container pinned
 * at its CPU limit, a slow production endpoint) is made on the host, caught, and undone.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { BundleRun } from '../harness/bundle';
import { composeCommands, startFixtureHost, type FixtureHost } from './support/fixture-host';

interface Finding {
  check: string;
  environment: string;
  severity: 'error' | 'warning';
  message: string;
  fix: string;
}

interface Container {
  service: string;
  name: string;
  status: string;
  cpuPercent?: number;
  cpuLimit?: number;
  cpuOfLimit?: number;
  memLimitBytes?: number;
}

interface Metrics {
  docker: { available: boolean };
  environments: Array<{ environment: string; project: string; containers: Container[]; database?: { connections: number; max: number; percent: number } }>;
  disks: Array<{ label: string; path: string; use?: { percent: number } }>;
  latency?: { url: string; samples: Array<{ code: number; ms: number }>; stats: { requests: number; errors: number; p50Ms?: number; p99Ms?: number } };
  findings: Finding[];
}

/** Keys of the fixture env files whose values are secrets. */
const SECRET_KEYS = ['JWT_SECRET_KEY', 'DB_PASSWORD', 'APP_DB_PASSWORD', 'DEV_BASIC_AUTH_HASH'];

function errorLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith('::error'));
}

/** The value of `key` in an env file (quotes removed), or undefined. */
function envValue(file: string, key: string): string | undefined {
  const m = new RegExp(`^${key}=(.*)$`, 'm').exec(fs.readFileSync(file, 'utf8'));
  return m ? m[1].trim().replace(/^'(.*)'$/, '$1') : undefined;
}

const composeCommand = composeCommands()[0];

describe(`preflight and monitor on the fixture host with ${composeCommand}`, () => {
  let fx: FixtureHost;
  /** Every secret value in both env files, read before any test edits them. */
  const secrets: string[] = [];

  /**
   * No secret value anywhere a person or a later step could see it: log, summary, outputs. The
   * runner consumes `::add-mask::<value>` lines (how a value gets masked) and never shows them.
   */
  function assertNoSecrets(r: BundleRun): void {
    const outputs = JSON.stringify(r.outputs);
    const shown = r.stdout
      .split('\n')
      .filter((l) => !l.startsWith('::add-mask::'))
      .join('\n');
    assert.ok(r.stdout.split('\n').some((l) => l.startsWith('::add-mask::')) || secrets.length === 0, 'no value was masked');
    for (const s of secrets) {
      for (const [where, text] of [
        ['stdout', shown],
        ['stderr', r.stderr],
        ['summary', r.summary],
        ['outputs', outputs],
      ]) {
        assert.ok(!text.includes(s), `a secret value (${s.slice(0, 4)}…) appears in ${where}`);
      }
    }
  }

  const findings = (r: BundleRun): Finding[] => JSON.parse(r.outputs.findings) as Finding[];
  const metrics = (r: BundleRun): Metrics => JSON.parse(r.outputs.metrics) as Metrics;
  const worker = () => `${fx.project('dev')}-worker`;

  /** Runs monitor; the SVG chart it leaves on the runner is read into `chartSvg` and removed. */
  async function monitor(inputs: Record<string, string> = {}): Promise<BundleRun & { chartSvg?: string }> {
    const r = await fx.run('monitor', inputs);
    const file = r.outputs.chart;
    if (!file || !fs.existsSync(file)) return r;
    const chartSvg = fs.readFileSync(file, 'utf8');
    fs.rmSync(file, { force: true });
    return { ...r, chartSvg };
  }

  /** A copy of the fixture's config with some monitor settings changed; returns the `config` input for it. */
  function monitorConfig(name: string, settings: Record<string, number>): string {
    const base = parseYaml(fs.readFileSync(path.join(fx.workspace, '.github', 'twinstack.yml'), 'utf8')) as Record<string, unknown>;
    const file = `.github/twinstack.${name}.yml`;
    fs.writeFileSync(path.join(fx.workspace, file), toYaml({ ...base, monitor: { ...(base.monitor as object), ...settings } }));
    return file;
  }

  /** Edits a file for the duration of `body`, then puts it back byte for byte. */
  async function withEdit(file: string, edit: (text: string) => string, body: () => Promise<void>): Promise<void> {
    const original = fs.readFileSync(file);
    const changed = edit(original.toString('utf8'));
    assert.notEqual(changed, original.toString('utf8'), `the edit did not change ${file}`);
    fs.writeFileSync(file, changed);
    try {
      await body();
    } finally {
      fs.writeFileSync(file, original);
    }
  }

  before(async () => {
    fx = await startFixtureHost(composeCommand);
    for (const env of ['prod', 'dev'] as const) {
      for (const k of SECRET_KEYS) {
        const v = envValue(fx.envFile(env), k);
        if (v) secrets.push(v);
      }
    }
    assert.ok(secrets.length >= 7, `found only ${secrets.length} secret values in the env files`);
    // monitor measures the backup directory's disk too; on a host that has backed up, it exists.
    fs.mkdirSync(path.join(fx.dir, 'backups'), { recursive: true });
    // Both environments as they are meant to run; one after the other, as the workflows do.
    for (const env of ['prod', 'dev'] as const) {
      const d = await fx.run('deploy', { environment: env, ref: 'main' });
      assert.equal(d.code, 0, d.why);
    }
  });
  after(async () => {
    await fx?.stop();
  });

  describe('preflight', () => {
    it('passes on prod and dev as deployed, and shows no secret value', async (t) => {
      const r = await fx.run('preflight');
      assert.equal(r.code, 0, r.why);
      for (const f of findings(r)) t.diagnostic(`warning: ${f.check} (${f.environment}): ${f.message}`);
      assert.equal(r.outputs.errors, '0');
      assert.deepEqual(
        findings(r).filter((f) => f.severity === 'error'),
        [],
      );
      assert.equal(Number(r.outputs.warnings), findings(r).length);
      assert.deepEqual(errorLines(r.stdout), []);
      assert.match(r.summary, /No errors|Every isolation check passed/);
      assert.match(r.summary, /dev's limits: 1\.75 CPUs and 832 MiB over 3 services/);
      assert.match(r.summary, /network_mode: host/);
      assertNoSecrets(r);
    });

    it("catches dev's env file holding prod's JWT_SECRET_KEY, naming the key and never the value", async () => {
      const prodSecret = envValue(fx.envFile('prod'), 'JWT_SECRET_KEY') as string;
      await withEdit(
        fx.envFile('dev'),
        (t) => t.replace(/^JWT_SECRET_KEY=.*$/m, `JWT_SECRET_KEY=${prodSecret}`),
        async () => {
          const r = await fx.run('preflight');
          assert.equal(r.code, 1, r.why);
          assert.equal(r.outputs.errors, '1');
          const errs = findings(r).filter((f) => f.severity === 'error');
          assert.equal(errs.length, 1, JSON.stringify(errs));
          assert.equal(errs[0].check, 'must-differ');
          assert.equal(errs[0].environment, 'both');
          assert.match(errs[0].message, /^JWT_SECRET_KEY has the same value in prod's and dev's env files$/);
          assert.match(errs[0].fix, /JWT_SECRET_KEY/);
          assert.match(errorLines(r.stdout).at(-1) ?? '', /1 isolation error between prod and dev; first: JWT_SECRET_KEY has the same value/);
          assert.match(r.summary, /❌ \*\*1 error\*\*/);
          assert.match(r.summary, /\| must-differ \| both \| ❌ error \| JWT_SECRET_KEY has the same value/);
          assertNoSecrets(r);
        },
      );
      assert.equal(fx.sh('git status --porcelain', fx.checkout('dev')).trim(), '', "dev's checkout was not restored");
      const again = await fx.run('preflight');
      assert.equal(again.code, 0, again.why);
    });

    it('catches a dev service without limits in the merged compose configuration, naming the service', async () => {
      const overlay = path.join(fx.checkout('dev'), 'deploy/stack/docker-compose.dev.yml');
      // The worker's whole deploy block goes: dev's worker could take every CPU from prod.
      await withEdit(
        overlay,
        (t) => t.replace(/(\n {2}worker:\n {4}env_file: \.env\.dev)\n {4}deploy:\n(?: {6,}.*\n)+/, '$1\n'),
        async () => {
          const r = await fx.run('preflight');
          assert.equal(r.code, 1, r.why);
          const errs = findings(r).filter((f) => f.severity === 'error');
          assert.equal(r.outputs.errors, '1');
          assert.equal(errs.length, 1, JSON.stringify(errs));
          assert.equal(errs[0].check, 'dev-limits');
          assert.equal(errs[0].environment, 'dev');
          assert.match(errs[0].message, /^dev service worker has no CPU and no memory limit/);
          assert.match(errorLines(r.stdout).at(-1) ?? '', /1 isolation error between prod and dev; first: dev service worker has no CPU/);
          assertNoSecrets(r);
        },
      );
      assert.equal(fx.sh('git status --porcelain', fx.checkout('dev')).trim(), '', "dev's checkout was not restored");
    });
  });

  describe('monitor', () => {
    it('passes when nothing is wrong, with every measurement in its JSON output', async (t) => {
      // The design's thresholds, except latency: this shared test machine's own load alone has
      // pushed single health requests past 500 ms. The next tests hold prod to 500 ms.
      const r = await monitor({ config: monitorConfig('busy-test-host', { 'latency-p99-ms': 2000 }) });
      assert.equal(r.code, 0, r.why);
      assert.equal(r.outputs.breaches, '0');
      assertNoSecrets(r);
      const m = metrics(r);
      assert.deepEqual(
        m.findings.filter((f) => f.severity === 'error'),
        [],
      );
      assert.equal(m.docker.available, true);
      assert.deepEqual(
        m.environments.map((e) => [e.environment, e.project]),
        [
          ['prod', fx.project('prod')],
          ['dev', fx.project('dev')],
        ],
      );
      for (const e of m.environments) {
        assert.deepEqual(
          e.containers.map((c) => [c.service, c.name, c.status]),
          ['api', 'db', 'worker'].map((s) => [s, `${e.project}-${s}`, 'running']),
        );
        assert.ok(e.database && e.database.connections >= 1 && e.database.max >= e.database.connections, JSON.stringify(e.database));
      }
      const dev = m.environments[1].containers;
      assert.deepEqual(
        dev.map((c) => [c.service, c.cpuLimit, c.memLimitBytes]),
        [
          ['api', 0.5, 256 * 2 ** 20],
          ['db', 1, 512 * 2 ** 20],
          ['worker', 0.25, 64 * 2 ** 20],
        ],
      );
      assert.ok(
        m.environments[0].containers.every((c) => c.cpuLimit === undefined && c.memLimitBytes === undefined),
        'prod runs without limits',
      );
      assert.deepEqual(
        m.disks.map((d) => [d.label, d.path]),
        [
          ['prod vault', path.join(fx.dir, 'vault-prod')],
          ['dev vault', path.join(fx.dir, 'vault-dev')],
          ['backups', path.join(fx.dir, 'backups')],
        ],
      );
      assert.ok(m.disks.every((d) => d.use && d.use.percent >= 0 && d.use.percent <= 100));
      const lat = m.latency;
      assert.ok(lat, 'no latency measured');
      assert.equal(lat.url, `http://127.0.0.1:${fx.apiPort('prod')}/api/health`);
      assert.equal(lat.samples.length, 20);
      assert.ok(lat.samples.every((s) => s.code === 200));
      assert.equal(lat.stats.errors, 0);
      t.diagnostic(`prod health: P50 ${lat.stats.p50Ms} ms, P99 ${lat.stats.p99Ms} ms over ${lat.stats.requests} requests`);
      assert.ok((lat.stats.p99Ms as number) <= 2000);
      assert.match(r.summary, /✅ Every measurement is within its threshold/);
    });

    it('flags a dev container pinned at its CPU limit, naming the service', async (t) => {
      const pidFile = '/tmp/twinstack-burner.pid';
      // On a loaded 2-core test machine a busy loop does not always get the worker's 0.25 CPUs
      // (seen: 13 %), so the worker's limit is cut to 0.05 CPUs while the loop runs: pinned at its
      // limit whatever else runs beside it. Put back afterwards.
      const limit = 0.05;
      fx.sh(`docker update --cpus ${limit} ${worker()}`);
      fx.sh(`docker exec -d ${worker()} bash -c 'echo $$ > ${pidFile}; while :; do :; done'`);
      try {
        // docker stats must see the burner before monitor looks (it samples for about a second).
        let seen = 0;
        for (let i = 0; i < 30 && seen < 90 * limit; i++) {
          seen = Number.parseFloat(fx.sh(`docker stats --no-stream --format '{{.CPUPerc}}' ${worker()}`));
        }
        assert.ok(seen >= 90 * limit, `docker stats shows the burner at ${seen} % only`);
        // monitor's one docker stats sample spans about a second; on a busy host it can catch the
        // burner in a scheduling pause (seen: 13 % instead of 25 %), so it gets three chances.
        let r = await monitor();
        for (let attempt = 2; attempt <= 3 && !metrics(r).findings.some((f) => f.check === 'dev-limits'); attempt++) {
          t.diagnostic(`monitor did not flag the burner on attempt ${attempt - 1}; asking again`);
          r = await monitor();
        }
        assert.equal(r.code, 1, r.why);
        const limits = metrics(r).findings.filter((f) => f.check === 'dev-limits');
        assert.equal(limits.length, 1, JSON.stringify(limits));
        assert.equal(limits[0].severity, 'error');
        assert.equal(limits[0].environment, 'dev');
        assert.match(limits[0].message, /^dev worker uses [\d.]+ % of its 0\.05 CPUs limit \([\d.]+ % of one CPU\): it is throttled at its limit$/);
        const w = metrics(r).environments[1].containers.find((c) => c.service === 'worker');
        assert.ok(w && (w.cpuOfLimit as number) >= 90, JSON.stringify(w));
        t.diagnostic(`dev worker: ${w.cpuPercent} % of one CPU, ${w.cpuOfLimit} % of its limit`);
        assert.ok(
          errorLines(r.stdout).some((l) => l.includes('dev-limits (dev): dev worker uses')),
          r.visible,
        );
        assert.match(r.summary, /\| dev-limits \| dev \| ❌ error \| dev worker uses/);
        assertNoSecrets(r);
      } finally {
        fx.sh(`docker exec ${worker()} bash -c 'kill $(cat ${pidFile}) && rm -f ${pidFile}'`);
        fx.sh(`docker update --cpus 0.25 ${worker()}`);
      }
      assert.equal(fx.sh(`docker inspect -f '{{.HostConfig.NanoCpus}}' ${worker()}`).trim(), '250000000');
    });

    it('flags a slow production endpoint with its P99, and draws the samples', async (t) => {
      const knob = path.join(fx.dir, 'vault-prod', '.health-delay-ms');
      fs.writeFileSync(knob, '650\n');
      try {
        const r = await monitor();
        assert.equal(r.code, 1, r.why);
        const m = metrics(r);
        const lat = m.latency;
        assert.ok(lat, 'no latency measured');
        assert.equal(lat.samples.length, 20);
        assert.ok(
          lat.samples.every((s) => s.code === 200 && s.ms >= 650),
          JSON.stringify(lat.samples),
        );
        t.diagnostic(`slowed prod health: P50 ${lat.stats.p50Ms} ms, P99 ${lat.stats.p99Ms} ms`);
        const f = m.findings.find((x) => x.check === 'latency');
        assert.ok(f, JSON.stringify(m.findings));
        assert.equal(f.severity, 'error');
        assert.equal(f.environment, 'prod');
        assert.match(
          f.message,
          new RegExp(`^prod's http://127\\.0\\.0\\.1:${fx.apiPort('prod')}/api/health P99 is [\\d.]+ ms over 20 requests \\(limit 500 ms; P50 [\\d.]+ ms\\)$`),
        );
        assert.ok(
          m.findings.every((x) => x.check !== 'dev-limits'),
          'the burner was not stopped',
        );
        assert.match(errorLines(r.stdout).at(-1) ?? '', /threshold.* breached; first: .*P99 is/);
        // The summary's chart: 20 bars and the 500 ms line, which GitHub draws from Mermaid.
        const mermaid = /```mermaid\n([\s\S]*?)```/.exec(r.summary)?.[1] ?? '';
        assert.match(mermaid, /xychart-beta/);
        assert.equal(/bar \[([^\]]*)\]/.exec(mermaid)?.[1].split(', ').length, 20);
        assert.ok(
          /bar \[([^\]]*)\]/
            .exec(mermaid)?.[1]
            .split(', ')
            .every((v) => Number(v) >= 650),
          mermaid,
        );
        assert.match(mermaid, /line \[500(, 500){19}\]/);
        assert.match(r.summary, /\| latency \| prod \| ❌ error \|/);
        // And the SVG file for an artifact.
        assert.match(r.outputs.chart, /twinstack-latency-\d+\.svg$/);
        const svg = r.chartSvg ?? '';
        assert.match(svg, /^<svg /);
        assert.equal(svg.match(/<rect class="sample"/g)?.length, 20);
        assert.match(svg, /P99 limit 500 ms/);
        assertNoSecrets(r);
      } finally {
        fs.rmSync(knob, { force: true });
      }
    });
  });
});
