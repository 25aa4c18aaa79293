/**
 * Flip-the-switch bench: failed requests while the promote and rollback actions (the bundles, over
 * SSH) switch prod's api, at 20 requests a second through Caddy on 127.0.0.1: first with the api in
 * promote.rolling, then in place (promote.rolling empty: `up -d` recreates it). The fixture host of
 * test/e2e/flip-rolling.test.ts: an api that takes 4 s to start and drains on SIGTERM, a proxy that
 * retries a failed dial for 3 s.
 * Usage: npx tsx bench/flip-rolling.ts   (TWINSTACK_E2E_SLOT picks the names and ports, as for the e2e suites)
 */
import { composeCommands } from '../test/e2e/support/fixture-host';
import { startRollingFixtureHost } from '../test/e2e/support/rolling-fixture-host';
import type { LoadResult } from '../test/e2e/support/rolling-stack';

async function main(): Promise<void> {
  const compose = composeCommands()[0];
  const host = await startRollingFixtureHost(compose);
  try {
    const rows: Array<{ what: string; load: LoadResult; code: number | null }> = [];
    for (const how of ['rolling', 'in place'] as const) {
      host.setRolling(how === 'rolling' ? ['api'] : []);
      const p = await host.underLoad('promote', { sha: host.fx.branches['rolling-next'] });
      rows.push({ what: `${how}: promote`, load: p.load, code: p.run.code });
      const r = await host.underLoad('rollback', { 'release-id': host.firstRelease });
      rows.push({ what: `${how}: rollback`, load: r.load, code: r.run.code });
    }
    console.log(`promote and rollback actions switching prod's api behind Caddy 2.6, ${compose}, 20 requests/s through 127.0.0.1, 4 s app start`);
    console.log('run                  exit  requests  during run  failed  longest gap');
    for (const r of rows) {
      console.log(
        `${r.what.padEnd(20)} ${String(r.code).padStart(4)}  ${String(r.load.sent).padStart(8)}  ${String(r.load.duringSwitch).padStart(10)}  ${String(r.load.failed).padStart(6)}  ${`${(r.load.longestGapMs / 1000).toFixed(2)} s`.padStart(11)}`,
      );
      if (r.load.failures.length) console.log(`  failures: ${[...new Set(r.load.failures)].join('; ')}`);
    }
    if (rows.some((r) => r.code !== 0)) throw new Error('an action run failed: the figures above are not comparable');
  } finally {
    await host.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
