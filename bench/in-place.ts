/**
 * In-place switch bench: how long prod's api refuses requests while its containers are replaced in
 * place (no rolling service), under docker compose v2 and docker-compose v1 in one run. The fixture
 * app (db, api, worker) with the worker on the api's image, as Makapix's Celery worker is, so both
 * are recreated by each switch; the worker takes its whole stop grace period (10 s) to stop, as a
 * worker finishing its task does. Each compose command switches the api main → second → main, twice,
 * by switchServices (what promote and rollback do with no rolling service). The api is polled every
 * 100 ms on 127.0.0.1.
 *
 * Why: one `docker compose up -d` (v2) first replaces every changed container, stopping each old
 * one, and starts the new ones only when all are replaced: the api was down for the worker's 10 s
 * stop (12.9–14.1 s, against 2.0–4.0 s under v1). docker-compose v1 stops and starts each service on
 * its own. switchServices now gives each service an `up` of its own under v2, in dependency order;
 * the bench shows the gap of each compose command and checks that a plain `up -d` afterwards
 * recreates nothing (the containers' config hash is the one a plain `up` computes).
 * Usage: npx tsx bench/in-place.ts   (TWINSTACK_E2E_SLOT picks the names and ports, as for the e2e suites)
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../src/domain/config';
import { Environment } from '../src/domain/environment';
import { switchServices } from '../src/domain/rolling';
import { MemoryLogger } from '../src/infra/logger';
import type { SshHost } from '../src/infra/ssh';
import { ROOT } from '../test/harness/bundle';
import { connect } from '../test/harness/connect';
import { startSshd } from '../test/harness/sshd';
import { composeCommands, dockerProblem } from '../test/e2e/support/fixture-host';

type Compose = 'docker compose' | 'docker-compose';
const SLOT = Number(process.env.TWINSTACK_E2E_SLOT ?? 0) || 0;
const PREFIX = `tsinplace-${SLOT}`;

function sh(command: string, cwd?: string, env: Record<string, string> = {}): string {
  return execFileSync('bash', ['-c', command], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, DOCKER_BUILDKIT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 16 * 1024 * 1024,
  });
}

function removeStacks(): void {
  sh(
    `for p in ${PREFIX}-v1 ${PREFIX}-v2; do ids=$(docker ps -aq --filter label=com.docker.compose.project=$p); [ -z "$ids" ] || docker rm -f $ids >/dev/null;` +
      ` docker volume rm -f \${p}_pg_data >/dev/null 2>&1; tags=$(docker images --format '{{.Repository}}:{{.Tag}}' "$p-*"); [ -z "$tags" ] || docker rmi $tags >/dev/null 2>&1; done; true`,
  );
}

interface Stack {
  compose: Compose;
  env: Environment;
  apiPort: number;
  /** Puts the api image built from a branch under the compose image name (what promote does with the gated image). */
  use(branch: 'main' | 'second'): void;
  /** `up -d --no-build` as an operator would type it. */
  up(): void;
  /** The ids of the project's containers, sorted. */
  containerIds(): string;
}

/** One copy of the fixture app under one compose command, running main. */
function makeStack(dir: string, compose: Compose, n: number): Stack {
  const tag = compose === 'docker compose' ? 'v2' : 'v1';
  const project = `${PREFIX}-${tag}`;
  const checkout = path.join(dir, tag);
  const apiPort = 18413 + n + 20 * SLOT;
  const dbPort = 25413 + n + 20 * SLOT;
  sh(`git clone -q ${JSON.stringify(path.join(dir, 'origin.git'))} ${JSON.stringify(checkout)}`);
  const vault = path.join(dir, `vault-${tag}`);
  fs.mkdirSync(vault);
  const example = fs.readFileSync(path.join(checkout, 'deploy/stack/env.prod.example'), 'utf8');
  fs.writeFileSync(
    path.join(checkout, 'deploy/stack/.env.prod'),
    example
      .replace(/^VAULT_HOST_PATH=.*$/m, `VAULT_HOST_PATH=${vault}`)
      .replace(/^COMPOSE_PROJECT_NAME=.*$/m, `COMPOSE_PROJECT_NAME=${project}`)
      .replace(/^DB_PORT=.*$/m, `DB_PORT=${dbPort}`)
      .replace(/^API_PORT=.*$/m, `API_PORT=${apiPort}`),
  );
  // Python as PID 1 with no SIGTERM handler ignores the signal: docker stop waits its 10 s.
  fs.writeFileSync(
    path.join(checkout, 'deploy/stack/docker-compose.worker.yml'),
    stringify({ services: { worker: { image: `${project}-api:local`, command: ['python3', '-c', 'import time\nwhile True: time.sleep(1)'] } } }),
  );
  const files = ['deploy/stack/docker-compose.yml', 'deploy/stack/docker-compose.prod.yml', 'deploy/stack/docker-compose.worker.yml'];
  const config = parseConfig(
    stringify({
      'compose-command': compose,
      'state-dir': path.join(dir, 'state'),
      environments: Object.fromEntries(
        (['prod', 'dev'] as const).map((e) => [
          e,
          {
            checkout: e === 'prod' ? checkout : path.join(dir, 'unused'),
            project: e === 'prod' ? project : `${project}-unused`,
            'compose-files': files,
            'env-file': 'deploy/stack/.env.prod',
            url: `http://127.0.0.1:${apiPort}`,
            'health-path': '/api/health',
            'health-timeout-seconds': 120,
            database: { name: 'makapix', user: 'owner' },
          },
        ]),
      ),
    }),
    'in-place-bench',
  );
  const env = new Environment('prod', config);
  const dc = `${compose} ${files.map((f) => `-f ${f}`).join(' ')} --env-file deploy/stack/.env.prod -p ${project}`;
  const run = (args: string) => sh(`${dc} ${args}`, checkout, { COMPOSE_PROJECT_NAME: project });
  for (const branch of ['second', 'main'] as const) {
    sh(`git checkout -q ${branch}`, checkout);
    run('build -q >/dev/null 2>&1');
    sh(`docker tag ${project}-api:local ${project}-api:${branch}`);
  }
  run('up -d --no-build >/dev/null 2>&1');
  return {
    compose,
    env,
    apiPort,
    use: (branch) => sh(`docker tag ${project}-api:${branch} ${project}-api:local`),
    up: () => run('up -d --no-build >/dev/null 2>&1'),
    containerIds: () => sh(`docker ps -q --no-trunc --filter label=com.docker.compose.project=${project} | sort`),
  };
}

function get(port: number): Promise<number | string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/api/health', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

async function answers(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await get(port)) !== 200) {
    if (Date.now() > deadline) throw new Error(`the api on ${port} did not answer 200 within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Row {
  compose: Compose;
  how: string;
  to: string;
  polls: number;
  refused: number;
  gapMs: number;
  switchMs: number;
}

/** Switches the api to `to` while polling it; counts the polls without a 200 and the longest time without one. */
async function measure(host: SshHost, log: MemoryLogger, stack: Stack, how: string, to: 'main' | 'second'): Promise<Row> {
  await answers(stack.apiPort, 120_000);
  stack.use(to);
  const polls: Array<{ t: number; ok: boolean }> = [];
  let stop = false;
  const poller = (async () => {
    while (!stop) {
      const t = Date.now();
      polls.push({ t, ok: (await get(stack.apiPort)) === 200 });
      await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - t))));
    }
  })();
  await new Promise((r) => setTimeout(r, 500));
  const t = Date.now();
  await switchServices({ host, env: stack.env, rolling: [], options: { drainSeconds: 10 }, log, label: 'compose up' });
  const switchMs = Date.now() - t;
  await answers(stack.apiPort, 120_000);
  const ids = stack.containerIds();
  stack.up();
  if (stack.containerIds() !== ids) throw new Error(`${stack.compose}: a plain up -d after the switch recreated containers`);
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await poller;
  let gapMs = 0;
  let lastOk = polls[0]?.t ?? t;
  for (const p of polls) {
    if (p.ok) {
      gapMs = Math.max(gapMs, p.t - lastOk);
      lastOk = p.t;
    }
  }
  return { compose: stack.compose, how, to, polls: polls.length, refused: polls.filter((p) => !p.ok).length, gapMs, switchMs };
}

async function main(): Promise<void> {
  const problem = dockerProblem();
  if (problem) throw new Error(problem);
  const found = composeCommands();
  if (found.length < 2) throw new Error(`this bench compares docker compose v2 with docker-compose v1; found only ${found.join(', ') || 'neither'}`);
  removeStacks();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${PREFIX}-`));
  const sshd = await startSshd();
  const log = new MemoryLogger();
  const host = await connect(sshd, {}, log);
  try {
    sh(`bash ${JSON.stringify(path.join(ROOT, 'test/e2e/support/make-fixture-repo.sh'))} ${JSON.stringify(dir)} >/dev/null`);
    const stacks = (['docker compose', 'docker-compose'] as const).map((c, n) => makeStack(dir, c, n));
    const rows: Row[] = [];
    for (const how of ['run 1', 'run 2']) {
      for (const to of ['second', 'main'] as const) {
        for (const stack of stacks) rows.push(await measure(host, log, stack, how, to));
      }
    }
    console.log('the api recreated in place with the worker (10 s to stop), polled every 100 ms on 127.0.0.1');
    console.log('compose          run          to      polls  refused  longest gap  switch took');
    for (const r of rows) {
      console.log(
        `${r.compose.padEnd(16)} ${r.how.padEnd(11)}  ${r.to.padEnd(6)}  ${String(r.polls).padStart(5)}  ${String(r.refused).padStart(7)}  ${`${(r.gapMs / 1000).toFixed(2)} s`.padStart(11)}  ${`${(r.switchMs / 1000).toFixed(1)} s`.padStart(11)}`,
      );
    }
    const worst = (compose: Compose) => Math.max(...rows.filter((r) => r.compose === compose).map((r) => r.gapMs));
    const v2 = worst('docker compose');
    const v1 = worst('docker-compose');
    const refused = (compose: Compose) => rows.filter((r) => r.compose === compose).reduce((a, r) => [a[0] + r.refused, a[1] + r.polls], [0, 0]);
    const [r2, p2] = refused('docker compose');
    const [r1, p1] = refused('docker-compose');
    console.log(
      `in-place switch: v2 ${r2} of ${p2} polls refused, longest gap ${(v2 / 1000).toFixed(2)} s; v1 ${r1} of ${p1}, longest gap ${(v1 / 1000).toFixed(2)} s; v2/v1 ${(v2 / Math.max(v1, 1)).toFixed(2)}`,
    );
  } finally {
    await host.close().catch(() => undefined);
    await sshd.stop();
    removeStacks();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
