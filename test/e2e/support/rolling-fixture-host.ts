/**
 * The fixture host (fixture-host.ts) set up for a rolling api, shared by the zero-downtime proof
 * (test/e2e/flip-rolling.test.ts) and its bench (bench/flip-rolling.ts): the fixture app's `rolling`
 * branches put db and api on a Docker network made here, a real Caddy on that network publishes one
 * site per environment on 127.0.0.1, and both environments' health URLs go through it. prod runs
 * branch `rolling` (migrated), dev runs `rolling-next`, gated. The api takes 4 s to start and drains
 * on SIGTERM; the proxy retries a failed dial for 3 s, less than that start, so a switch that leaves
 * nothing listening fails requests.
 *
 * Every name of its own starts with twinstack-test-<run>-zd- and carries the suites' test labels
 * (test-resources.ts), and all traffic stays on 127.0.0.1 or inside the network made here.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BundleRun } from '../../harness/bundle';
import { freePort } from '../../harness/ports';
import { startFixtureHost, type FixtureHost } from './fixture-host';
import { labelFlags, testName } from './test-resources';
import { rollingProblem, runCaddy, startLoad, waitServing, type LoadResult } from './rolling-stack';

const PREFIX = testName('zd');
const NETWORK = `${PREFIX}-net`;
const CADDY = `${PREFIX}-caddy`;
/** What the load loop requests: the api's health, which reads the database. */
export const HEALTH_PATH = '/api/health';

export interface RollingFixtureHost {
  fx: FixtureHost;
  /** Caddy's ports on 127.0.0.1, one site per environment. */
  proxy: { prod: number; dev: number };
  /** prod's release before any promotion, and the api image it runs. */
  firstRelease: string;
  firstImage: string;
  /** The running api containers of prod: full id and image id. */
  prodApi(): Array<{ id: string; imageId: string }>;
  /** Sets promote.rolling (and other promote settings, as `key: value, ...`) in the config for the next runs. */
  setRolling(services: string[], more?: string): void;
  /** Runs an action with 20 requests a second through prod's proxy: 1 s of traffic before it, 1 s after. */
  underLoad(action: string, inputs: Record<string, string>): Promise<{ run: BundleRun; load: LoadResult }>;
  stop(): Promise<void>;
}

function removeProxy(): void {
  execFileSync('bash', ['-c', `docker rm -f ${CADDY} >/dev/null 2>&1; docker network rm ${NETWORK} >/dev/null 2>&1; true`]);
}

/** One Caddy site per environment, each finding its api's containers by their alias on the network. */
function caddyfile(sites: Array<{ listen: number; upstream: string; port: number }>): string {
  const site = (s: { listen: number; upstream: string; port: number }) => `:${s.listen} {
	reverse_proxy {
		dynamic a {
			name ${s.upstream}
			port ${s.port}
			refresh 1s
		}
		# random: see test/fixtures/rolling/Caddyfile (round_robin can hand a retry the same refusing container each time).
		lb_policy random
		# Names the container that answered (its address), for promote.route-probe.
		header_down X-Upstream {http.reverse_proxy.upstream.hostport}
		# Shorter than the api's 4 s start: a switch that leaves nothing listening fails requests.
		lb_try_duration 3s
		lb_try_interval 100ms
		# No fail_duration: see test/fixtures/rolling/Caddyfile (Caddy 2.6 can pin a retry to a refusing container).
		transport http {
			dial_timeout 250ms
		}
	}
}
`;
  return `{\n\tadmin off\n\tauto_https off\n}\n\n${sites.map(site).join('\n')}`;
}

export async function startRollingFixtureHost(composeCommand: 'docker compose' | 'docker-compose'): Promise<RollingFixtureHost> {
  const problem = rollingProblem();
  if (problem) throw new Error(problem);
  removeProxy();
  let fx: FixtureHost | undefined;
  try {
    // After the fixture host: its start removes this slot's leftovers, the network among them.
    fx = await startFixtureHost(composeCommand);
    execFileSync('docker', ['network', 'create', ...labelFlags(), NETWORK], { stdio: 'ignore' });
    return await setUp(fx);
  } catch (e) {
    await fx?.stop();
    removeProxy();
    throw e;
  }
}

async function setUp(fx: FixtureHost): Promise<RollingFixtureHost> {
  for (const env of ['prod', 'dev'] as const) fs.appendFileSync(fx.envFile(env), `EDGE_NETWORK=${NETWORK}\n`);
  const proxy = { prod: await freePort(), dev: await freePort() };
  const file = path.join(fx.dir, 'Caddyfile');
  fs.writeFileSync(
    file,
    caddyfile([
      { listen: 8080, upstream: `${fx.project('prod')}-api`, port: fx.apiPort('prod') },
      { listen: 8081, upstream: `${fx.project('dev')}-api`, port: fx.apiPort('dev') },
    ]),
  );
  runCaddy(CADDY, NETWORK, file, { [proxy.prod]: 8080, [proxy.dev]: 8081 });

  const configFile = path.join(fx.workspace, '.github', 'twinstack.yml');
  const original = fs
    .readFileSync(configFile, 'utf8')
    .replace(`url: http://127.0.0.1:${fx.apiPort('prod')}`, `url: http://127.0.0.1:${proxy.prod}`)
    .replace(`url: http://127.0.0.1:${fx.apiPort('dev')}`, `url: http://127.0.0.1:${proxy.dev}`);
  const setRolling = (services: string[], more?: string) => {
    const text = original.replace(/^promote: \{ (.*) \}$/m, `promote: { $1, rolling: [${services.join(', ')}], drain-seconds: 5${more ? `, ${more}` : ''} }`);
    assert.match(text, /rolling: \[/, 'the config has no promote section to extend');
    fs.writeFileSync(configFile, text);
  };
  setRolling(['api']);

  const prodApi = () =>
    fx
      .sh(
        `docker ps -q --no-trunc --filter label=com.docker.compose.project=${fx.project('prod')} --filter label=com.docker.compose.service=api | xargs -r docker inspect --format '{{.Id}} {{.Image}}'`,
      )
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [id, imageId] = l.split(' ');
        return { id, imageId };
      });

  const p = await fx.run('deploy', { environment: 'prod', ref: 'rolling' });
  assert.equal(p.code, 0, p.why);
  const [api] = prodApi();
  fx.sh(`docker exec ${api.id} alembic upgrade head`);
  const firstRelease =
    (
      fx
        .hostLog('prod')
        .filter((r) => r.event === 'release')
        .at(-1) as { release?: string } | undefined
    )?.release ?? '';
  assert.ok(firstRelease, 'prod recorded no release');
  await waitServing(proxy.prod, 60_000, HEALTH_PATH);

  const d = await fx.run('deploy', { environment: 'dev', ref: 'rolling-next' });
  assert.equal(d.code, 0, d.why);
  const g = await fx.run('gate');
  assert.equal(g.code, 0, g.why);

  return {
    fx,
    proxy,
    firstRelease,
    firstImage: api.imageId,
    prodApi,
    setRolling,
    async underLoad(action, inputs) {
      const load = startLoad(proxy.prod, 20, HEALTH_PATH);
      await new Promise((r) => setTimeout(r, 1000));
      load.markStart();
      const run = await fx.run(action, inputs);
      load.markEnd();
      // Time for the proxy's retries to end: every request is answered or failed before the count.
      await new Promise((r) => setTimeout(r, 1000));
      return { run, load: await load.stop() };
    },
    async stop() {
      await fx.stop();
      removeProxy();
    },
  };
}
