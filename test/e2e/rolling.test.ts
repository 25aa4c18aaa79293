/**
 * A switch with no failed request, end to end: a stateless service on a Docker network behind a real
 * Caddy, replaced by rollingReplace through the suite's sshd while a load loop sends 20 requests a
 * second through the proxy on 127.0.0.1. To a new image and back again (a rollback), and a new image
 * that never turns healthy: every request answered, and the host runs exactly what it should.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, it } from 'node:test';
import { ConfigurationError } from '../../src/infra/errors';
import { HealthError } from '../../src/domain/release';
import { rollingReplace, type RollingOptions, type ServiceSwitch } from '../../src/domain/rolling';
import { composeCommands } from './support/fixture-host';
import { startLoad, startRollingStack, type LoadResult, type RollingStack } from './support/rolling-stack';

// Both compose versions: the scale-up and --no-recreate behaviour the technique relies on is theirs.
for (const composeCommand of composeCommands()) {
  describe(`rolling replacement behind Caddy with ${composeCommand}`, () => {
    let stack: RollingStack;
    let opts: RollingOptions;

    /** Runs the switch under load: 1 s of traffic before it, 1 s after. */
    async function underLoad<T>(work: () => Promise<T>): Promise<{ result?: T; error?: unknown; load: LoadResult }> {
      const load = startLoad(stack.proxyPort, 20);
      await new Promise((r) => setTimeout(r, 1000));
      load.markStart();
      let result: T | undefined;
      let error: unknown;
      try {
        result = await work();
      } catch (e) {
        error = e;
      }
      load.markEnd();
      await new Promise((r) => setTimeout(r, 1000));
      return { result, error, load: await load.stop() };
    }

    function noFailures(load: LoadResult): void {
      assert.equal(load.failed, 0, `${load.failed} of ${load.sent} requests failed: ${load.failures.join('; ')}; the proxy said: ${stack.proxyErrors()}`);
      // The loop covered the whole switch: it starts a new container that takes 1.5 s to listen and
      // then a healthcheck, so well over 20 requests were sent while the switch ran.
      assert.ok(load.duringSwitch >= 20, `only ${load.duringSwitch} requests were sent during the switch`);
    }

    before(async () => {
      stack = await startRollingStack(composeCommand);
      opts = {
        drainSeconds: 10,
        healthTimeoutSeconds: 40,
        routeProbe: { url: `http://127.0.0.1:${stack.proxyPort}/health`, header: 'X-Served-By', timeoutSeconds: 30 },
      };
    });
    after(async () => {
      await stack?.stop();
    });

    it('switches to a new image with 0 failed requests through the proxy', async () => {
      const [old] = stack.running();
      assert.equal(old.imageId, stack.images.v1);
      stack.use('v2');
      const { result, error, load } = await underLoad(() => rollingReplace({ host: stack.host, env: stack.prod, services: ['api'], log: stack.log, opts }));
      assert.ifError(error);
      noFailures(load);
      // Both releases answered during the run: the switch happened while the requests flowed.
      assert.ok(load.versions.v1 > 0 && load.versions.v2 > 0, JSON.stringify(load.versions));

      const now = stack.running();
      assert.equal(now.length, 1, 'one container of the service runs');
      assert.notEqual(now[0].id, old.id, 'the container was replaced');
      assert.equal(now[0].imageId, stack.images.v2, 'the new image runs');
      const [sw] = result as ServiceSwitch[];
      assert.deepEqual([sw.service, sw.from, sw.to, sw.imageId], ['api', [old.id], now[0].id, stack.images.v2]);
    });

    it('rolls back to the previous image with 0 failed requests', async () => {
      const [old] = stack.running();
      stack.use('v1');
      const { error, load } = await underLoad(() => rollingReplace({ host: stack.host, env: stack.prod, services: ['api'], log: stack.log, opts }));
      assert.ifError(error);
      noFailures(load);
      assert.ok(load.versions.v2 > 0 && load.versions.v1 > 0, JSON.stringify(load.versions));
      const now = stack.running();
      assert.equal(now.length, 1);
      assert.notEqual(now[0].id, old.id);
      assert.equal(now[0].imageId, stack.images.v1);
    });

    it('keeps the old container serving when the new image never turns healthy', async () => {
      const [old] = stack.running();
      stack.use('never-ready');
      const { error, load } = await underLoad(() => rollingReplace({ host: stack.host, env: stack.prod, services: ['api'], log: stack.log, opts }));
      stack.use('v1');
      assert.ok(error instanceof HealthError, `expected a HealthError, got ${String(error)}`);
      assert.equal(error.service, 'api');
      assert.match(error.message, /^prod: the new api container \S+ is (unhealthy|still starting after 40 s); its last lines: .*NEVER_READY=1, not listening/);
      assert.match(error.logs, /rolling fixture never-ready on \w+: starting/);
      noFailures(load);
      assert.deepEqual(Object.keys(load.versions), ['v1'], 'only the old release answered');
      assert.deepEqual(stack.running(), [old], 'the same old container runs, alone');
      const all = stack.sh(`docker ps -aq --filter label=com.docker.compose.project=${stack.prod.project}`).trim().split('\n');
      assert.deepEqual(all, [old.id], 'the failed container was removed');
    });

    it('keeps the old container serving when the proxy never routes to the new one (route probe)', async () => {
      const [old] = stack.running();
      stack.use('v2');
      // A header no response carries: the probe never sees the new container answer through the proxy.
      const probe = { ...opts, routeProbe: { url: `http://127.0.0.1:${stack.proxyPort}/health`, header: 'X-Never-Sent', timeoutSeconds: 3 } };
      const { error, load } = await underLoad(() => rollingReplace({ host: stack.host, env: stack.prod, services: ['api'], log: stack.log, opts: probe }));
      stack.use('v1');
      assert.ok(error instanceof HealthError, `expected a HealthError, got ${String(error)}`);
      assert.equal(error.state, 'not routed');
      assert.match(error.message, /^prod: the proxy did not route to the new api container \S+ within 3 s/);
      assert.equal(load.failed, 0, `${load.failed} of ${load.sent} requests failed: ${load.failures.join('; ')}; the proxy said: ${stack.proxyErrors()}`);
      assert.deepEqual(stack.running(), [old], 'the same old container runs, alone');
      const all = stack.sh(`docker ps -aq --filter label=com.docker.compose.project=${stack.prod.project}`).trim().split('\n');
      assert.deepEqual(all, [old.id], 'the new container was removed');
    });

    it('refuses a rolling service the compose files do not define, in one line, before changing anything', async () => {
      const [old] = stack.running();
      await assert.rejects(rollingReplace({ host: stack.host, env: stack.prod, services: ['api', 'web'], log: stack.log, opts }), (e: Error) => {
        assert.ok(e instanceof ConfigurationError, String(e));
        assert.equal(e.message, `promote.rolling names "web", which prod's compose files do not define (services: api): correct promote.rolling`);
        return true;
      });
      assert.deepEqual(stack.running(), [old]);
    });
  });
}
