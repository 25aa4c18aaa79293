/**
 * The application the swarm actions test deploys: a git origin of the fixture app
 * (test/fixtures/app) with its stack converted for swarm (test/fixtures/swarm/stack), two
 * checkouts (prod and dev) with their env files and vaults, and a load of HTTP requests at a steady
 * rate. Branches, each one commit ahead of the one before:
 *
 *   main    the fixture app, its api served on a shared port and replaced start-first, with an
 *           init in each task
 *   second  migration 0002 (items.description) and a test of it
 *   broken  the api waits for a setting no environment has, so it never listens nor becomes healthy
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const FIXTURES = path.join(__dirname, '..', 'fixtures');

/**
 * The fixture api served the way `order: start-first` needs under host networking: it binds with
 * SO_REUSEPORT, so the new task listens beside the old one and the kernel spreads connections over
 * both. The healthcheck's request may then be answered by the other task, so it also asks for a
 * file only this container's server writes once it listens. On SIGTERM it takes every connection
 * already queued, then closes the listener at once (a closed listener's queue is reset, not handed
 * to the other task), answers what it took, and exits.
 */
export const SHARED_PORT_SERVER = `"""The fixture api on a port shared with the task that replaces it (SO_REUSEPORT)."""
import os
import socket
import sys
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import app  # noqa: E402

READY = "/tmp/api-listening"


class SharedPortServer(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def main():
    import signal

    port = int(os.environ["API_PORT"])
    server = SharedPortServer(("127.0.0.1", port), app.Handler)

    def stop(*_):
        listener = server.socket
        listener.setblocking(False)
        while True:
            try:
                conn, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            conn.setblocking(True)
            server.process_request(conn, addr)
        listener.close()
        server.server_close()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    open(READY, "w").close()
    print(f"api: listening on 127.0.0.1:{port} (shared)", flush=True)
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
`;

/** The third compose file of both environments: the api served as above, replaced start-first; an init in each task. */
export const ZERO_DOWNTIME_OVERLAY = `# Replacing prod without a dropped request.
# The api is replaced start-first on the host network: the new task listens beside the old one
# (SO_REUSEPORT, api/serve_shared_port.py). Its healthcheck (in the base file: docker stack deploy
# appends a list such as healthcheck.test across files) asks for the file that only its own server
# writes, since the port is answered by either task.
# Neither PostgreSQL nor the api is its container's first process: a healthcheck that times out
# under load leaves its command to be reaped by PID 1, and PostgreSQL takes an unknown child's exit
# for a crashed backend and restarts, dropping every session (preflight's db-init warning).
services:
  db:
    init: true
  api:
    init: true
    command: ["python3", "/app/api/serve_shared_port.py"]
    healthcheck:
      interval: 1s
      timeout: 5s
      retries: 3
      start_period: 3s
    deploy:
      update_config: { order: start-first, failure_action: rollback, monitor: 3s }
      rollback_config: { order: start-first }
`;

const MIGRATION_0002 = `"""add items.description

Revision ID: 0002
Revises: 0001
Create Date: 2024-01-02 00:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("items", sa.Column("description", sa.Text, nullable=True))


def downgrade():
    op.drop_column("items", "description")
`;

const TEST_0002 = `"""Added with migration 0002."""


def test_items_have_description(db, api, marker):
    with db.cursor() as cur:
        cur.execute(
            "INSERT INTO items (name, description) VALUES (%s, %s)",
            (marker, "from the second branch"),
        )
    status, body = api("/api/items")
    assert status == 200, body
    mine = [i for i in body["items"] if i["name"] == marker]
    assert mine and mine[0]["description"] == "from the second branch"
`;

const NEVER_READY = `import psycopg2

# This release needs a cache no environment has yet: it waits for it, and never listens.
while not os.environ.get("CACHE_URL"):
    time.sleep(1)
`;

export type Env = 'prod' | 'dev';

export interface SwarmApp {
  dir: string;
  /** Branch → commit sha. */
  branches: Record<'main' | 'second' | 'broken', string>;
  checkout(env: Env): string;
  /** The twinstack config (YAML) for both environments on the swarm. */
  configText: string;
}

export interface SwarmAppOptions {
  dir: string;
  registry: string;
  project: Record<Env, string>;
  ports: Record<Env, { api: number; db: number }>;
}

const GIT_ENV = {
  ...process.env,
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'twinstack fixture',
  GIT_AUTHOR_EMAIL: 'fixture@twinstack.invalid',
  GIT_COMMITTER_NAME: 'twinstack fixture',
  GIT_COMMITTER_EMAIL: 'fixture@twinstack.invalid',
};

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: GIT_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function commit(src: string, message: string): string {
  git(src, 'add', '-A');
  git(src, 'commit', '-q', '-m', message);
  return git(src, 'rev-parse', 'HEAD').trim();
}

/** The source tree of main: the fixture app, its swarm stack and the shared-port server. */
function writeMain(src: string): void {
  const app = path.join(FIXTURES, 'app');
  // The compose stack and env files stay behind: the swarm stack takes their place.
  const left = (rel: string) => rel === 'deploy' || /(^|\/)(\.env[^/]*|__pycache__|\.pytest_cache)$/.test(rel);
  fs.cpSync(app, src, { recursive: true, filter: (f) => !left(path.relative(app, f)) });
  const stack = path.join(src, 'deploy', 'stack');
  fs.mkdirSync(stack, { recursive: true });
  for (const f of ['docker-compose.yml', 'docker-compose.prod.yml', 'docker-compose.dev.yml'])
    fs.copyFileSync(path.join(FIXTURES, 'swarm', 'stack', f), path.join(stack, f));
  fs.writeFileSync(path.join(stack, 'docker-compose.zero-downtime.yml'), ZERO_DOWNTIME_OVERLAY);
  const base = path.join(stack, 'docker-compose.yml');
  const health = 'curl -fsS -o /dev/null --max-time 3 \\"http://127.0.0.1:$$API_PORT/api/health\\""]';
  const text = fs.readFileSync(base, 'utf8');
  if (text.split(health).length !== 2) throw new Error(`${base}: not one api healthcheck to add the listening file to`);
  fs.writeFileSync(base, text.replace(health, `test -f /tmp/api-listening && ${health}`));
  fs.writeFileSync(path.join(src, 'api', 'serve_shared_port.py'), SHARED_PORT_SERVER);
}

/** The origin with its three branches, and a checkout of it per environment with its env file and vault. */
export function makeSwarmApp(o: SwarmAppOptions): SwarmApp {
  const src = path.join(o.dir, 'src');
  fs.mkdirSync(src, { recursive: true });
  git(src, 'init', '-q', '-b', 'main');
  writeMain(src);
  // api/VERSION names the branch: /api/version says which release answered.
  fs.writeFileSync(path.join(src, 'api', 'VERSION'), 'main\n');
  const main = commit(src, 'Fixture app on a swarm: db, api served on a shared port, worker');
  git(src, 'checkout', '-q', '-b', 'second');
  fs.writeFileSync(path.join(src, 'migrations', 'versions', '0002_item_description.py'), MIGRATION_0002);
  fs.writeFileSync(path.join(src, 'tests', 'test_description.py'), TEST_0002);
  fs.writeFileSync(path.join(src, 'api', 'VERSION'), 'second\n');
  const second = commit(src, 'Add items.description (migration 0002)');
  git(src, 'checkout', '-q', '-b', 'broken');
  const app = path.join(src, 'api', 'app.py');
  const code = fs.readFileSync(app, 'utf8');
  if (!code.includes('import psycopg2\n')) throw new Error(`${app}: no "import psycopg2" line to break the api after`);
  fs.writeFileSync(app, code.replace('import psycopg2\n', NEVER_READY));
  fs.writeFileSync(path.join(src, 'api', 'VERSION'), 'broken\n');
  const broken = commit(src, 'The api waits for a cache (never ready)');
  git(src, 'checkout', '-q', 'main');
  const origin = path.join(o.dir, 'origin.git');
  git(o.dir, 'clone', '-q', '--bare', src, origin);

  const checkout = (env: Env) => path.join(o.dir, env);
  for (const env of ['prod', 'dev'] as const) {
    git(o.dir, 'clone', '-q', origin, checkout(env));
    const vault = path.join(o.dir, `vault-${env}`);
    fs.mkdirSync(vault);
    const values = fs
      .readFileSync(path.join(FIXTURES, 'swarm', 'stack', `.env.${env}`), 'utf8')
      .replace(/^COMPOSE_PROJECT_NAME=.*$/m, `COMPOSE_PROJECT_NAME=${o.project[env]}`)
      .replace(/^VAULT_HOST_PATH=.*$/m, `VAULT_HOST_PATH=${vault}`)
      .replace(/^DB_PORT=.*$/m, `DB_PORT=${o.ports[env].db}`)
      .replace(/^API_PORT=.*$/m, `API_PORT=${o.ports[env].api}`)
      .replace(/^REGISTRY=.*$/m, `REGISTRY=${o.registry}`)
      // Each environment builds under its own name (the shared-images check); deploy pushes them by release id.
      .replace(/^IMAGE_TAG=.*$/m, `IMAGE_TAG=${env}`);
    fs.writeFileSync(path.join(checkout(env), 'deploy', 'stack', `.env.${env}`), values, { mode: 0o600 });
  }
  return { dir: o.dir, branches: { main, second, broken }, checkout, configText: configText(o, checkout) };
}

function configText(o: SwarmAppOptions, checkout: (env: Env) => string): string {
  const block = (env: Env) => `  ${env}:
    target: swarm
    checkout: ${checkout(env)}
    project: ${o.project[env]}
    compose-files: [deploy/stack/docker-compose.yml, deploy/stack/docker-compose.${env}.yml, deploy/stack/docker-compose.zero-downtime.yml]
    env-file: deploy/stack/.env.${env}
    url: http://127.0.0.1:${o.ports[env].api}
    health-path: /api/health
    api-service: api
    health-timeout-seconds: 300
    database: { service: db, name: ${env === 'prod' ? 'makapix' : 'makapix_dev'}, user: owner, port: ${o.ports[env].db}, container-port: ${o.ports[env].db} }
    vault: ${path.join(o.dir, `vault-${env}`)}
`;
  return `state-dir: ${path.join(o.dir, 'state')}
keep-releases: 5
deploy: { allow-prod: true }
# The fixture app runs every task on the host network.
preflight: { dev-host-network: true }
backup: { dir: ${path.join(o.dir, 'backups')}, keep: 3 }
promote: { database-env: DB_NAME, branch: '*' }
swarm: { registry: '${o.registry}', allow-shared-node: true }
environments:
${block('prod')}${block('dev')}`;
}

/**
 * A steady load of GETs of the api's /api/version: one request started every 1000/rps ms, each
 * awaited on its own. That path answers without the database (/api/health opens a PostgreSQL
 * connection per request, and on a loaded test machine those connections, not the swap, time out);
 * it names the release that answered (api/VERSION), so the load also shows which tasks served it.
 */
export interface Load {
  /** ok: the requests answered 200; versions: the releases that answered, in the order of their first answer, the last answer's last. */
  stop(): Promise<{ ok: number; failures: string[]; versions: string[] }>;
}

/** Failures grouped by what they said (time stamps and ports left out), with their counts and the first one's time. */
export function failureKinds(failures: readonly string[]): string {
  const kinds = new Map<string, { n: number; first: string }>();
  for (const f of failures) {
    const [at, ...rest] = f.split(' ');
    const kind = rest.join(' ').replace(/\d+/g, 'N');
    const k = kinds.get(kind) ?? { n: 0, first: at };
    kinds.set(kind, { n: k.n + 1, first: k.first < at ? k.first : at });
  }
  return [...kinds].map(([kind, k]) => `${k.n}x from ${k.first}: ${kind}`).join('\n');
}

export function startLoad(port: number, rps: number): Load {
  const url = `http://127.0.0.1:${port}/api/version`;
  let ok = 0;
  const failures: string[] = [];
  const versions: string[] = [];
  let last = '';
  const inFlight = new Set<Promise<void>>();
  const one = async () => {
    const at = new Date().toISOString();
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(15_000) });
      const body = await res.text();
      if (res.status !== 200) return void failures.push(`${at} HTTP ${res.status} ${body.slice(0, 160)}`);
      ok++;
      const version = /"version": "([^"]*)"/.exec(body)?.[1] ?? '?';
      if (!versions.includes(version)) versions.push(version);
      last = version;
    } catch (e) {
      failures.push(`${at} ${(e as Error).message}${(e as { cause?: Error }).cause ? `: ${(e as { cause: Error }).cause.message}` : ''}`);
    }
  };
  const timer = setInterval(() => {
    const p = one();
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, 1000 / rps);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return { ok, failures, versions: last ? [...versions.filter((v) => v !== last), last] : versions };
    },
  };
}
