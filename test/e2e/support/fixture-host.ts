/**
 * The end-to-end fixture host: this machine's Docker engine reached through the suite's own sshd,
 * exactly as the actions reach a VPS. Two checkouts of the fixture app (prod and dev) cloned from a
 * local origin with one branch per scenario, their env files, vaults and a twinstack config.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ROOT, runBundle, startBundle, type BundleRun, type RunningBundle } from '../../harness/bundle';
import { startSshd, type TestSshd } from '../../harness/sshd';
import { parseLog, type LogRecord } from '../../../src/domain/host-log';
import { labelEnvLines, refuseRealStacks, removeTestResources, SLOT, testName } from './test-resources';

export const BASE_IMAGE = 'twinstack-fixture-base:latest';

export interface FixtureHost {
  dir: string;
  sshd: TestSshd;
  /** Branch name → commit sha in the fixture origin. */
  branches: Record<string, string>;
  workspace: string;
  composeCommand: 'docker-compose' | 'docker compose';
  checkout(env: 'prod' | 'dev'): string;
  envFile(env: 'prod' | 'dev'): string;
  apiPort(env: 'prod' | 'dev'): number;
  /** The compose project of an environment (its containers are <project>-<service>). */
  project(env: 'prod' | 'dev'): string;
  dbPort(env: 'prod' | 'dev'): number;
  run(action: string, inputs?: Record<string, string>): Promise<BundleRun>;
  start(action: string, inputs?: Record<string, string>): RunningBundle;
  /** The records of an environment's host log. */
  hostLog(env: 'prod' | 'dev'): LogRecord[];
  /** docker/compose on the fixture host, from the test process (for assertions only). */
  sh(command: string, cwd?: string): string;
  compose(env: 'prod' | 'dev', args: string): string;
  psql(env: 'prod' | 'dev', sql: string): string;
  stop(): Promise<void>;
}

/** The last `::error` line a bundle printed: the one-line reason an action gives for failing. */
export function lastError(stdout: string): string {
  return (
    stdout
      .split('\n')
      .filter((l) => l.startsWith('::error'))
      .at(-1) ?? ''
  );
}

export function dockerProblem(): string | undefined {
  try {
    execFileSync('docker', ['info'], { stdio: 'ignore', timeout: 20_000 });
  } catch {
    return 'the Docker engine is not running: start it with `bash .ci/start-docker.sh` (as root)';
  }
  try {
    execFileSync('docker', ['image', 'inspect', BASE_IMAGE], { stdio: 'ignore' });
  } catch {
    return `the fixture base image ${BASE_IMAGE} is missing: build it with \`bash test/e2e/support/base-image.sh\``;
  }
  return undefined;
}

/**
 * The compose commands this machine has, v2 first: it is what VPSes run today, and every suite
 * runs under the first. The deploy/gate suite runs under each (v1 too).
 */
export function composeCommands(): Array<'docker-compose' | 'docker compose'> {
  const found: Array<'docker-compose' | 'docker compose'> = [];
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    found.push('docker compose');
  } catch {
    /* no v2 plugin */
  }
  try {
    execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
    found.push('docker-compose');
  } catch {
    /* not installed */
  }
  return found;
}

/**
 * Fixture hosts in different slots (TWINSTACK_E2E_SLOT=0, 1, 2…) use their own ports, so suites can
 * run side by side on one Docker engine; their project names are this run's own
 * (twinstack-test-<run>-prod, see test-resources.ts). The ports stay below the kernel's ephemeral
 * range (32768 and up), where an outgoing connection's source port or a test's freePort() could
 * already hold one when a database starts.
 */
const PORTS = {
  prod: { db: 25410 + 20 * SLOT, api: 18410 + 20 * SLOT },
  dev: { db: 25420 + 20 * SLOT, api: 18420 + 20 * SLOT },
} as const;
const PROJECTS = { prod: testName('prod'), dev: testName('dev') } as const;

function sh(command: string, cwd?: string, env?: Record<string, string>): string {
  // DOCKER_BUILDKIT=0: as for the actions (see the test sshd), the tests' own builds use the classic
  // builder, which works on the test engine without a bridge network.
  return execFileSync('bash', ['-c', command], {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, DOCKER_BUILDKIT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 64 * 1024 * 1024,
  });
}

export async function startFixtureHost(composeCommand: 'docker-compose' | 'docker compose' = 'docker-compose'): Promise<FixtureHost> {
  const problem = dockerProblem();
  if (problem) throw new Error(problem);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-e2e-'));
  refuseRealStacks();
  // Leftovers of an earlier, killed run in this slot would hold the ports.
  removeTestResources();
  const out = sh(`bash ${JSON.stringify(path.join(ROOT, 'test/e2e/support/make-fixture-repo.sh'))} ${JSON.stringify(dir)}`);
  const branches: Record<string, string> = {};
  for (const line of out.trim().split('\n')) {
    const [b, s] = line.trim().split(/\s+/);
    if (b && /^[0-9a-f]{40}$/.test(s ?? '')) branches[b] = s;
  }
  const checkout = (env: 'prod' | 'dev') => path.join(dir, env === 'prod' ? 'makapix' : 'makapix-dev');
  const envFile = (env: 'prod' | 'dev') => path.join(checkout(env), 'deploy/stack', env === 'prod' ? '.env.prod' : '.env.dev');
  for (const env of ['prod', 'dev'] as const) {
    sh(`git clone -q ${JSON.stringify(path.join(dir, 'origin.git'))} ${JSON.stringify(checkout(env))}`);
    const vault = path.join(dir, `vault-${env}`);
    fs.mkdirSync(vault, { recursive: true });
    const example = fs.readFileSync(path.join(checkout(env), 'deploy/stack', env === 'prod' ? 'env.prod.example' : 'env.dev.example'), 'utf8');
    const text = example
      .replace(/^VAULT_HOST_PATH=.*$/m, `VAULT_HOST_PATH=${vault}`)
      .replace(/^COMPOSE_PROJECT_NAME=.*$/m, `COMPOSE_PROJECT_NAME=${PROJECTS[env]}`)
      .replace(/^DB_PORT=.*$/m, `DB_PORT=${PORTS[env].db}`)
      .replace(/^API_PORT=.*$/m, `API_PORT=${PORTS[env].api}`)
      .concat(`\n${labelEnvLines()}`);
    fs.writeFileSync(envFile(env), text, { mode: 0o600 });
  }
  const workspace = path.join(dir, 'workspace');
  fs.mkdirSync(path.join(workspace, '.github'), { recursive: true });
  const envBlock = (env: 'prod' | 'dev') => `  ${env}:
    checkout: ${checkout(env)}
    project: ${PROJECTS[env]}
    compose-files: [deploy/stack/docker-compose.yml, deploy/stack/docker-compose.${env}.yml]
    env-file: deploy/stack/.env.${env}
    url: http://127.0.0.1:${PORTS[env].api}
    health-path: /api/health
    api-service: api
    health-timeout-seconds: 120
    database: { service: db, name: ${env === 'prod' ? 'makapix' : 'makapix_dev'}, user: owner, port: ${PORTS[env].db}, container-port: ${PORTS[env].db} }
    vault: ${path.join(dir, `vault-${env}`)}
`;
  fs.writeFileSync(
    path.join(workspace, '.github', 'twinstack.yml'),
    `compose-command: ${composeCommand}\ndeploy: { allow-prod: true }\n# The fixture app runs every container with host networking.\npreflight: { dev-host-network: true }\nstate-dir: ${path.join(dir, 'state')}\nkeep-releases: 3\nbackup: { dir: ${path.join(dir, 'backups')}, keep: 3 }\npromote: { database-env: DB_NAME, branch: '*' }\nenvironments:\n${envBlock('prod')}${envBlock('dev')}`,
  );
  const sshd = await startSshd();
  const connection = () => ({
    host: '127.0.0.1',
    port: String(sshd.port),
    user: sshd.user,
    'ssh-key': sshd.privateKey,
    'known-hosts': sshd.knownHosts,
    'lock-timeout': '60',
  });
  const host: FixtureHost = {
    dir,
    sshd,
    branches,
    workspace,
    composeCommand,
    checkout,
    envFile,
    apiPort: (env) => PORTS[env].api,
    project: (env) => PROJECTS[env],
    dbPort: (env) => PORTS[env].db,
    run: (action, inputs = {}) => runBundle(action, { ...connection(), ...inputs }, { workspace }),
    start: (action, inputs = {}) => startBundle(action, { ...connection(), ...inputs }, { workspace }),
    hostLog(env) {
      const file = path.join(dir, 'state', env, 'log.jsonl');
      return fs.existsSync(file) ? parseLog(fs.readFileSync(file, 'utf8'), file) : [];
    },
    sh,
    compose(env, args) {
      const cmd = `${composeCommand} -f deploy/stack/docker-compose.yml -f deploy/stack/docker-compose.${env}.yml --env-file deploy/stack/.env.${env} -p ${PROJECTS[env]} ${args}`;
      return sh(cmd, checkout(env), { COMPOSE_PROJECT_NAME: PROJECTS[env] });
    },
    psql(env, sql) {
      const db = env === 'prod' ? 'makapix' : 'makapix_dev';
      return execFileSync(
        'docker',
        [
          'exec',
          '-i',
          `${PROJECTS[env]}-db`,
          'psql',
          '-X',
          '-A',
          '-t',
          '-v',
          'ON_ERROR_STOP=1',
          '-p',
          String(PORTS[env].db),
          '-U',
          'owner',
          '-d',
          db,
          '-c',
          sql,
        ],
        { encoding: 'utf8' },
      );
    },
    async stop() {
      await sshd.stop();
      removeTestResources();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return host;
}
