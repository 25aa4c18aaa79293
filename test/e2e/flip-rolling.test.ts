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

  function noFailures(what: string, load: LoadResult): void {
    figures.push(
      `${what}: ${load.failed} failed of ${load.sent} (${load.duringSwitch} sent during the run), longest gap ${(load.longestGapMs / 1000).toFixed(2)} s`,
    );
    assert.equal(load.failed, 0, `${what}: ${load.failed} of ${load.sent} requests failed: ${load.failures.join('; ')}`);
    // The run covers a backup, the new api's 4 s start, its healthcheck, the proxy's settle time and
    // the old container's drain: far more than 100 requests go out while it runs.
    assert.ok(load.duringSwitch >= 100, `${what}: only ${load.duringSwitch} requests were sent during the run`);
  }

  before(async () => {
    host = await startRollingFixtureHost(composeCommand);
  });
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

    const { run, load } = await host.underLoad('promote', { sha: fx.branches['rolling-next'] });
    assert.equal(run.code, 0, run.visible);
    assert.equal(run.outputs.outcome, 'promoted');
    assert.match(run.visible, ROLLED, 'the api was not rolled');
    noFailures('promote', load);

    const now = host.prodApi();
    assert.equal(now.length, 1, 'one api container runs');
    assert.notEqual(now[0].id, before.id, 'the api container was not replaced');
    assert.equal(now[0].imageId, gated, 'prod does not run the gated api image');
  });

  it('rollback returns prod to the previous release with 0 failed requests through the proxy', async () => {
    const [before] = host.prodApi();
    const { run, load } = await host.underLoad('rollback', { 'release-id': host.firstRelease });
    assert.equal(run.code, 0, run.visible);
    assert.match(run.visible, ROLLED, 'the api was not rolled');
    noFailures('rollback', load);

    const now = host.prodApi();
    assert.equal(now.length, 1, 'one api container runs');
    assert.notEqual(now[0].id, before.id, 'the api container was not replaced');
    assert.equal(now[0].imageId, host.firstImage, "prod does not run the first release's api image");
  });
});
