/**
 * The steps before the point of no return: prod's state, the commit beside prod's checkout, a
 * backup, the images under prod's names, the rehearsal. None of them changes what prod runs or its
 * database; one that says no returns a Refusal, and refusePromotion leaves prod as it was.
 */
import { branchContains } from '../../infra/git';
import { short } from '../../infra/sha';
import { takeBackup, usableBackup, type BackupManifest } from '../../domain/backup';
import { ensureCommit, releaseEnvironment, removeScratchCheckout, scratchCheckout } from '../../domain/git';
import type { Environment } from '../../domain/environment';
import { oneOffHeads, OneOffUnavailable } from '../../domain/alembic';
import { databaseEnvValue, rehearsalRefusal, rehearse, type RehearsalResult } from '../../domain/rehearsal';
import { currentRelease, restoreReleaseImages } from '../../domain/release';
import { schemaState } from '../../domain/schema';
import { buildDefinitions, defaultImageName, mergedBuilds, mergedConfig, shipImages, shipPlan } from '../../domain/ship';
import { drift, driftMessage, observe } from '../../domain/state';
import { OperationFailed, errorMessage } from '../../infra/errors';
import { ignored } from '../../infra/logger';
import { isolationGate } from '../../safety/preflight';
import type { Outcome } from './outcome';
import type { BackedUp, Committed, Opened, Promotion, Refusal, Rehearsed, Shipped, ShippedSwarm, Staged } from './promotion';
import { newApiImage, shipSwarmRelease, gatedDigests } from './swarm';

/** Time kept for the automatic rollback when the run has a deadline. */
export const ROLLBACK_RESERVE_MS = 30 * 60_000;

const workDir = (p: Promotion) => `${p.config['state-dir']}/prod/work/promote`;
const devWorkDir = (p: Promotion) => `${p.config['state-dir']}/prod/work/promote-dev-config`;

/** prod's release, which must be what really runs: it is the rollback point. */
export async function openPromotion(p: Promotion): Promise<Opened> {
  const previous = currentRelease(p.op.records);
  const interrupted = [
    ...p.op.interrupted.map((r) => `${r.action} ${r.op} by ${r.run} (started ${r.time}) never finished`),
    ...p.op.recovered.map((r) => `a cut host change was put right first: ${r}`),
  ];
  const prodDrift = drift(await observe(p.host, p.prod), previous);
  if (previous && prodDrift.length) {
    throw new OperationFailed(
      `${driftMessage('prod', previous, prodDrift)} ` +
        `There is no known-good state to roll back to, so nothing was changed. Settle prod first: run the rollback workflow with release-id ${previous.release}.`,
    );
  }
  return { previous, interrupted };
}

/** prod already runs the commit. */
export async function unchangedOutcome(p: Promotion, opened: Opened & { previous: NonNullable<Opened['previous']> }): Promise<Outcome> {
  const { previous, interrupted } = opened;
  p.log.info(`prod already runs ${short(p.sha)} (release ${previous.release}); nothing to do`);
  return { outcome: 'unchanged', sha: p.sha, releaseId: previous.release, previous, containers: await p.prod.containers(p.host), interrupted };
}

/** Only commits merged on promote.branch are promoted. */
export async function checkOnBranch(p: Promotion): Promise<void> {
  const { host, prod, sha } = p;
  await ensureCommit(host, prod, sha);
  const branch = p.config.promote.branch;
  const onBranch = await host.run(branchContains(sha, `refs/remotes/${prod.cfg.remote}/${branch}`), {
    cwd: prod.cfg.checkout,
    check: false,
    quiet: true,
    timeoutSeconds: 120,
  });
  if (onBranch.exitCode !== 0 || !onBranch.stdout.trim()) {
    throw new OperationFailed(
      `${short(sha)} is not on ${prod.cfg.remote}/${branch} (promote.branch): only commits merged there are promoted. Nothing was changed.`,
    );
  }
  p.log.info(`${short(sha)} is on ${onBranch.stdout.trim().split('\n').slice(0, 3).join(', ')}`);
}

/** The new commit beside prod's checkout: with promote.release-dirs the release's own directory, which its containers will mount. */
export async function placeCommit(p: Promotion): Promise<Environment> {
  if (p.config.promote['release-dirs']) return releaseEnvironment(p.host, p.config, p.prod, p.sha);
  return p.prod.at(await scratchCheckout(p.host, p.prod, p.sha, workDir(p)));
}

/** Runs the rest of the promotion; whatever happens, the scratch checkouts are removed after it. */
export async function withScratchCheckouts(p: Promotion, rest: () => Promise<Outcome>): Promise<Outcome> {
  try {
    return await rest();
  } finally {
    await removeScratchCheckout(p.host, p.prod, workDir(p));
    await removeScratchCheckout(p.host, p.dev, devWorkDir(p));
  }
}

/** What ships: gated images where prod builds them as dev did, rebuilt where the builds differ. */
export async function stageRelease(p: Promotion, opened: Opened, at: Environment): Promise<Staged> {
  const { host, config, prod, dev, log } = p;
  // Read once: the builds and promote.database-env's value both come from it.
  const prodConfig = await mergedConfig(host, at);
  const prodBuilds = buildDefinitions(prodConfig, at.cfg.checkout);
  // dev's merged configuration of the same commit, from a scratch checkout of dev's own clone.
  const devAt = dev.at(await scratchCheckout(host, dev, p.sha, devWorkDir(p)));
  const devBuilds = await mergedBuilds(host, devAt);
  await removeScratchCheckout(host, dev, devWorkDir(p));
  const names: Record<string, string> = {};
  // On a swarm a release's image names are digests: a service's own name is its configured one.
  const previousName = (service: string) => (prod.onSwarm ? undefined : opened.previous?.images[service]?.name);
  for (const [service, b] of prodBuilds)
    names[service] = b.image ?? previousName(service) ?? defaultImageName(prod.project, service, config['compose-command']);
  // On a swarm what ships is dev's digests (a refusal before prod's lock made sure there are some).
  const ship = shipPlan(prodBuilds, devBuilds, prod.onSwarm ? gatedDigests(p) : p.gated.images, names);
  for (const r of ship.rebuild) log.info(`${r.service} will be rebuilt for prod: ${r.reasons.join('; ')}`);
  // The app's database variable, which the rehearsal points at its copy: looked up before anything changes.
  const databaseValue = await rehearsalDatabase(p, at, prodConfig);
  return { ...opened, at, ship, builds: prodBuilds, databaseValue };
}

/**
 * promote.database-env's value for the rehearsal, when one may run. Not found, it refuses at once
 * under `rehearse: always`; under `auto` the error is kept and refuses only if a migration is pending.
 */
async function rehearsalDatabase(p: Promotion, at: Environment, mergedYaml: string): Promise<string | Error | undefined> {
  const { config } = p;
  if (!config.gate.alembic || config.promote.rehearse === 'never') return undefined;
  const value = await databaseEnvValue({ host: p.host, at, variable: config.promote['database-env'], log: p.log, mergedYaml }).catch((e: unknown) =>
    e instanceof Error ? e : new Error(String(e)),
  );
  if (value instanceof Error && config.promote.rehearse === 'always') throw new OperationFailed(`${value.message}. Nothing was changed.`);
  return value;
}

/**
 * promote.write-freeze: the frozen services stop before the backup and run again at the end. The
 * swap's `up` starts every service, and so does a rollback's; only what is still stopped is started.
 */
export async function withWriteFreeze(p: Promotion, rest: (frozen: string[]) => Promise<Outcome>): Promise<Outcome> {
  const services = p.config.promote['write-freeze'];
  const frozen: string[] = [];
  if (services.length) {
    p.log.warning(`promote.write-freeze: stopping ${services.join(', ')} until the end, so a restore would lose no write`);
    await p.host.run(p.prod.compose('stop', ...services), p.prod.composeOptions({ label: `prod compose stop (write freeze)` }));
    frozen.push(...services);
  }
  let outcome: Outcome | undefined;
  try {
    outcome = await rest(frozen);
    return outcome;
  } finally {
    // A rolled-back promotion's restart brought every service up: the freeze ended with it.
    if (outcome?.outcome !== 'rolled-back') await endWriteFreeze(p, frozen);
  }
}

/** Starts the frozen services that are not running (a freeze the way forward did not end). */
async function endWriteFreeze(p: Promotion, frozen: string[]): Promise<void> {
  if (!frozen.length) return;
  // Unreadable, every frozen service counts as stopped: starting one that runs changes nothing.
  const c = await p.prod.containers(p.host).catch(ignored(p.log, "listing prod's containers to end the write freeze", []));
  const stopped = frozen.filter((s) => !c.some((x) => x.service === s && x.status === 'running'));
  if (stopped.length)
    await p.host.run(p.prod.compose('start', ...stopped), p.prod.composeOptions({ label: 'prod compose start (end of the write freeze)', check: false }));
}

/** A verified backup of prod (the one named, if young enough), or nothing happens; and prod's schema as it is. */
export async function backUpProd(p: Promotion, staged: Staged, frozen: string[]): Promise<BackedUp> {
  const { host, config, prod, log, plan } = p;
  let backup: BackupManifest;
  if (plan.backupId) {
    backup = await usableBackup({ host, config, env: prod, id: plan.backupId, log });
    const ageMinutes = (Date.now() - Date.parse(backup.time)) / 60000;
    if (ageMinutes > plan.backupMaxAgeMinutes) {
      throw new OperationFailed(
        `backup ${backup.id} is ${Math.round(ageMinutes)} minutes old, more than backup-max-age-minutes (${plan.backupMaxAgeMinutes}); take a new one`,
      );
    }
  } else {
    backup = await takeBackup({ host, config, env: prod, ctx: { release: staged.previous?.release, sha: staged.previous?.sha }, log });
  }
  await p.op.record('backup', {
    backup: backup.id,
    status: backup.status,
    bytes: backup.files['db.dump']?.bytes,
    sha256: backup.files['db.dump']?.sha256,
  });
  return { ...staged, backup, schemaBefore: await schemaState(host, prod), frozen };
}

/**
 * The isolation checks on the new commit, then the images: gated ids under prod's names, differing
 * builds rebuilt. Nothing restarts. Then alembic's heads in the new image: is a migration pending?
 */
export async function shipToProd(p: Promotion, b: BackedUp): Promise<Shipped | Refusal> {
  const { host, config, prod, log, sha } = p;
  const { at } = b;
  try {
    await isolationGate(host, { ...config, environments: { ...config.environments, prod: at.cfg } }, log, `prod at ${short(sha)}`);
  } catch (e) {
    return { refused: 'isolation', message: errorMessage(e) };
  }
  try {
    // On a swarm: the release's digests, pushed where prod builds differently; elsewhere image ids under prod's names.
    const swarm = prod.onSwarm ? await shipSwarmRelease(p, b) : undefined;
    const expected = swarm ? swarm.built.images : await shipImages(host, at, b.ship, log);
    let heads: string[] = [];
    let inPlace = '';
    if (config.gate.alembic) {
      try {
        heads = await oneOffHeads(host, at, {
          name: `${prod.project}-twinstack-heads`,
          timeoutSeconds: config.gate['timeout-seconds'],
          image: newApiImage(p, { swarm }),
        });
      } catch (e) {
        if (!(e instanceof OneOffUnavailable)) throw e;
        inPlace = e.message;
        log.warning(e.message);
      }
    }
    const pending = config.gate.alembic && !inPlace && !(heads.length === 1 && heads[0] === b.schemaBefore.revision);
    return { ...b, expected, heads, pending, inPlace, swarm };
  } catch (e) {
    return { refused: 'images', message: errorMessage(e) };
  }
}

/** The migration on a full copy of prod, when promote.rehearse asks for it: a failure, or a lock held too long, refuses. */
export async function rehearseMigrations(p: Promotion, s: Shipped): Promise<Rehearsed | Refusal> {
  const { config } = p;
  const mode = config.promote.rehearse;
  if (!(config.gate.alembic && !s.inPlace && (mode === 'always' || (mode === 'auto' && s.pending)))) {
    if (s.pending) p.log.info(`promote.rehearse is ${mode}: the migration is not rehearsed`);
    return s;
  }
  if (s.databaseValue instanceof Error) return { refused: 'rehearsal', message: errorMessage(s.databaseValue) };
  let rehearsal: RehearsalResult;
  try {
    rehearsal = await rehearse({
      host: p.host,
      config,
      at: s.at,
      backup: s.backup,
      log: p.log,
      opId: p.op.id,
      databaseValue: s.databaseValue,
      image: newApiImage(p, s),
    });
  } catch (e) {
    return { refused: 'rehearsal', message: `the rehearsal could not run: ${errorMessage(e)}` };
  }
  if (!rehearsal.ok) return { refused: 'rehearsal', message: rehearsalRefusal(rehearsal, config.promote['max-exclusive-lock-ms']), rehearsal };
  return { ...s, rehearsal };
}

/**
 * The last check before the point of no return: the way forward must end early enough to leave the
 * rollback its time, so it runs under a deadline that much earlier (restored for the rollback).
 */
export function reserveRollbackTime<R extends object>(p: Pick<Promotion, 'host'>, r: R): (R & Pick<Committed, 'fullDeadline'>) | Refusal {
  const fullDeadline = p.host.deadline;
  if (fullDeadline === undefined) return { ...r, fullDeadline };
  if (fullDeadline - Date.now() < 2 * ROLLBACK_RESERVE_MS) {
    return {
      // Counted with the images: the last step that ran.
      refused: 'images',
      message: `too little time is left before the run's deadline to promote and still roll back (${Math.round((fullDeadline - Date.now()) / 60000)} min). Raise the job's timeout-minutes.`,
    };
  }
  p.host.deadline = fullDeadline - ROLLBACK_RESERVE_MS;
  return { ...r, fullDeadline };
}

/** What every outcome after the backup says. */
export function outcomeBase(p: Promotion, b: BackedUp & { swarm?: ShippedSwarm }) {
  return {
    sha: p.sha,
    digests: b.swarm?.built.images,
    backup: b.backup,
    base: b.base,
    previous: b.previous,
    ship: b.ship,
    interrupted: b.interrupted,
    frozen: b.frozen.length ? b.frozen : undefined,
  };
}

/** A refusal: prod's containers never changed; its image names go back to what they run, and a write freeze ends. */
export async function refusePromotion(p: Promotion, b: BackedUp, refusal: Refusal): Promise<Outcome> {
  const { host, prod, log } = p;
  const { previous } = b;
  // On a swarm nothing was tagged under prod's names: its stack still runs the previous digests.
  if (previous && !prod.onSwarm)
    await restoreReleaseImages(host, prod, previous).catch((e) =>
      log.warning(`could not point prod's image names back at ${previous.release}: ${errorMessage(e)}`),
    );
  if (b.frozen.length) await host.run(prod.compose('start', ...b.frozen), prod.composeOptions({ label: 'prod compose start (end of the write freeze)' }));
  await p.op.record('refused', { stage: refusal.refused, reason: refusal.message, backup: b.backup.id });
  return {
    ...outcomeBase(p, b),
    outcome: 'refused',
    releaseId: previous?.release ?? '',
    failure: { stage: refusal.refused, message: refusal.message },
    rehearsal: refusal.rehearsal,
    containers: await prod.containers(host),
    data: { schemaMoved: false },
  };
}
