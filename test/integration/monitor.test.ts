/**
 * Monitor against a real OpenSSH server and a real PostgreSQL: the latency probe runs curl on the
 * host against local HTTP endpoints (a slow one is flagged), connections are counted with psql on
 * the host, disks with df. A Docker engine that does not answer is a finding, not a crash; where an
 * engine is available, a dev container pinned at its CPU limit is flagged.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from 'pg';
import { monitorSummary, runMonitor } from '../../src/actions/monitor/monitor';
import { parseConfig, type Config } from '../../src/domain/config';
import type { Host } from '../../src/infra/host';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let pg: TestPostgres;
let host: SshHost;
let root: string;
const log = new MemoryLogger();
const id = `${process.pid}`;

interface Endpoint {
  url: string;
  close(): Promise<void>;
}

/** A health endpoint on 127.0.0.1 that answers after `delayMs`. */
async function endpoint(delayMs: number, status = 200): Promise<Endpoint> {
  const server = http.createServer((_req, res) => {
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    }, delayMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function config(prodUrl: string, extra = ''): Config {
  for (const d of ['vault-prod', 'vault-dev', 'backups']) fs.mkdirSync(path.join(root, d), { recursive: true });
  return parseConfig(
    `environments:
  prod:
    checkout: ${root}/prod
    project: twinstack-it-prod-${id}
    compose-files: [docker-compose.yml]
    env-file: .env
    url: ${prodUrl}
    health-path: /api/health
    database: {name: postgres, user: ${pg.user}, port: ${pg.port}, via: host}
    vault: ${root}/vault-prod
  dev:
    checkout: ${root}/dev
    project: twinstack-it-dev-${id}
    compose-files: [docker-compose.yml]
    env-file: .env
    url: http://127.0.0.1:1
    # The same test server as prod's, by another name (the config refuses one address for both).
    database: {name: postgres, user: ${pg.user}, host: localhost, port: ${pg.port}, via: host}
    vault: ${root}/vault-dev
monitor:
  requests: 6
  request-timeout-seconds: 5
  backup-dir: ${root}/backups
${extra}`,
    'twinstack.yml',
  );
}

/** The same host, with extra environment variables on every command (to point docker at nothing). */
function withEnv(h: Host, env: Record<string, string>): Host {
  return {
    name: h.name,
    addFence: (f) => h.addFence(f),
    halt: () => h.halt(),
    run: (script, options = {}) => h.run(script, { ...options, env: { ...env, ...(options.env ?? {}) } }),
    spawn: (script, options = {}) => h.spawn(script, { ...options, env: { ...env, ...(options.env ?? {}) } }),
    writeFile: (p, c, m) => h.writeFile(p, c, m),
    readFile: (p) => h.readFile(p),
    forward: (a, b) => h.forward(a, b),
    traffic: () => h.traffic(),
    close: () => h.close(),
  };
}

before(async () => {
  [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  host = await connect(sshd, {}, log);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-monitor-'));
});
after(async () => {
  await host?.close();
  await Promise.all([sshd?.stop(), pg?.stop()]);
  fs.rmSync(root, { recursive: true, force: true });
});

const noDocker = (h: Host) => withEnv(h, { DOCKER_HOST: 'unix:///nonexistent/twinstack-test.sock' });

describe('monitor over SSH', () => {
  it('flags a slow production endpoint, measured from the host', async () => {
    const slow = await endpoint(600);
    try {
      const r = await runMonitor(noDocker(host), config(slow.url), log);
      const lat = r.metrics.latency!;
      assert.equal(lat.url, `${slow.url}/api/health`);
      assert.equal(lat.samples.length, 6);
      assert.ok(
        lat.samples.every((s) => s.code === 200 && s.ms >= 600),
        JSON.stringify(lat.samples),
      );
      const f = r.findings.find((x) => x.check === 'latency')!;
      assert.equal(f.severity, 'error');
      assert.match(f.message, new RegExp(`^prod's ${slow.url}/api/health P99 is \\d+(\\.\\d+)? ms over 6 requests \\(limit 500 ms; P50 `));
    } finally {
      await slow.close();
    }
  });

  it('passes a fast endpoint, counts database connections and measures the disks', async () => {
    const fast = await endpoint(0);
    const clients = await Promise.all(
      [1, 2, 3].map(async () => {
        const c = new Client({ host: '127.0.0.1', port: pg.port, user: pg.user, database: 'postgres' });
        await c.connect();
        return c;
      }),
    );
    try {
      const r = await runMonitor(noDocker(host), config(fast.url, `  disk-paths: [${root}/not-there]\n`), log);
      assert.ok(!r.findings.some((f) => f.check === 'latency' || f.check === 'error-rate'), JSON.stringify(r.findings));
      assert.equal(r.metrics.latency?.stats.errors, 0);
      for (const e of r.metrics.environments) {
        assert.equal(e.database?.max, 100);
        // Our three sessions and psql's own; PostgreSQL's background workers are not counted.
        assert.ok(e.database.connections >= 4 && e.database.connections < 20, String(e.database.connections));
      }
      const disks = Object.fromEntries(r.metrics.disks.map((d) => [d.label, d]));
      assert.deepEqual(Object.keys(disks), ['prod vault', 'dev vault', 'backups', `${root}/not-there`]);
      assert.ok(disks['prod vault'].use!.sizeBytes > 0);
      assert.match(disks[`${root}/not-there`].error!, /No such file or directory/);
      assert.ok(r.findings.some((f) => f.check === 'disk' && f.severity === 'warning'));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
      await fast.close();
    }
  });

  it('reports a Docker engine that does not answer as a finding, and still measures the rest', async () => {
    const fast = await endpoint(0);
    try {
      const r = await runMonitor(noDocker(host), config(fast.url), log);
      assert.equal(r.metrics.docker.available, false);
      assert.match(r.metrics.docker.error!, /Cannot connect to the Docker daemon at unix:\/\/\/nonexistent\/twinstack-test\.sock/);
      const docker = r.findings.filter((f) => f.check === 'docker');
      assert.equal(docker.length, 1);
      assert.equal(docker[0].severity, 'error');
      assert.equal(r.breaches, 1);
      assert.ok(r.metrics.environments.every((e) => e.database && e.containers.length === 0));
      assert.ok(r.metrics.latency);
      assert.match(monitorSummary(r, config(fast.url)).toMarkdown(), /docker: did not answer/);
    } finally {
      await fast.close();
    }
  });

  it('counts failed health requests', async () => {
    const failing = await endpoint(0, 503);
    try {
      const r = await runMonitor(noDocker(host), config(failing.url), log);
      const f = r.findings.find((x) => x.check === 'error-rate')!;
      assert.match(f.message, /^6 of 6 requests to prod's .* failed \(100 %, limit 5 %\)$/);
    } finally {
      await failing.close();
    }
  });
});

const IMAGE = 'twinstack-fixture-base:latest';
const dockerMissing =
  spawnSync('docker', ['info'], { stdio: 'ignore' }).status !== 0
    ? 'no Docker engine answers here'
    : spawnSync('docker', ['image', 'inspect', IMAGE], { stdio: 'ignore' }).status !== 0
      ? `image ${IMAGE} is missing (test/e2e/support/base-image.sh builds it)`
      : undefined;

describe('containers on a real Docker engine', { skip: dockerMissing }, () => {
  it('flags a dev container pinned at its CPU limit and leaves a healthy one alone', async () => {
    const started: string[] = [];
    const run = (service: string, args: string[], cmd: string[]) => {
      const r = spawnSync(
        'docker',
        [
          'run',
          '-d',
          '--label',
          `com.docker.compose.project=twinstack-it-dev-${id}`,
          '--label',
          `com.docker.compose.service=${service}`,
          ...args,
          IMAGE,
          ...cmd,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 0, r.stderr);
      started.push(r.stdout.trim());
    };
    const fast = await endpoint(0);
    try {
      run('burner', ['--cpus', '0.1', '--memory', '64m'], ['sh', '-c', 'while :; do :; done']);
      run('idle', ['--cpus', '0.5', '--memory', '64m'], ['sleep', '300']);
      // docker stats needs two readings of a running container to give a CPU figure.
      await new Promise((r) => setTimeout(r, 3000));
      const r = await runMonitor(host, config(fast.url), log);
      const dev = r.metrics.environments.find((e) => e.environment === 'dev')!;
      assert.deepEqual(
        dev.containers.map((c) => [c.service, c.status, c.cpuLimit, c.memLimitBytes]),
        [
          ['burner', 'running', 0.1, 64 * 1024 ** 2],
          ['idle', 'running', 0.5, 64 * 1024 ** 2],
        ],
      );
      const limits = r.findings.filter((f) => f.check === 'dev-limits');
      assert.equal(limits.length, 1, JSON.stringify(r.findings));
      assert.match(limits[0].message, /^dev burner uses \d+(\.\d+)? % of its 0\.1 CPUs limit/);
      assert.ok(r.findings.some((f) => f.check === 'containers' && f.environment === 'prod' && /no containers found/.test(f.message)));
    } finally {
      spawnSync('docker', ['rm', '-f', ...started], { stdio: 'ignore' });
      await fast.close();
    }
  });
});
