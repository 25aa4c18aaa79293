/**
 * Rolling bench: the same stateless service behind the same Caddy (test/fixtures/rolling), switched
 * to a new image and back again, first by rollingReplace and then in place (`up -d` recreating the
 * container, what promote does today), each under a load loop of 20 requests a second through the
 * proxy on 127.0.0.1. Prints, per switch, the requests sent, how many failed, and the longest time
 * without a successful answer. The service takes 1.5 s to start listening (START_DELAY_MS), a small
 * figure for a real FastAPI or Next.js app, so the in-place gap here is a lower bound.
 * Usage: npx tsx bench/rolling.ts   (TWINSTACK_E2E_SLOT picks the names and ports, as for the e2e suites)
 */
import { replaceInPlace, rollingReplace } from '../src/domain/rolling';
import { composeCommands } from '../test/e2e/support/fixture-host';
import { startLoad, startRollingStack, type ImageName, type LoadResult, type RollingStack } from '../test/e2e/support/rolling-stack';

interface Row {
  how: string;
  to: ImageName;
  load: LoadResult;
  switchMs: number;
}

async function measure(stack: RollingStack, how: 'rolling' | 'in place', to: ImageName): Promise<Row> {
  stack.use(to);
  const load = startLoad(stack.proxyPort, 20);
  await new Promise((r) => setTimeout(r, 2000));
  load.markStart();
  const t = Date.now();
  if (how === 'rolling') {
    await rollingReplace({
      host: stack.host,
      env: stack.prod,
      services: ['api'],
      log: stack.log,
      opts: { drainSeconds: 10, routeProbe: { url: `http://127.0.0.1:${stack.proxyPort}/health`, header: 'X-Served-By' } },
    });
  } else {
    await replaceInPlace({ host: stack.host, env: stack.prod, services: ['api'], log: stack.log });
  }
  const switchMs = Date.now() - t;
  load.markEnd();
  // Time for the proxy's retries to end: every request is answered or failed before the count.
  await new Promise((r) => setTimeout(r, 2000));
  return { how, to, load: await load.stop(), switchMs };
}

async function main(): Promise<void> {
  const compose = composeCommands()[0];
  const stack = await startRollingStack(compose);
  try {
    const rows: Row[] = [];
    for (const how of ['rolling', 'in place'] as const) {
      rows.push(await measure(stack, how, 'v2'));
      rows.push(await measure(stack, how, 'v1'));
    }
    console.log(`one stateless service behind Caddy 2.6 (dynamic a, refresh 1 s), ${compose}, 20 requests/s through 127.0.0.1, 1.5 s app start`);
    console.log('switch                           requests  during switch  failed  longest gap  switch took');
    for (const r of rows) {
      const what = `${r.how} to ${r.to === 'v2' ? 'new image' : 'old image (rollback)'}`;
      console.log(
        `${what.padEnd(32)} ${String(r.load.sent).padStart(8)}  ${String(r.load.duringSwitch).padStart(13)}  ${String(r.load.failed).padStart(6)}  ${`${(r.load.longestGapMs / 1000).toFixed(2)} s`.padStart(11)}  ${`${(r.switchMs / 1000).toFixed(1)} s`.padStart(11)}`,
      );
      if (r.load.failures.length) console.log(`  failures: ${[...new Set(r.load.failures)].join('; ')}`);
    }
    const sum = (how: string) =>
      rows
        .filter((r) => r.how === how)
        .reduce((a, r) => ({ failed: a.failed + r.load.failed, sent: a.sent + r.load.sent, gap: Math.max(a.gap, r.load.longestGapMs) }), {
          failed: 0,
          sent: 0,
          gap: 0,
        });
    const rolling = sum('rolling');
    const inPlace = sum('in place');
    console.log(
      `rolling: ${rolling.failed} failed of ${rolling.sent}, longest gap ${(rolling.gap / 1000).toFixed(2)} s; in place: ${inPlace.failed} failed of ${inPlace.sent}, longest gap ${(inPlace.gap / 1000).toFixed(2)} s`,
    );
  } finally {
    await stack.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
