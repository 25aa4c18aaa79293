/**
 * What the WAL, point-in-time restore and drill suites share: prod's db as compose would start it,
 * from the fixture's own db image, ready for a WAL receiver on its network.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';

const docker = (...args: string[]) =>
  execFileSync('docker', args, { encoding: 'utf8', timeout: 180_000, env: { ...process.env, DOCKER_BUILDKIT: '0' } }).trim();
const attempt = (...args: string[]) => spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What each WAL suite names and runs: its run id, its compose project and containers, docker and psql at hand. */
export interface WalSuite {
  RUN: string;
  PROJECT: string;
  IMAGE: string;
  NETWORK: string;
  /** prod's db container, as compose names it. */
  DB: string;
  RECEIVER: string;
  SCRATCH: string;
  PASSWORD: string;
  /** Runs docker; throws with its stderr on a non-zero exit; the output trimmed. */
  docker: (...args: string[]) => string;
  /** Runs docker and returns how it went, whatever it was. */
  attempt: (...args: string[]) => SpawnSyncReturns<string>;
  /** One statement through psql in prod's db container (over its socket), ON_ERROR_STOP; the unaligned output. */
  psql: (query: string, o?: { database?: string; user?: string }) => string;
}

/** The names and helpers of a WAL suite called `name`: resources named twinstack-test-<run>-<name>, as the clean-up expects. */
export function walSuite(name: string): WalSuite {
  const RUN = randomBytes(4).toString('hex');
  const PROJECT = `twinstack-test-${RUN}-${name}`;
  const DB = `${PROJECT}-db-1`;
  return {
    RUN,
    PROJECT,
    IMAGE: `twinstack-test-${name}-db:${RUN}`,
    NETWORK: PROJECT,
    DB,
    RECEIVER: `${PROJECT}-twinstack-wal`,
    SCRATCH: `${PROJECT}-twinstack-pitr`,
    PASSWORD: `wal-secret-${RUN}`,
    docker,
    attempt,
    psql: (query, { database = 'app', user = 'owner' } = {}) =>
      docker('exec', DB, 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-A', '-t', '-h', '/var/run/postgresql', '-U', user, '-d', database, '-c', query),
  };
}

export interface WalDb {
  image: string;
  network: string;
  db: string;
  project: string;
  /** A named volume for the data directory, as compose mounts it (none: the container's own layer). */
  volume?: string;
}

/** Builds the fixture db image as `image` and runs it as service db of compose project `project`, named `db`, on a new network. */
export async function startWalDb(o: WalDb): Promise<void> {
  const app = path.join(__dirname, '../fixtures/app');
  docker('build', '-q', '--network', 'none', '-t', o.image, '-f', path.join(app, 'db/Dockerfile'), app);
  docker('network', 'create', o.network);
  await runWalDb(o);
}

/** Runs the built image as prod's db (a fresh, empty one when its volume is new) and waits until it is ready. */
export async function runWalDb(o: WalDb): Promise<void> {
  // As compose would start it: its labels, on the project's network with the service name as alias,
  // listening there (the fixture listens on loopback only unless told otherwise).
  docker(
    'run', '-d', '--name', o.db, '--network', o.network, '--network-alias', 'db',
    '--label', `com.docker.compose.project=${o.project}`, '--label', 'com.docker.compose.service=db',
    '-e', 'DB_PORT=5432', '-e', 'DB_NAME=app', '-e', 'DB_PASSWORD=owner-pw', '-e', 'APP_DB_PASSWORD=app-pw',
    ...(o.volume ? ['-v', `${o.volume}:/var/lib/postgresql/data`] : []),
    o.image, '-c', 'listen_addresses=*',
  ); // prettier-ignore
  for (let i = 0; i < 120; i++, await sleep(500)) {
    // The first start runs a temporary server on the same socket: wait for the real one.
    const started = attempt('logs', o.db).stdout.includes('db-entrypoint: starting postgres');
    if (started && attempt('exec', o.db, 'pg_isready', '-q', '-h', '/var/run/postgresql', '-U', 'postgres').status === 0) break;
  }
  // The one server setting an operator adds for a receiver on the compose network (preflight says so).
  docker('exec', o.db, 'sh', '-c', 'echo "host replication all samenet scram-sha-256" >> "$PGDATA/pg_hba.conf"');
  docker('exec', o.db, 'psql', '-X', '-q', '-h', '/var/run/postgresql', '-U', 'postgres', '-c', 'SELECT pg_reload_conf()');
}
