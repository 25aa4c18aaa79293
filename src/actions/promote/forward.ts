/**
 * The way forward, past the point of no return: the real migration while the old containers serve,
 * the swap, the migration in the new container where compose v1 allows no other, health, and the
 * release recorded. Each step returns how far it got (Progress); a failure throws ForwardFailed,
 * which carries the stage and that progress to the rollback.
 */
import { upgradeHead as upgradeHeadCommand } from '../../infra/alembic';
import { hitLockTimeout, migrationErrorLine, migrationPlan, oneOffAlembic, upgradeHead } from '../../domain/alembic';
import type { ContainerState } from '../../domain/environment';
import { checkoutCommit } from '../../domain/git';
import { newReleaseId, probeHealthUrl, pruneOldReleases, tagRelease, waitHealthy } from '../../domain/release';
import { rollingOptions, switchServices } from '../../domain/rolling';
import { schemaState, writeCounters, type MigrationWindow, type SchemaState } from '../../domain/schema';
import { assertImages } from '../../domain/ship';
import { OperationFailed, errorMessage } from '../../infra/errors';
import { ignored } from '../../infra/logger';
import type { MigrationReport, Outcome, Stage } from './outcome';
import { outcomeBase } from './prepare';
import type { Committed, Promotion, ShippedSwarm } from './promotion';
import { assertConverged, deploySwarmRelease, newApiImage } from './swarm';
import { recordedImages, SwarmDeployFailed, type ServiceReport } from '../../domain/swarm-release';

/** How far the way forward got: what the rollback needs to know. */
export interface Progress {
  stage: Stage;
  migration: MigrationReport;
  /** prod's write counters around the migration: a restore leaves the migration's own writes out of the rows it loses. */
  window: Partial<MigrationWindow>;
  /** prod's schema once migrated before the swap. */
  migrated: SchemaState;
  /** prod's schema once the swap (and a migration in place) is done: what the new containers start on. */
  swapped: SchemaState;
  /** On a swarm: the engine's report of each service once the swap's deploy converged. */
  services?: ServiceReport[];
}

/** A failure past the point of no return, with the stage it happened in and how far the way forward had got. */
export class ForwardFailed extends Error {
  constructor(
    readonly progress: Progress,
    readonly error: unknown,
  ) {
    super(errorMessage(error));
  }
}

/** Runs one step of the way forward: a failure carries `progress` (a ForwardFailed thrown deeper carries its own). */
async function inStage<T>(progress: Progress, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    throw e instanceof ForwardFailed ? e : new ForwardFailed(progress, e);
  }
}

/** The real migration, in a one-off container of the new image, while the old containers serve. */
export async function migrateProd(p: Promotion, c: Committed): Promise<Progress> {
  const progress: Progress = {
    stage: 'migration',
    migration: {
      from: c.schemaBefore.revision,
      to: c.pending ? c.heads.join(',') : c.schemaBefore.revision,
      ms: 0,
      attempts: 0,
      pending: c.pending,
      inPlace: c.inPlace || undefined,
    },
    window: {},
    migrated: c.schemaBefore,
    swapped: c.schemaBefore,
  };
  if (!c.pending) return progress;
  const { value: migration, window } = await countedAround(p, progress, () => migrate(p, c));
  const done = { ...progress, migration, window };
  const migrated = await inStage(done, () => schemaState(p.host, p.prod));
  return { ...done, migrated, swapped: migrated };
}

/** The swap: the commit checked out and the shipped images started (compose up, no build). */
export async function swapProd(p: Promotion, c: Committed, progress: Progress): Promise<Progress> {
  const { host, config, prod, log, sha } = p;
  const swapping: Progress = { ...progress, stage: 'swap' };
  if (c.swarm) return swapSwarm(p, { ...c, swarm: c.swarm }, swapping);
  return inStage(swapping, async () => {
    // From release directories the checkout moves only once no container mounts it any more
    // (the first release may have been started from it); otherwise the containers are started from it.
    const releaseDirs = config.promote['release-dirs'];
    if (!releaseDirs) await checkoutCommit(host, prod, sha);
    log.startGroup('prod: compose up (no build: the shipped images)');
    try {
      await switchServices({
        host,
        env: releaseDirs ? c.at : prod,
        rolling: config.promote.rolling,
        options: rollingOptions(config, prod),
        log,
        label: 'prod compose up',
      });
    } finally {
      log.endGroup();
    }
    if (releaseDirs) await checkoutCommit(host, prod, sha);
    return swapping;
  });
}

/** The swap on a swarm: the engine's watch failing (it rolled back, or did not converge) is a failure of health. */
async function swapSwarm(p: Promotion, c: Committed & { swarm: ShippedSwarm }, swapping: Progress): Promise<Progress> {
  try {
    return { ...swapping, services: await deploySwarmRelease(p, c) };
  } catch (e) {
    throw new ForwardFailed({ ...swapping, stage: e instanceof SwarmDeployFailed ? 'health' : 'swap' }, e);
  }
}

/** compose v1, which can start no one-off container here: the migration runs in the new api container, after the swap. */
export async function migrateInPlace(p: Promotion, c: Committed, progress: Progress): Promise<Progress> {
  if (!c.inPlace) return progress;
  const { host, prod, config } = p;
  const timeoutSeconds = config.gate['timeout-seconds'];
  const planning: Progress = { ...progress, stage: 'migration' };
  const started = Date.now();
  const alembic = await inStage(planning, () => migrationPlan(host, prod, timeoutSeconds));
  // Recorded before it runs: a migration that fails here is reported as one, never as "none pending".
  const migration: MigrationReport = {
    from: alembic.current,
    to: alembic.heads.join(','),
    ms: 0,
    attempts: alembic.pending ? 1 : 0,
    pending: alembic.pending,
    inPlace: c.inPlace,
    planRead: true,
  };
  const planned: Progress = { ...planning, migration };
  if (!alembic.pending) return planned;
  const { window } = await countedAround(p, planned, () => upgradeHead(host, prod, alembic, timeoutSeconds));
  const done: Progress = { ...planned, window, migration: { ...migration, ms: Date.now() - started } };
  return { ...done, swapped: await inStage(done, () => schemaState(host, prod)) };
}

export interface Healthy {
  progress: Progress;
  containers: ContainerState[];
}

/** Health: every container healthy, the health URL answers, and prod runs exactly the shipped image ids. */
export async function checkHealth(p: Promotion, c: Committed, progress: Progress): Promise<Healthy> {
  const { host, prod, log } = p;
  const checking: Progress = { ...progress, stage: 'health' };
  return inStage(checking, async () => {
    const containers = c.swarm ? await swarmHealth(p, c, checking) : await waitHealthy(host, prod, log);
    if (!c.swarm) await probeHealthUrl(host, prod, log);
    if (!c.swarm) assertImages(containers, c.expected, 'prod');
    // An app that migrates when it starts changes the schema after our migration: say so.
    const after = await schemaState(host, prod);
    if (after.fingerprint === checking.swapped.fingerprint && after.revision === checking.swapped.revision) return { progress: checking, containers };
    log.warning(
      `prod's schema changed when the new containers started (${checking.migrated.revision || 'none'} → ${after.revision || 'none'}): the app migrates on start`,
    );
    return { progress: { ...checking, migration: { ...checking.migration, to: after.revision, entrypoint: true } }, containers };
  });
}

/** Health on a swarm: the watch saw every service converge on its digest, and the health URL answers. */
async function swarmHealth(p: Promotion, c: Committed, checking: Progress): Promise<ContainerState[]> {
  const { host, prod, log } = p;
  assertConverged(checking.services, c.expected);
  await probeHealthUrl(host, prod, log);
  // The task containers on the manager's node, where it can list them: the summary's table only.
  return prod.containers(host).catch(ignored(log, "listing prod's task containers", []));
}

/** The new release: its images tagged, recorded in prod's host log; then old releases pruned. */
export async function recordPromotion(p: Promotion, c: Committed, healthy: Healthy): Promise<Outcome> {
  const { host, config, prod, log, sha, gated } = p;
  const { progress, containers } = healthy;
  return inStage(progress, async () => {
    const releaseId = c.swarm?.releaseId ?? newReleaseId(sha);
    // On a swarm the release is its digests, in the registry: nothing is tagged on the manager.
    const images = c.swarm ? await recordedImages({ host, config, env: prod, log }, c.swarm.built) : await tagRelease(host, prod, releaseId, containers);
    const unpinned = c.swarm?.built.unpinned.map((u) => u.service);
    await p.op.record('release', {
      release: releaseId,
      sha,
      kind: 'promote',
      images,
      ...(c.swarm ? { digests: c.swarm.built.images, unpinned: unpinned?.length ? unpinned : undefined } : {}),
      previous: c.previous?.release,
      devRelease: gated.devRelease?.release,
      gate: gated.gate?.op,
      backup: c.backup.id,
      shipped: c.ship.ship.map((s) => s.service),
      rebuilt: c.ship.rebuild.map((s) => s.service),
    });
    // Housekeeping once the release is recorded: a failure here is a warning, never a rollback.
    await pruneOldReleases({ host, config, env: prod, current: { release: releaseId, sha }, previous: c.previous, log });
    return { ...outcomeBase(p, c), outcome: 'promoted', releaseId, rehearsal: c.rehearsal, migration: progress.migration, containers };
  });
}

/** alembic upgrade head in a one-off container, lock_timeout set, retried when it only waited for a lock. */
async function migrate(p: Promotion, c: Committed): Promise<MigrationReport> {
  const { host, config, log } = p;
  const { at, schemaBefore: before, heads } = c;
  const attempts = config.promote['migration-attempts'];
  const lockTimeout = config.promote['lock-timeout-ms'];
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    const r = await oneOffAlembic(host, at, upgradeHeadCommand(), {
      image: newApiImage(p, c),
      env: { PGOPTIONS: `-c lock_timeout=${lockTimeout}` },
      timeoutSeconds: config.gate['timeout-seconds'],
      label: `prod alembic upgrade head (new image, attempt ${attempt})`,
      name: `${at.project}-twinstack-migrate`,
    });
    if (r.exitCode === 0) {
      log.info(`prod migrated ${before.revision || 'none'} → ${heads.join(',')} in ${Date.now() - started} ms (attempt ${attempt})`);
      return { from: before.revision, to: heads.join(','), ms: Date.now() - started, attempts: attempt, pending: true };
    }
    const output = `${r.stdout}\n${r.stderr}`;
    if (hitLockTimeout(output) && attempt < attempts) {
      log.warning(`the migration waited more than ${lockTimeout} ms for a lock (attempt ${attempt} of ${attempts}); retrying in ${attempt * 5} s`);
      await new Promise((res) => setTimeout(res, attempt * 5000));
      continue;
    }
    throw new OperationFailed(
      `alembic upgrade head failed${hitLockTimeout(output) ? ` (still waiting for a lock after ${attempts} attempts of ${lockTimeout} ms)` : ''}: ${migrationErrorLine(output)}`,
    );
  }
}

/**
 * Runs a migration step between two readings of prod's write counters, the second also when it
 * fails: then the failure carries both readings, for the rows a restore would lose.
 */
async function countedAround<T>(p: Promotion, progress: Progress, step: () => Promise<T>): Promise<{ value: T; window: Partial<MigrationWindow> }> {
  const { host, prod, log } = p;
  // Neither reading throws: one that fails is logged at debug, and the rows lost then include the migration's own.
  const before = await writeCounters(host, prod).catch(ignored(log, 'reading the write counters before the migration'));
  const readAfter = () => writeCounters(host, prod).catch(ignored(log, 'reading the write counters after the migration'));
  let value: T;
  try {
    value = await step();
  } catch (e) {
    throw new ForwardFailed({ ...progress, window: { before, after: await readAfter() } }, e);
  }
  return { value, window: { before, after: await readAfter() } };
}
