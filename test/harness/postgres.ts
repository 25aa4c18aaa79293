/**
 * A real PostgreSQL server for tests, from the PostgreSQL binaries on the machine: initdb into a
 * temporary directory, listening on a free 127.0.0.1 port. When the tests run as root, the server
 * runs as the `postgres` user (PostgreSQL refuses to run as root).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort } from './ports';

export interface TestPostgres {
  port: number;
  dir: string;
  /** The superuser to connect as (trust authentication on 127.0.0.1). */
  user: string;
  /** Path of a bin directory with psql, pg_dump... of the same version. */
  bin: string;
  psql(sql: string, db?: string): string;
  stop(): Promise<void>;
}

function findBin(): string | undefined {
  const candidates = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'];
  const fromPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim();
  if (fromPath) candidates.unshift(path.dirname(fs.realpathSync(fromPath)));
  return candidates.find((d) => fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'pg_ctl')));
}

export function postgresAvailable(): string | undefined {
  return findBin() ? undefined : 'PostgreSQL server binaries not found: apt-get install postgresql-15 (or run .ci/install.sh)';
}

/**
 * A synchronous call blocks the whole test process, so no test timeout can end it: each one gives
 * up on its own after this long, with an error naming the command.
 */
export const SYNC_TIMEOUT_MS = 300_000;

export async function startPostgres(): Promise<TestPostgres> {
  const bin = findBin();
  if (!bin) throw new Error(postgresAvailable());
  const asRoot = process.getuid?.() === 0;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-pg-'));
  const data = path.join(dir, 'data');
  const run = (cmd: string, args: string[]) => {
    const full = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    return execFileSync(full[0] as string, full[1] as string[], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: SYNC_TIMEOUT_MS });
  };
  if (asRoot) execFileSync('chown', ['postgres:postgres', dir]);
  fs.chmodSync(dir, 0o755);
  const user = 'twinstack';
  run(path.join(bin, 'initdb'), ['-D', data, '-U', user, '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync']);
  const port = await freePort();
  run(path.join(bin, 'pg_ctl'), [
    '-D',
    data,
    '-l',
    path.join(dir, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`,
    'start',
  ]);
  return {
    port,
    dir,
    user,
    bin,
    psql(sql: string, db = 'postgres') {
      return execFileSync(
        path.join(bin, 'psql'),
        ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', user, '-d', db, '-c', sql],
        { encoding: 'utf8', timeout: SYNC_TIMEOUT_MS },
      );
    },
    stop() {
      try {
        // pg_ctl sends SIGQUIT to the pid in postmaster.pid. When this server has already gone, that
        // pid may since belong to another process (a container's PostgreSQL backend, as pids are
        // shared with Docker's containers): stop only a postmaster that runs on this data directory.
        if (ownPostmasterRuns(data)) run(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
      return Promise.resolve();
    },
  };
}

/** Whether postmaster.pid in `data` names a live process started on `data` (its command line says so). */
function ownPostmasterRuns(data: string): boolean {
  let pid: string;
  try {
    pid = fs.readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0].trim();
  } catch {
    return false;
  }
  if (!/^\d+$/.test(pid)) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(data);
  } catch {
    return false;
  }
}
