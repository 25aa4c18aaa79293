/**
 * A swarm release, end to end on a single-node swarm (a private Docker engine: the machine's shared
 * engine never becomes a swarm) with a real registry on loopback, driven through twinstack's own
 * functions over a real sshd whose sessions reach the private engine (DOCKER_HOST). Deploy builds
 * on the manager, pushes, and pins each service to the digest it pushed; the engine replaces the
 * task start-first while HTTP keeps being served; a release whose healthcheck fails is rolled back
 * by the engine itself and the report names the failed task; a rollback deploys an earlier
 * release's digests. Asserted on the engine, the registry and over HTTP.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { SwarmDeployFailed, buildAndPush, deployRelease, recordedImages, rollbackRelease, type SwarmRelease } from '../../src/domain/swarm-release';
import { MemoryLogger } from '../../src/infra/logger';
import { freePort } from '../harness/ports';
import { BASE_IMAGE, devPlacement, HOST_NETWORK, startSwarmHost, swarmHostSkip, type SwarmHost } from '../harness/swarm-host';

const OPTIONS = { labels: ['dev'], registry: true, ssh: true } as const;

// A web server that binds with SO_REUSEPORT, so that under host networking the new task can start
// beside the old one (order: start-first). The port is then answered by either task, so the
// healthcheck also asks for a file that only this container's server writes once it listens, and
// never in the release whose version is "broken".
const SERVER = `import http.server, os, signal, socket
PORT = int(os.environ["WEB_PORT"])
VERSION = open("/srv/version").read().strip()
signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200
        body = VERSION.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()
server = Server(("127.0.0.1", PORT), Handler)
if VERSION != "broken":
    open("/tmp/healthy", "w").close()
server.serve_forever()
`;
const DOCKERFILE = `FROM ${BASE_IMAGE}
COPY server.py version /srv/
CMD ["python3", "/srv/server.py"]
`;
const BASE = `services:
  web:
    build: ../web
    image: \${REGISTRY}/web:latest
    networks: [hostnet]
    environment:
      WEB_PORT: "\${WEB_PORT}"
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/healthy && curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:$$WEB_PORT/health"]
      interval: 1s
      timeout: 3s
      retries: 2
    deploy:
      replicas: 1
      update_config: { order: start-first, failure_action: rollback, monitor: 2s }
      rollback_config: { order: start-first }
  # Not built here and never pushed: deployed by name, not pinned.
  worker:
    image: ${BASE_IMAGE}
    networks: [hostnet]
    command: ["bash", "-c", "trap 'exit 0' TERM; while true; do sleep 1 & wait $$!; done"]
${HOST_NETWORK}`;
const DEV = devPlacement('web', 'worker');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const digestOf = (ref: string) => ref.slice(ref.indexOf('@') + 1);

describe('a swarm release: build, push, deploy by digest, the engine rolls back, rollback', { skip: swarmHostSkip(OPTIONS) }, () => {
  let sw: SwarmHost | undefined;
  let stack: string;
  let ctx: EnvContext;
  let checkout: string;
  let port: number;
  const releases: Record<string, SwarmRelease> = {};

  /** The image the service's spec names, and the images its running tasks were given, as the engine says. */
  const onEngine = (service: string) => ({ spec: sw!.specImage(`${stack}_${service}`), running: sw!.runningTasks(`${stack}_${service}`) });
  const get = async (p = '/') => {
    const res = await fetch(`http://127.0.0.1:${port}${p}`, { signal: AbortSignal.timeout(5000) });
    return { status: res.status, body: await res.text() };
  };
  const release = async (version: string) => {
    fs.writeFileSync(path.join(checkout, 'web', 'version'), `${version}\n`);
    const built = await buildAndPush(ctx, version);
    releases[version] = built.images;
    return built;
  };

  before(async () => {
    sw = await startSwarmHost(OPTIONS);
    const { engine, registry } = sw as Required<SwarmHost>;
    stack = sw.name('dev');
    port = await freePort();
    checkout = path.join(engine.dir, 'dev');
    fs.mkdirSync(path.join(checkout, 'stack'), { recursive: true });
    fs.mkdirSync(path.join(checkout, 'web'));
    fs.writeFileSync(path.join(checkout, 'web', 'server.py'), SERVER);
    fs.writeFileSync(path.join(checkout, 'web', 'Dockerfile'), DOCKERFILE);
    fs.writeFileSync(path.join(checkout, 'stack', 'docker-compose.yml'), BASE);
    fs.writeFileSync(path.join(checkout, 'stack', 'docker-compose.dev.yml'), DEV);
    fs.writeFileSync(path.join(checkout, 'stack', '.env.dev'), `REGISTRY=${registry.address}\nWEB_PORT=${port}\n`);
    const config = parseConfig(
      `state-dir: ${engine.dir}/state
swarm: { registry: '${registry.address}', allow-shared-node: true }
environments:
  prod: {checkout: ${engine.dir}/prod, project: ${stack.replace(/-dev$/, '-prod')}, compose-files: [stack/docker-compose.yml, stack/docker-compose.prod.yml], env-file: stack/.env.prod, url: http://127.0.0.1:1, database: {name: app, user: owner}}
  dev: {checkout: ${checkout}, project: ${stack}, target: swarm, compose-files: [stack/docker-compose.yml, stack/docker-compose.dev.yml], env-file: stack/.env.dev, url: http://127.0.0.1:${port}, database: {name: app_dev, user: owner}, health-timeout-seconds: 600}
`,
      'test',
    );
    ctx = { host: sw.host!, config, env: new Environment('dev', config), log: new MemoryLogger() };
  });
  after(async () => {
    await sw?.stop();
  });

  it('deploys v1: built on the manager, pushed, and its task runs the digest that was pushed', async () => {
    const built = await release('v1');
    assert.match(built.images.web, new RegExp(`^${sw!.registry!.address.replace(/\./g, '\\.')}/web@sha256:[0-9a-f]{64}$`));
    assert.deepEqual(await sw!.registry!.tags('web'), ['v1']);
    // The worker's image was loaded, never pushed nor pulled: the manager has no digest to pin it by.
    assert.deepEqual(built.unpinned, [{ service: 'worker', image: BASE_IMAGE }]);

    // What the release record keeps: the digest, the image id the manager has for it, the name it was pushed as.
    const recorded = await recordedImages(ctx, built);
    const id = sw!.engine.docker(['image', 'inspect', '--format', '{{.Id}}', built.images.web]).trim();
    assert.deepEqual(recorded.web, { name: built.images.web, id, tag: `${sw!.registry!.address}/web:v1` });
    assert.equal(recorded.worker.name, BASE_IMAGE);

    const reports = await deployRelease(ctx, { release: built.images });
    assert.deepEqual(reports.map((r) => r.service).sort(), ['web', 'worker']);

    const web = onEngine('web');
    assert.equal(digestOf(web.spec), digestOf(built.images.web));
    assert.equal(web.running.length, 1);
    assert.match(web.running[0], new RegExp(`@${digestOf(built.images.web)} Running`));
    assert.equal(onEngine('worker').running.length, 1);
    assert.deepEqual(await get(), { status: 200, body: 'v1' });
    // The overlay that pinned it sits beside the base file.
    assert.match(fs.readFileSync(path.join(checkout, 'stack', '.twinstack-digests.yml'), 'utf8'), new RegExp(digestOf(built.images.web)));
  });

  it('deploys v2 start-first: the engine replaces the task, and HTTP is answered throughout', async () => {
    const built = await release('v2');
    assert.notEqual(built.images.web, releases.v1.web);
    const seen: string[] = [];
    const failures: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        try {
          const r = await get();
          if (r.status === 200) seen.push(r.body);
          else failures.push(`HTTP ${r.status}`);
        } catch (e) {
          failures.push((e as Error).message);
        }
        await sleep(50);
      }
    })();
    try {
      await deployRelease(ctx, { release: built.images });
    } finally {
      polling = false;
      await poller;
    }
    assert.deepEqual(failures, [], `of ${seen.length + failures.length} requests`);
    assert.ok(seen.includes('v1') && seen.at(-1) === 'v2', `answers went from v1 to v2: ${[...new Set(seen)].join(', ')}`);
    const web = onEngine('web');
    assert.equal(digestOf(web.spec), digestOf(built.images.web));
    assert.equal(web.running.length, 1);
    assert.match(web.running[0], new RegExp(`@${digestOf(built.images.web)} Running`));
  });

  it('deploys a release whose healthcheck fails: the engine rolls back by itself, the report names the failed task, v2 still serves', async () => {
    const built = await release('broken');
    const failed = await deployRelease(ctx, { release: built.images }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(
      failed instanceof SwarmDeployFailed,
      `expected a failed deploy, got ${String(failed)}\n${(ctx.log as MemoryLogger).text.split('\n').slice(-25).join('\n')}\n${sw!.engine.docker(['service', 'ps', '--no-trunc', `${stack}_web`])}`,
    );
    const web = failed.services.find((s) => s.service === 'web');
    assert.equal(web?.update?.state, 'rollback_completed');
    assert.ok(
      web.failed.length >= 1,
      `${failed.message}\n${sw!.engine.docker(['service', 'ps', '--no-trunc', '--format', 'json', `${stack}_web`])}\n${(ctx.log as MemoryLogger).text.split('\n').slice(-8).join('\n')}`,
    );
    assert.match(failed.message, new RegExp(web.failed[0].task));

    // On the engine: the spec is back on v2's digest, its one running task too; v2 answers.
    const state = sw!.engine.docker(['service', 'inspect', '--format', '{{.UpdateStatus.State}}', `${stack}_web`]).trim();
    assert.equal(state, 'rollback_completed');
    const now = onEngine('web');
    assert.equal(digestOf(now.spec), digestOf(releases.v2.web));
    assert.equal(now.running.length, 1);
    assert.match(now.running[0], new RegExp(`@${digestOf(releases.v2.web)} Running`));
    // The failed task ran the broken digest.
    const tasks = sw!.engine.docker(['service', 'ps', '--no-trunc', '--format', '{{.ID}} {{.Image}}', `${stack}_web`]);
    assert.match(tasks, new RegExp(`${web.failed[0].task}\\w* \\S+@${digestOf(built.images.web)}`));
    assert.deepEqual(await get(), { status: 200, body: 'v2' });
  });

  it("rolls back to v1's digests: the engine runs v1 again, pulled from the registry by digest", async () => {
    await rollbackRelease(ctx, { release: releases.v1, from: 'v2', to: 'v1' });
    const web = onEngine('web');
    assert.equal(digestOf(web.spec), digestOf(releases.v1.web));
    assert.equal(web.running.length, 1);
    assert.match(web.running[0], new RegExp(`@${digestOf(releases.v1.web)} Running`));
    assert.deepEqual(await get(), { status: 200, body: 'v1' });
  });
});
