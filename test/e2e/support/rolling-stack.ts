/**
 * The rolling fixture (test/fixtures/rolling) on this machine's Docker engine, reached through the
 * suite's own sshd as the actions reach a VPS: a Docker network the test creates, the service's
 * compose project on it (prod), a real Caddy in front publishing its port on 127.0.0.1 only, the
 * images v1, v2 and never-ready, and a load loop through the proxy. Shared by the e2e proof
 * (test/e2e/rolling.test.ts) and the bench (bench/rolling.ts).
 *
 * Every name starts with twinstack-test-<run>-roll- and carries the suites' test labels
 * (test-resources.ts), and all traffic stays on 127.0.0.1 or inside the network made here.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/domain/config';
import { Environment } from '../../../src/domain/environment';
import type { SshHost } from '../../../src/infra/ssh';
import { MemoryLogger } from '../../../src/infra/logger';
import { ROOT } from '../../harness/bundle';
import { connect } from '../../harness/connect';
import { freePort, waitForPort } from '../../harness/ports';
import { startSshd, type TestSshd } from '../../harness/sshd';
import { BASE_IMAGE, dockerProblem } from './fixture-host';
import { labelEnvLines, labelFlags, refuseRealStacks, removeTestResources, testName } from './test-resources';

export const PREFIX = testName('roll');
const CADDY = ['/usr/bin/caddy', '/usr/local/bin/caddy'].find((p) => fs.existsSync(p));

export type ImageName = 'v1' | 'v2' | 'never-ready';

export interface RollingStack {
  dir: string;
  sshd: TestSshd;
  host: SshHost;
  log: MemoryLogger;
  prod: Environment;
  /** The port on 127.0.0.1 where Caddy listens. */
  proxyPort: number;
  network: string;
  /** The image ids of v1, v2 and never-ready. */
  images: Record<ImageName, string>;
  /** Puts an image under the service's compose image name (what promote does with the gated image). */
  use(image: ImageName): void;
  /** The running containers of the service: short id and image id. */
  running(): Array<{ id: string; imageId: string }>;
  sh(command: string): string;
  /** The proxy's own error lines (the last few), to say why a request failed. */
  proxyErrors(): string;
  stop(): Promise<void>;
}

export function rollingProblem(): string | undefined {
  return dockerProblem() ?? (CADDY ? undefined : 'caddy is not installed: apt-get install caddy (or run .ci/install.sh)');
}

function sh(command: string, cwd?: string, env?: Record<string, string>): string {
  // DOCKER_BUILDKIT=0: the test engine has no bridge network, which BuildKit's RUN needs (see the test sshd).
  return execFileSync('bash', ['-c', command], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, DOCKER_BUILDKIT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 16 * 1024 * 1024,
  });
}

export async function startRollingStack(composeCommand: 'docker compose' | 'docker-compose'): Promise<RollingStack> {
  const problem = rollingProblem();
  if (problem) throw new Error(problem);
  refuseRealStacks();
  removeTestResources();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
  const checkout = path.join(dir, 'rolling');
  fs.cpSync(path.join(ROOT, 'test/fixtures/rolling'), checkout, { recursive: true });
  const project = `${PREFIX}-prod`;
  const network = `${PREFIX}-net`;
  fs.writeFileSync(path.join(checkout, '.env.prod'), `COMPOSE_PROJECT_NAME=${project}\nEDGE_NETWORK=${network}\nSTART_DELAY_MS=1500\n${labelEnvLines()}`);

  const repo = `${project}-api`;
  const images = {} as Record<ImageName, string>;
  for (const [name, args] of [
    ['v1', ['--build-arg', 'APP_VERSION=v1']],
    ['v2', ['--build-arg', 'APP_VERSION=v2']],
    ['never-ready', ['--build-arg', 'APP_VERSION=never-ready', '--build-arg', 'NEVER_READY=1']],
  ] as const) {
    sh(`docker build -q -t ${repo}:${name} ${labelFlags().join(' ')} ${args.join(' ')} .`, checkout);
    images[name] = sh(`docker image inspect --format '{{.Id}}' ${repo}:${name}`).trim();
  }
  sh(`docker network create ${labelFlags().join(' ')} ${network} >/dev/null`);

  const proxyPort = await freePort();
  // The proxy is no part of the app's compose project: like Makapix's caddy-docker-proxy it is shared
  // infrastructure, on the network the app's services join.
  runCaddy(`${PREFIX}-caddy`, network, path.join(checkout, 'Caddyfile'), { [proxyPort]: 8080 }, { UPSTREAM_NAME: repo });

  const config = parseConfig(
    stringify({
      'compose-command': composeCommand,
      'state-dir': path.join(dir, 'state'),
      environments: {
        prod: {
          checkout,
          project,
          'compose-files': ['docker-compose.yml'],
          'env-file': '.env.prod',
          url: `http://127.0.0.1:${proxyPort}`,
          'health-path': '/health',
          'health-timeout-seconds': 60,
          database: { name: 'none', user: 'none' },
        },
        dev: {
          checkout: path.join(dir, 'unused-dev'),
          project: `${PREFIX}-dev`,
          'compose-files': ['docker-compose.yml'],
          'env-file': '.env.dev',
          url: 'http://127.0.0.1:9',
          database: { name: 'none', user: 'none' },
        },
      },
      promote: { rolling: ['api'], 'drain-seconds': 10 },
    }),
    'rolling-stack',
  );
  const prod = new Environment('prod', config);
  const use = (image: ImageName) => sh(`docker tag ${repo}:${image} ${repo}:local`);
  use('v1');
  const compose = `${composeCommand} -f docker-compose.yml --env-file .env.prod -p ${project}`;
  sh(`${compose} up -d --no-build >/dev/null 2>&1`, checkout, { COMPOSE_PROJECT_NAME: project });

  const sshd = await startSshd();
  const log = new MemoryLogger();
  const host = await connect(sshd, {}, log);
  const stack: RollingStack = {
    dir,
    sshd,
    host,
    log,
    prod,
    proxyPort,
    network,
    images,
    use,
    running() {
      const out = sh(
        `docker ps -q --filter label=com.docker.compose.project=${project} --filter label=com.docker.compose.service=api | xargs -r docker inspect --format '{{.Id}} {{.Image}}'`,
      );
      return out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const [id, imageId] = l.split(' ');
          return { id: id.slice(0, 12), imageId };
        });
    },
    sh: (command) => sh(command, checkout),
    proxyErrors: () => sh(`docker logs ${PREFIX}-caddy 2>&1 | grep -i error | tail -n 5 || true`),
    async stop() {
      await host.close().catch(() => undefined);
      await sshd.stop();
      removeTestResources();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitForPort(proxyPort);
    await waitServing(proxyPort, 60_000);
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/**
 * Starts Debian's Caddy (the host's binary, bind-mounted) in a container of the fixture base image
 * on a network the test made, with the given Caddyfile; `publish` maps ports on 127.0.0.1 (only) to
 * ports in the container. Remove it with `docker rm -f <name>`.
 */
export function runCaddy(name: string, network: string, caddyfile: string, publish: Record<number, number>, env: Record<string, string> = {}): void {
  const problem = rollingProblem();
  if (problem) throw new Error(problem);
  const ports = Object.entries(publish).map(([hostPort, port]) => `-p 127.0.0.1:${hostPort}:${port}`);
  const vars = Object.entries(env).map(([k, v]) => `-e ${k}=${v}`);
  sh(
    `docker run -d --name ${name} ${labelFlags().join(' ')} --network ${network} ${ports.join(' ')} ${vars.join(' ')}` +
      ` -v ${CADDY}:/usr/bin/caddy:ro -v ${caddyfile}:/etc/caddy/Caddyfile:ro` +
      ` ${BASE_IMAGE} caddy run --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null`,
  );
}

/** Waits until a request through the proxy to `urlPath` answers 200. */
export async function waitServing(port: number, timeoutMs: number, urlPath = '/'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await request(port, 5000, urlPath);
    if (r.ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answers through the proxy on 127.0.0.1:${port} after ${timeoutMs} ms: ${r.error}`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

interface Answer {
  ok: boolean;
  version?: string;
  servedBy?: string;
  error?: string;
}

function request(port: number, timeoutMs: number, urlPath = '/'): Promise<Answer> {
  return new Promise((resolve) => {
    // A new connection per request, as from many clients: no keep-alive hides a closed upstream.
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        // The proxy names the container that answered (X-Upstream, its address): a failure says which one, old or new.
        const via = res.headers['x-upstream'];
        if (res.statusCode !== 200)
          return resolve({ ok: false, error: `HTTP ${res.statusCode}${via ? ` from ${String(via)}` : ''} ${body.slice(0, 400).trim()}` });
        try {
          const j = JSON.parse(body) as { version: string; served_by: string };
          resolve({ ok: true, version: j.version, servedBy: j.served_by });
        } catch {
          resolve({ ok: false, error: `not JSON: ${body.slice(0, 120)}` });
        }
      });
      res.on('error', (e) => resolve({ ok: false, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
  });
}

export interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  /** The first few failures, as text. */
  failures: string[];
  /**
   * Failures the api answered itself with its database error (HTTP 500, `"status": "error"`): the
   * proxy reached a running api, so the switch did not drop the request; the database did.
   */
  databaseErrors: number;
  /** The longest time without a successful answer (between two consecutive ones, by completion). */
  longestGapMs: number;
  /** Answers per version and per answering container. */
  versions: Record<string, number>;
  servedBy: Record<string, number>;
  /** Requests started while the switch ran (between markStart and markEnd). */
  duringSwitch: number;
}

export interface LoadLoop {
  /** Marks the switch's start and end, to count the requests sent while it ran. */
  markStart(): void;
  markEnd(): void;
  stop(): Promise<LoadResult>;
}

/** Sends `rps` requests a second through the proxy (to `urlPath`), each on its own, until stopped. */
export function startLoad(port: number, rps = 20, urlPath = '/'): LoadLoop {
  const answers: Array<Promise<void>> = [];
  const okTimes: number[] = [];
  const failures: string[] = [];
  const versions: Record<string, number> = {};
  const servedBy: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  let databaseErrors = 0;
  let switchStart = -1;
  let switchEnd = -1;
  const started = Date.now();
  const tick = setInterval(() => {
    sent++;
    answers.push(
      request(port, 30_000, urlPath).then((a) => {
        if (a.ok) {
          okTimes.push(Date.now());
          versions[a.version ?? '?'] = (versions[a.version ?? '?'] ?? 0) + 1;
          servedBy[a.servedBy ?? '?'] = (servedBy[a.servedBy ?? '?'] ?? 0) + 1;
        } else {
          failed++;
          if (/^HTTP 500 (from \S+ )?\{.*"status": "error"/s.test(a.error ?? '')) databaseErrors++;
          // Distinct messages only, each with when it first came (seconds into the loop), so one
          // repeated error does not hide the others.
          const text = a.error ?? 'failed';
          if (failures.length < 10 && !failures.some((f) => f.endsWith(text))) failures.push(`+${((Date.now() - started) / 1000).toFixed(1)} s: ${text}`);
        }
      }),
    );
  }, 1000 / rps);
  return {
    markStart: () => (switchStart = sent),
    markEnd: () => (switchEnd = sent),
    async stop() {
      clearInterval(tick);
      await Promise.all(answers);
      const times = [started, ...okTimes.sort((a, b) => a - b)];
      let longestGapMs = 0;
      for (let i = 1; i < times.length; i++) longestGapMs = Math.max(longestGapMs, times[i] - times[i - 1]);
      return {
        sent,
        ok: okTimes.length,
        failed,
        failures,
        databaseErrors,
        longestGapMs,
        versions,
        servedBy,
        duringSwitch: switchStart >= 0 && switchEnd >= 0 ? switchEnd - switchStart : 0,
      };
    },
  };
}
