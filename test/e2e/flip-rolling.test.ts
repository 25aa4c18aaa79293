/**
 * Zero downtime through the bundles (issue "flip the switch", point 6): prod's api is a rolling
 * service (promote.rolling) behind a real Caddy, and a load loop sends 20 requests a second through
 * the proxy on 127.0.0.1 while the promote action switches prod to a new gated commit and while the
 * rollback action returns it to the previous release. Every request answered, and on the host the
 * api container was replaced and runs the expected image.
 *
 * The api takes 4 s to start and the proxy retries a failed dial for 3 s (see
 * support/rolling-fixture-host.ts): a switch in place (stop, then start) fails requests here, only a
 * switch that keeps one container serving passes.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import type { LoadResult } from './support/rolling-stack';
import { composeCommands } from './support/fixture-host';
import { startRollingFixtureHost, type RollingFixtureHost } from './support/rolling-fixture-host';

const composeCommand = composeCommands()[0];
const ROLLED = /prod: rolling api: .* → \S+ \(image [0-9a-f]{12}\)/;

describe(`zero downtime through promote and rollback, with ${composeCommand}`, () => {
  let host: RollingFixtureHost;
  const figures: string[] = [];

  /**
   * Every request answered. prod's PostgreSQL used to crash-restart in the middle of a run on a
   * loaded machine, failing the api's requests: the db's healthcheck shell, killed at its timeout,
   * left its pg_isready to the container's first process, PostgreSQL, which takes a child it did
   * not start exiting with code 2 for a crashed backend. The fixture's db now runs under an init
   * (`init: true`). And the rolling api keeps its database connections in a pool (serve.py), as the
   * real api does: a request used to start a PostgreSQL backend of its own, 20 a second, and on a
   * loaded 2-core machine those took over 10 s while the promotion dumped and rehearsed. A request
   * that fails here is a failure, whoever failed it.
   */
  function noFailures(what: string, load: LoadResult, o: { visible: string }): void {
    figures.push(
      `${what}: ${load.failed} failed of ${load.sent} (${load.duringSwitch} sent during the run; ${load.databaseErrors} answered with a database error), longest gap ${(load.longestGapMs / 1000).toFixed(2)} s`,
    );
    const restarts = host.fx.sh(`docker logs ${host.fx.project('prod')}-db 2>&1 | grep -c 'terminating any other active server processes' || true`).trim();
    assert.equal(
      load.failed,
      0,
      `${what}: ${load.failed} of ${load.sent} requests failed (prod's PostgreSQL log shows ${restarts} crash restart(s) since it started): ${load.failures.join('; ')}\n${what} printed:\n${o.visible.slice(-4000)}`,
    );
    // The run covers a backup, the new api's 4 s start, its healthcheck, the proxy's settle time and
    // the old container's drain: far more than 100 requests go out while it runs.
    assert.ok(load.duringSwitch >= 100, `${what}: only ${load.duringSwitch} requests were sent during the run`);
  }

  before(async () => {
    host = await startRollingFixtureHost(composeCommand);
    // prod's containers run from release directories (promote.release-dirs): the api mounts its code
    // from the checkout (../../api:/app/api), so an old container keeps its own code while a new one starts.
    // promote.route-probe: the old container stops only once requests through the proxy reach the new one.
    host.setRolling(['api'], 'release-dirs: true, route-probe: { header: X-Upstream }');
  });

  /** api/VERSION as each api container answers it through the proxy, sampled every 50 ms while `body` runs. */
  async function versionsDuring<T>(body: () => Promise<T>): Promise<{ result: T; answers: Array<{ host: string; version: string }> }> {
    const answers: Array<{ host: string; version: string }> = [];
    let on = true;
    const loop = (async () => {
      while (on) {
        try {
          const r = await fetch(`http://127.0.0.1:${host.proxy.prod}/api/version`, { signal: AbortSignal.timeout(5000) });
          if (r.ok) answers.push((await r.json()) as { host: string; version: string });
        } catch {
          // Failed requests are the load loop's business; this one only reads versions.
        }
        await new Promise((res) => setTimeout(res, 50));
      }
    })();
    try {
      return { result: await body(), answers };
    } finally {
      on = false;
      await loop;
    }
  }

  /** The route probe saw the new container answer through the proxy (by its address) before the switch ended. */
  function routedBeforeSwitch(visible: string): void {
    const routed = visible.search(/prod: rolling api: the proxy routes to \S+/);
    assert.ok(routed >= 0, 'the route probe did not run');
    assert.ok(routed < visible.search(ROLLED), 'the proxy was seen routing only after the switch');
  }

  /** The host directory prod's api container mounts at /app/api. */
  function apiCodeDir(id: string): string {
    return host.fx.sh(`docker inspect --format '{{range .Mounts}}{{if eq .Destination "/app/api"}}{{.Source}}{{end}}{{end}}' ${id}`).trim();
  }
  after(async () => {
    if (figures.length) console.log(`# ${figures.join('\n# ')}`);
    await host?.stop();
  });

  it('promote rolls prod to the gated commit with 0 failed requests through the proxy', async () => {
    const { fx } = host;
    const [before] = host.prodApi();
    const gate = fx
      .hostLog('dev')
      .filter((r) => r.event === 'gate' && r.sha === fx.branches['rolling-next'])
      .at(-1) as { images?: Record<string, string> } | undefined;
    const gated = gate?.images?.api;
    assert.ok(gated, 'dev recorded no gated api image');
    assert.notEqual(gated, before.imageId, 'the new commit has the same api image');

    const {
      result: { run, load },
      answers,
    } = await versionsDuring(() => host.underLoad('promote', { sha: fx.branches['rolling-next'] }));
    assert.equal(run.code, 0, run.why);
    assert.equal(run.outputs.outcome, 'promoted');
    assert.match(run.visible, ROLLED, 'the api was not rolled');
    // The route probe saw the new container answer through the proxy (by its address) before the old one stopped.
    routedBeforeSwitch(run.visible);
    noFailures('promote', load, { visible: run.why });

    const now = host.prodApi();
    assert.equal(now.length, 1, 'one api container runs');
    assert.notEqual(now[0].id, before.id, 'the api container was not replaced');
    assert.equal(now[0].imageId, gated, 'prod does not run the gated api image');
    // The old container answered with its own code to the end, the new one with the new code, from
    // the new release's directory; the checkout followed once nothing mounted it.
    const byOld = answers.filter((a) => before.id.startsWith(a.host));
    const byNew = answers.filter((a) => now[0].id.startsWith(a.host));
    assert.ok(byOld.length > 10 && byNew.length > 0, `answers: ${byOld.length} from the old container, ${byNew.length} from the new`);
    assert.deepEqual([...new Set(byOld.map((a) => a.version))], ['rolling'], 'the old container served code it was not started with');
    assert.deepEqual([...new Set(byNew.map((a) => a.version))], ['rolling-next']);
    assert.equal(apiCodeDir(now[0].id), `${fx.dir}/state/releases/prod/${fx.branches['rolling-next']}/api`);
    assert.equal(fx.sh(`git -C ${fx.checkout('prod')} rev-parse HEAD`).trim(), fx.branches['rolling-next']);
  });

  it('rollback returns prod to the previous release with 0 failed requests through the proxy', async () => {
    const [before] = host.prodApi();
    const {
      result: { run, load },
      answers,
    } = await versionsDuring(() => host.underLoad('rollback', { 'release-id': host.firstRelease }));
    assert.equal(run.code, 0, run.why);
    assert.match(run.visible, ROLLED, 'the api was not rolled');
    routedBeforeSwitch(run.visible);
    noFailures('rollback', load, { visible: run.why });

    const now = host.prodApi();
    assert.equal(now.length, 1, 'one api container runs');
    assert.notEqual(now[0].id, before.id, 'the api container was not replaced');
    assert.equal(now[0].imageId, host.firstImage, "prod does not run the first release's api image");
    // The first release starts from a release directory of its own commit; the promoted one kept its code while it drained.
    const byOld = answers.filter((a) => before.id.startsWith(a.host));
    assert.ok(byOld.length > 10, `${byOld.length} answers from the old container`);
    assert.deepEqual([...new Set(byOld.map((a) => a.version))], ['rolling-next'], 'the old container served code it was not started with');
    assert.deepEqual([...new Set(answers.filter((a) => now[0].id.startsWith(a.host)).map((a) => a.version))], ['rolling']);
    assert.equal(apiCodeDir(now[0].id), `${host.fx.dir}/state/releases/prod/${host.fx.branches.rolling}/api`);
  });

  it("a deploy to prod (deploy.allow-prod) starts from the commit's release directory too", async () => {
    const { fx } = host;
    const run = await fx.run('deploy', { environment: 'prod', ref: 'rolling-next' });
    assert.equal(run.code, 0, run.why);
    const [api] = host.prodApi();
    assert.equal(apiCodeDir(api.id), `${fx.dir}/state/releases/prod/${fx.branches['rolling-next']}/api`);
    assert.equal(fx.sh(`git -C ${fx.checkout('prod')} rev-parse HEAD`).trim(), fx.branches['rolling-next']);
  });

  it('status sees drift in the release directory prod runs from: moved to another commit, then gone', async () => {
    const { fx } = host;
    const [api] = host.prodApi();
    const dir = `${fx.dir}/state/releases/prod/${fx.branches['rolling-next']}`;
    // The api container mounts its code from this directory; the checkout stays where the record says.
    assert.equal(apiCodeDir(api.id), `${dir}/api`);
    const clean = await fx.run('status', { environments: 'prod' });
    assert.equal(clean.code, 0, clean.why);
    assert.doesNotMatch(clean.summary, /drift/);

    fx.sh(`git -C ${dir} checkout -q --detach ${fx.branches.rolling}`);
    try {
      const moved = await fx.run('status', { environments: 'prod' });
      assert.equal(fx.sh(`git -C ${fx.checkout('prod')} rev-parse HEAD`).trim(), fx.branches['rolling-next'], 'the checkout itself did not move');
      assert.match(
        moved.summary,
        new RegExp(`services? [\\w, -]*\\bapi\\b[\\w, -]* runs? from ${dir}/deploy/stack, at ${fx.branches.rolling.slice(0, 12)}, not at the release's commit`),
      );
    } finally {
      fx.sh(`git -C ${dir} checkout -q --detach ${fx.branches['rolling-next']}`);
    }
    fx.sh(`mv ${dir} ${dir}.away`);
    try {
      const gone = await fx.run('status', { environments: 'prod' });
      assert.match(gone.summary, new RegExp(`services? [\\w, -]*\\bapi\\b[\\w, -]* runs? from ${dir}/deploy/stack, which no longer exists`));
    } finally {
      fx.sh(`mv ${dir}.away ${dir}`);
    }
  });
});
