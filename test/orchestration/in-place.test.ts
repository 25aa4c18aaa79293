/**
 * How the in-place switch (promote's swap and every rollback, for services not in promote.rolling)
 * asks compose to recreate the services. Compose v2 replaces every changed container of one `up`
 * before starting any, so a slow stop (the worker) kept the api down: under v2 each service gets
 * an `up` of its own, in the dependency order `config --services` prints; v1 keeps its single `up`.
 * The gap itself is measured by `npm run bench -- in-place` on a real engine, and
 * test/e2e/flip.test.ts checks that a plain `up` afterwards recreates nothing.
 */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { switchServices } from '../../src/domain/rolling';
import { MemoryLogger } from '../../src/infra/logger';
import { FakeHost } from '../support/fake-host';

function prod(compose: 'docker compose' | 'docker-compose'): Environment {
  const env = (name: string) =>
    `{checkout: /srv/${name}, project: ${name}, compose-files: [a.yml], env-file: .env, url: 'http://127.0.0.1:1', database: {name: ${name}, user: u}}`;
  const config = parseConfig(`compose-command: ${compose}\nenvironments:\n  prod: ${env('prod')}\n  dev: ${env('dev')}\n`, 'test');
  return new Environment('prod', config);
}

/** A host whose prod runs nothing rolling; `config --services` prints the services in dependency order. */
function host(): FakeHost {
  return new FakeHost()
    .on('containers', /ps -aq/, { stdout: '[]' })
    .on('services', / config --services$/, { stdout: 'db\ncache\napi\nworker\nweb\n' })
    .on('up', / up -d --no-build --remove-orphans( \w+)?$/, {});
}

describe('the in-place switch', () => {
  it('under compose v2 runs one up per service, in dependency order', async () => {
    const h = host();
    await switchServices({ host: h, env: prod('docker compose'), rolling: [], options: { drainSeconds: 10 }, log: new MemoryLogger(), label: 'compose up' });
    h.assertAllScripted();
    const ups = h.scripts(/ up -d /).map((s) => s.replace(/^.* up -d --no-build --remove-orphans/, '').trim());
    assert.deepEqual(ups, ['db', 'cache', 'api', 'worker', 'web']);
  });

  it('under docker-compose v1 keeps one up for the whole project', async () => {
    const h = host();
    await switchServices({ host: h, env: prod('docker-compose'), rolling: [], options: { drainSeconds: 10 }, log: new MemoryLogger(), label: 'compose up' });
    h.assertAllScripted();
    assert.equal(h.scripts(/ up -d /).length, 1);
    assert.match(h.scripts(/ up -d /)[0], /^docker-compose .* up -d --no-build --remove-orphans$/);
    assert.equal(h.scripts(/config --services/).length, 0);
  });
});
