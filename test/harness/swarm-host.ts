/**
 * A single-node swarm the way the swarm tests need it, in one call: a private Docker engine
 * (private-engine.ts; the machine's shared engine never becomes a swarm) made a swarm manager, its
 * node labelled for the environments asked (twinstack.env.<env>=true), the images asked copied in
 * from the shared engine; optionally a registry on loopback (registry.ts) and a real sshd whose
 * sessions reach the private engine (sshd.ts with DOCKER_HOST), connected. stop() undoes all of it,
 * in reverse order, and says what it left behind. Also what the swarm tests read from the engine
 * (specs, tasks, a db task's psql), the images they build and push, and the stack and config of a
 * dev environment on the swarm that several of them deploy.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, type Config } from '../../src/domain/config';
import type { Host, RunOptions } from '../../src/infra/host';
import type { SshHost } from '../../src/infra/ssh';
import * as swarm from '../../src/infra/swarm';
import { connect } from './connect';
import { startPrivateEngine, type PrivateEngine } from './private-engine';
import { registryAvailable, startRegistry, type TestRegistry } from './registry';
import { sshdAvailable, startSshd, type TestSshd } from './sshd';

export const BASE_IMAGE = 'twinstack-fixture-base:latest';

export interface SwarmHostOptions {
  /** Environments whose label the node carries (twinstack.env.<env>=true). */
  labels?: ReadonlyArray<'prod' | 'dev'>;
  /** Images copied from the shared engine; by default the fixture base image. */
  images?: readonly string[];
  registry?: boolean;
  /** A real sshd whose sessions reach the engine, and a connection to it. */
  ssh?: boolean;
  /** The sshd's sessions get a TMPDIR of their own (sshTmp), empty at the start. */
  sshTmp?: boolean;
}

export interface SwarmHost {
  engine: PrivateEngine;
  /** This run's random part: resources are named twinstack-test-<run>-... */
  run: string;
  /** The swarm's one node id. */
  node: string;
  registry?: TestRegistry;
  sshd?: TestSshd;
  host?: SshHost;
  /** The ssh sessions' TMPDIR (with sshTmp). */
  sshTmp?: string;
  /** twinstack-test-<run>-<suffix>: a stack, directory or image name of this run. */
  name(suffix: string): string;
  /** The image a service's spec names (`<stack>_<service>`), as the engine says. */
  specImage(service: string): string;
  /** The replicas a replicated service's spec asks for. */
  replicas(service: string): number;
  /** A line per task of the service that should run, with its state: `<image> <current state>` unless told (a Go template). */
  runningTasks(service: string, format?: string): string[];
  /** The container ids (12 characters) of a service's running tasks on this node. */
  taskContainers(service: string): string[];
  /** psql as owner in the service's (first) task container, ON_ERROR_STOP, unaligned tuples only; its output, trimmed. */
  psql(db: { service: string; port: number; database: string }, sql: string): string;
  /**
   * Builds an image on the engine (the classic builder: the engine has no bridge) from `docker build`
   * arguments (a context, or `-` with the Dockerfile as input), pushes it, returns its `repo@sha256:…`.
   */
  buildAndPush(ref: string, args: readonly string[], input?: string): string;
  stop(): Promise<void>;
}

/** Why the swarm tests cannot run on this machine, or false. */
export function swarmHostSkip(o: SwarmHostOptions = {}): string | false {
  if (process.getuid?.() !== 0) return 'needs root to start dockerd';
  return (o.ssh ? sshdAvailable() : undefined) ?? (o.registry ? registryAvailable() : undefined) ?? false;
}

export async function startSwarmHost(o: SwarmHostOptions = {}): Promise<SwarmHost> {
  const run = randomBytes(4).toString('hex');
  const engine = await startPrivateEngine();
  const started: Partial<Pick<SwarmHost, 'registry' | 'sshd' | 'host' | 'sshTmp'>> = {};
  const stop = () => stopAll(engine, started);
  try {
    await engine.swarmInit();
    for (const image of o.images ?? [BASE_IMAGE]) engine.loadImage(image);
    const node = engine.docker(['node', 'ls', '-q']).trim();
    for (const env of o.labels ?? []) engine.docker(['node', 'update', '--label-add', `twinstack.env.${env}=true`, node]);
    if (o.registry) started.registry = await startRegistry();
    if (o.ssh) {
      if (o.sshTmp) fs.mkdirSync((started.sshTmp = path.join(engine.dir, 'ssh-tmp')));
      started.sshd = await startSshd({ setEnv: { DOCKER_HOST: engine.host, ...(started.sshTmp ? { TMPDIR: started.sshTmp } : {}) } });
      started.host = await connect(started.sshd);
    }
    return { engine, run, node, ...started, ...readers(engine), name: (suffix) => `twinstack-test-${run}-${suffix}`, stop };
  } catch (e) {
    await stop().catch((se: unknown) => process.stderr.write(`stopping the swarm host after a failed start: ${String(se)}\n`));
    throw e;
  }
}

const lines = (out: string) => out.split('\n').filter(Boolean);

/** What the tests read from the engine and build on it. */
function readers(engine: PrivateEngine): Pick<SwarmHost, 'specImage' | 'replicas' | 'runningTasks' | 'taskContainers' | 'psql' | 'buildAndPush'> {
  const taskContainers = (service: string) => lines(engine.docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]));
  return {
    specImage: (service) => engine.docker(['service', 'inspect', '--format', '{{.Spec.TaskTemplate.ContainerSpec.Image}}', service]).trim(),
    replicas: (service) => Number(engine.docker(['service', 'inspect', '--format', '{{.Spec.Mode.Replicated.Replicas}}', service]).trim()),
    runningTasks: (service, format = '{{.Image}} {{.CurrentState}}') =>
      lines(engine.docker(['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', format, service])),
    taskContainers,
    psql: ({ service, port, database }, sql) =>
      engine
        .docker(['exec', taskContainers(service)[0], 'psql', '-p', String(port), '-U', 'owner', '-d', database, '-v', 'ON_ERROR_STOP=1', '-tAc', sql])
        .trim(),
    buildAndPush(ref, args, input) {
      execFileSync('docker', ['-H', engine.host, 'build', '--network', 'host', '-q', '-t', ref, ...args], {
        input,
        env: { ...process.env, DOCKER_BUILDKIT: '0' },
        stdio: ['pipe', 'ignore', 'pipe'],
        timeout: 600_000,
      });
      engine.docker(['push', ref]);
      const digest = swarm.parseRepoDigests(engine.docker(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]), swarm.imageRepository(ref));
      assert.ok(digest, `${ref} has no digest in the registry`);
      return digest;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Checks `done` every `everyMs` until it holds, at most limitMs / everyMs times; whether it came.
 * The machine is shared and slow at times: a wait, however long it takes (bounded); what the test
 * then asserts is read from the engine, not timed.
 */
export async function until(done: () => boolean | Promise<boolean>, { limitMs, everyMs = 500 }: { limitMs: number; everyMs?: number }): Promise<boolean> {
  for (let i = 0; i < limitMs / everyMs; i++) {
    if (await done()) return true;
    await sleep(everyMs);
  }
  return false;
}

/** Commits every file of `dir` (a new repository) and returns the commit's sha: the checkout an environment is deployed from. */
export function commitAll(dir: string): string {
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, '-c', 'user.name=t', '-c', 'user.email=t@example.test', ...args], { encoding: 'utf8' });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'stack');
  return git('rev-parse', 'HEAD').trim();
}

/** The dev database of the stacks below. */
export const DEV_DB = 'makapix_dev';

/** A stack file's db service: the fixture's PostgreSQL (test/fixtures/app/db) on the host network at `port`, healthy once it accepts connections, on dev's nodes. */
export function dbService(o: { image: string; port: number; password?: string }): string {
  return `  db:
    image: ${o.image}
    networks: [hostnet]
    environment: { DB_PORT: "${o.port}", DB_NAME: ${DEV_DB}, DB_PASSWORD: ${o.password ?? 'owner-pw'}, APP_DB_PASSWORD: app-pw }
    healthcheck:
      test: ["CMD-SHELL", "pg_isready -q -h 127.0.0.1 -p ${o.port} -d ${DEV_DB} -U owner"]
      interval: 1s
      retries: 30
    deploy:
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
`;
}

/** The end of a stack file whose services are on the host network (`networks: [hostnet]`). */
export const HOST_NETWORK = `networks:
  hostnet:
    name: host
    external: true
`;

/** A stack overlay that places each service on dev's nodes. */
export function devPlacement(...services: string[]): string {
  const placed = services.map((s) => `  ${s}:\n    deploy:\n      placement:\n        constraints: [node.labels.twinstack.env.dev == true]\n`);
  return `services:\n${placed.join('')}`;
}

/**
 * The host, each command line that `when` picks run between two looks at the engine (`look`):
 * what the engine says the moment that step starts and the moment it ends.
 */
export function lookingAround(host: Host, when: (script: string) => boolean, look: () => void): Host {
  return Object.create(host, {
    run: {
      value: async (script: string, options?: RunOptions) => {
        if (when(script)) look();
        const out = await host.run(script, options);
        if (when(script)) look();
        return out;
      },
    },
  }) as Host;
}

/**
 * A stack of the db above and an idle api of two replicas (not the default of one: a deploy must
 * set them again), on dev's nodes; its images named by tag (`db`, `api`), for the digest overlay to pin.
 */
export function dbAndIdleApiStack(o: { db: string; api: string; dbPort: number }): string {
  return `services:
${dbService({ image: o.db, port: o.dbPort })}  api:
    image: ${o.api}
    networks: [hostnet]
    command: ["bash", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $$!; done"]
    deploy:
      replicas: 2
      placement: { constraints: [node.labels.twinstack.env.dev == true] }
${HOST_NETWORK}`;
}

/**
 * twinstack's config of a dev on the swarm: its checkout holds stack.yml and .env, its db task
 * (above) serves on `dbPort`; state (and backups) under `dir`. Prod is named only, never reached.
 */
export function swarmDevConfig(o: {
  dir: string;
  registry: string;
  checkout: string;
  project: string;
  dbPort: number;
  healthTimeoutSeconds?: number;
  backups?: boolean;
}): Config {
  const backup = o.backups ? `backup: { dir: ${o.dir}/backups, keep: 5, verify: list }\n` : '';
  const timeout = o.healthTimeoutSeconds ? `health-timeout-seconds: ${o.healthTimeoutSeconds}, ` : '';
  return parseConfig(
    `state-dir: ${o.dir}/state
${backup}swarm: { registry: '${o.registry}', allow-shared-node: true }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: owner, port: 1}}
  dev: {target: swarm, checkout: ${o.checkout}, project: ${o.project}, compose-files: [stack.yml], env-file: .env, url: http://127.0.0.1:2,
        ${timeout}database: {name: ${DEV_DB}, user: owner, port: ${o.dbPort}, container-port: ${o.dbPort}}}
`,
    'test',
  );
}

async function stopAll(engine: PrivateEngine, started: Partial<Pick<SwarmHost, 'registry' | 'sshd' | 'host'>>): Promise<void> {
  await started.host?.close();
  await started.sshd?.stop();
  await engine.stop();
  assert.ok(!fs.existsSync(engine.dir), `${engine.dir} is left behind`);
  const store = started.registry?.dir;
  await started.registry?.stop();
  if (store) assert.ok(!fs.existsSync(store), `${store} is left behind`);
}
