/**
 * promote's pure decisions for a swarm prod: which configurations are refused before the host is
 * touched, when the engine's reports count as prod running the release, and what the summary says
 * of the digests and of a deploy the engine rolled back.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { promoteSummary, type Outcome } from '../../src/actions/promote/promote';
import { assertConverged, refuseSwarmWriteFreeze, requireGatedDigests } from '../../src/actions/promote/swarm';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import type { ServiceReport } from '../../src/domain/swarm-release';
import { ConfigurationError, OperationFailed } from '../../src/infra/errors';
import { parseSha } from '../../src/infra/sha';

const YAML = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');
const config = (o: { prodSwarm: boolean; extra?: string }) =>
  parseConfig(
    `${o.prodSwarm ? YAML.replace('vault: /mnt/vault-1', 'vault: /mnt/vault-1\n    target: swarm') : YAML}\n${o.extra ?? ''}\nswarm:\n  registry: 127.0.0.1:5000\n`,
    'makapix.yml',
  );
const sha = parseSha('c'.repeat(40))!;
const digest = (repo: string, c: string) => `127.0.0.1:5000/${repo}@sha256:${c.repeat(64)}`;
const API = digest('makapix-api', '1');
const DB = digest('makapix-db', '2');

function report(service: string, o: Partial<ServiceReport> = {}): ServiceReport {
  const d = service === 'api' ? API : DB;
  return { service, image: d, digest: d, replicas: { wanted: 1, running: 1 }, failed: [], steady: true, verdict: 'converged', ...o };
}

describe('promote on a swarm prod: refusals before the host is touched', () => {
  it('promote.write-freeze is refused with a swarm prod, and left alone with a compose prod', () => {
    const freeze = 'promote: { write-freeze: [worker] }';
    assert.throws(() => refuseSwarmWriteFreeze(config({ prodSwarm: true, extra: freeze })), ConfigurationError);
    assert.doesNotThrow(() => refuseSwarmWriteFreeze(config({ prodSwarm: false, extra: freeze })));
    assert.doesNotThrow(() => refuseSwarmWriteFreeze(config({ prodSwarm: true })));
  });

  it("a dev release without digests is refused only when prod's target is swarm", () => {
    const swarmProd = new Environment('prod', config({ prodSwarm: true }));
    const composeProd = new Environment('prod', config({ prodSwarm: false }));
    assert.throws(() => requireGatedDigests(swarmProd, { sha, images: { api: 'sha256:1' } }), /deploy dev on a swarm/);
    assert.doesNotThrow(() => requireGatedDigests(swarmProd, { sha, images: {}, digests: { api: API } }));
    assert.doesNotThrow(() => requireGatedDigests(composeProd, { sha, images: { api: 'sha256:1' } }));
  });
});

describe("promote on a swarm prod: the engine's reports as health", () => {
  const release = { api: API, db: DB };

  it('every service of the release converged on its digest: prod runs it', () => {
    assert.doesNotThrow(() => assertConverged([report('api'), report('db')], release));
  });

  it('a service missing, still moving, or on another digest is not the release', () => {
    assert.throws(() => assertConverged([report('api')], release), /db is not in the stack/);
    assert.throws(
      () => assertConverged([report('api'), report('db', { verdict: 'waiting', replicas: { wanted: 1, running: 0 } })], release),
      /db did not converge \(0\/1/,
    );
    assert.throws(() => assertConverged([report('api', { digest: DB }), report('db')], release), OperationFailed);
    assert.throws(() => assertConverged(undefined, release), /api is not in the stack/);
  });
});

describe("promote's summary on a swarm prod", () => {
  const prod = new Environment('prod', config({ prodSwarm: true }));
  const common = { sha, releaseId: 'r-new', containers: [], interrupted: [] };
  const ship: Outcome['ship'] = {
    ship: [{ service: 'db', id: DB, name: '127.0.0.1:5000/makapix-db:prod' }],
    rebuild: [{ service: 'api', name: '127.0.0.1:5000/makapix-api:prod', reasons: ['build arg NEXT_PUBLIC_API_BASE_URL differs'] }],
    asConfigured: [],
  };

  it('names the digest of every service and where it came from', () => {
    const text = promoteSummary(prod, { ...common, outcome: 'promoted', ship, digests: { api: API, db: DB } }, { sha, images: {} }).toMarkdown();
    assert.ok(text.includes(`\`api\`: \`${API}\` (built for prod and pushed)`));
    assert.ok(text.includes(`\`db\`: \`${DB}\` (dev's, as gated)`));
    assert.ok(text.includes(`| db | gated \`${DB}\` |`));
  });

  it("a deploy the engine rolled back: the engine's line for each service", () => {
    const engine = ['`api`: update rollback_completed, 1/1 running, runs `x`; task t1 on vps Failed (unhealthy)'];
    const text = promoteSummary(
      prod,
      { ...common, outcome: 'rolled-back', ship, failure: { stage: 'health', message: 'the swarm update failed', engine }, data: { schemaMoved: false } },
      { sha, images: {} },
    ).toMarkdown();
    assert.match(text, /What the engine did \(prod's stack\)/);
    assert.ok(text.includes(engine[0]));
  });
});
