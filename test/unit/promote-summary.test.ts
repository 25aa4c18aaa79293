/**
 * promote's job summary, read at 3 a.m.: what it says about the images and the migration must match
 * what happened to prod. The outcomes are the ones the promote flow returns for each case.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { promoteSummary, type Outcome } from '../../src/actions/promote/promote';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import type { Release } from '../../src/domain/release';
import { parseSha } from '../../src/infra/sha';

const config = parseConfig(fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8'), 'makapix.yml');
const prod = new Environment('prod', config);
const sha = parseSha('c'.repeat(40))!;
const previous: Release = { release: 'r-old', sha: 'a'.repeat(40), kind: 'deploy', images: {}, time: '2026-01-01T00:00:00Z' };
const ship: Outcome['ship'] = {
  ship: [{ service: 'api', id: `sha256:${'1'.repeat(64)}`, name: 'makapix-prod-api:local' }],
  rebuild: [{ service: 'web', name: 'makapix-prod-web:local', reasons: ['build arg NEXT_PUBLIC_URL differs'] }],
  asConfigured: [],
};
const inPlace =
  'prod: docker-compose v1 cannot start a one-off api container (host networking with depends_on): the migration runs in the new container after the swap, unrehearsed.';
/** What every outcome says; each case adds its own outcome and what it carries. */
const common = { sha, releaseId: 'r-old', previous, containers: [], interrupted: [] };
const summary = (o: Outcome) => promoteSummary(prod, o, { sha, images: {} }).toMarkdown();

describe("promote's summary", () => {
  it('a refused promotion does not say what prod gets: none of the images reached it', () => {
    const text = summary({
      ...common,
      outcome: 'refused',
      ship,
      failure: { stage: 'rehearsal', message: 'the migration failed when rehearsed' },
      data: { schemaMoved: false },
    });
    assert.doesNotMatch(text, /prod gets/);
    assert.match(text, /\| service \| prod would have got \(not shipped\) \| why \|/);
    assert.match(text, /None of these reached prod's containers: prod still runs `r-old`/);
  });

  it('a promotion says what prod gets', () => {
    assert.match(summary({ ...common, outcome: 'promoted', releaseId: 'r-new', ship }), /\| service \| prod gets \| why \|/);
  });

  it('compose v1: a migration that ran in the new container after the swap and failed is reported as failed, never as "no migration pending"', () => {
    // What the flow records once alembic was asked after the swap, before the upgrade runs.
    const migration = { from: '0001', to: '0002', ms: 0, attempts: 1, pending: true, inPlace, planRead: true };
    const text = summary({
      ...common,
      outcome: 'rolled-back',
      ship,
      migration,
      failure: { stage: 'migration', message: 'alembic upgrade head failed' },
      data: { schemaMoved: true },
    });
    assert.doesNotMatch(text, /no migration pending/);
    assert.match(text, /prod's migration 0001 → 0002 \*\*failed\*\* in the new api container, after the swap/);
  });

  it('compose v1: a swap that failed before alembic was asked does not claim there was no migration pending', () => {
    const migration = { from: '0001', to: '0001', ms: 0, attempts: 0, pending: false, inPlace };
    const text = summary({
      ...common,
      outcome: 'rolled-back',
      ship,
      migration,
      failure: { stage: 'swap', message: 'compose up failed' },
      data: { schemaMoved: false },
    });
    assert.doesNotMatch(text, /no migration pending/);
    assert.match(text, /the migration was to run in the new api container after the swap; it never ran/);
  });

  it('a migration that failed before the swap is reported as failed', () => {
    const migration = { from: '0001', to: '0002', ms: 0, attempts: 0, pending: true };
    const text = summary({
      ...common,
      outcome: 'rolled-back',
      ship,
      migration,
      failure: { stage: 'migration', message: 'alembic upgrade head failed' },
      data: { schemaMoved: true },
    });
    assert.match(text, /prod's migration 0001 → 0002 \*\*failed\*\* before the swap/);
  });
});
