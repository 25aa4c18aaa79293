/**
 * promote ("flip the switch"): put on prod exactly what passed the gate on dev.
 *
 *   1. the commit (input sha, or dev's release) and its passing gate, read under dev's lock   nothing changed yet
 *   2. it is on the configured branch; the dispatcher is not its pusher (when asked)          nothing changed yet
 *   3. a scratch checkout of the commit; which images ship as gated and which are rebuilt    nothing changed yet
 *   4. a verified backup of prod (its write counters kept), the schema's fingerprint          nothing changed yet
 *   5. the gated images tagged under prod's names, the differing ones rebuilt                 old containers still serve
 *   6. the rehearsal: the migration on a full copy of prod; a failure refuses                 prod untouched
 *   ── point of no return ──
 *   7. the real migration in a one-off container of the new image, lock_timeout set, while the old containers serve
 *   8. the swap: checkout, up --no-build; health; prod runs exactly the shipped image ids
 *   9. on any failure in 7–8: the previous release's images again; the database restored only when
 *      its schema moved, after counting the rows that restore loses
 *
 * Prod ends on the new release or back on the old one; the outcome says which.
 */
import type { PromoteInputs, PromoteOutputs } from '../../../action-types';
import type { ActionDefinition } from '../../domain/action';
import { restoreAsideName, takeBackup, usableBackup, type BackupManifest } from '../../domain/backup';
import type { Config } from '../../domain/config';
import { Environment, type ContainerState } from '../../domain/environment';
import { OperationFailed, errorMessage } from '../../infra/errors';
import { checkoutCommit, releaseEnvironment, removeScratchCheckout, resolveRef, scratchCheckout } from '../../domain/git';
import { HostLog, latest, type RecordOf } from '../../domain/host-log';
import type { RunInfo } from '../../infra/actions-io';
import type { Host } from '../../infra/host';
import { ignored, type Logger } from '../../infra/logger';
import { EnvironmentLock } from '../../domain/lock';
import { drift, driftMessage, observe, shortId } from '../../domain/state';
import { underLock } from '../../domain/operation';
import {
  currentRelease,
  newReleaseId,
  probeHealthUrl,
  pruneOldReleases,
  restoreReleaseImages,
  tagRelease,
  waitHealthy,
  HealthError,
  type Release,
} from '../../domain/release';
import { hitLockTimeout, migrationErrorLine, migrationPlan, oneOffAlembic, oneOffHeads, OneOffUnavailable, upgradeHead } from '../../domain/alembic';
import { lossWindow, startRelease } from '../../domain/rollback';
import { assertImages, buildDefinitions, defaultImageName, mergedBuilds, mergedConfig, shipImages, shipPlan, type ShipPlan } from '../../domain/ship';
import { rowsLostToRestore, schemaState, writeCounters, type MigrationWindow, type SchemaState } from '../../domain/schema';
import { databaseEnvValue, rehearse, rehearsalRefusal, type RehearsalResult } from '../../domain/rehearsal';
import { rollingOptions, switchServices } from '../../domain/rolling';
import { sh } from '../../infra/shell';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';
import { servicesTable } from '../common';
import { isolationGate } from '../../safety/preflight';

interface Plan {
  sha?: string;
  requireGate: boolean;
  backupId?: string;
  backupMaxAgeMinutes: number;
}

/** Time kept for the automatic rollback when the run has a deadline. */
const ROLLBACK_RESERVE_MS = 30 * 60_000;

type Stage = 'checkout' | 'isolation' | 'images' | 'rehearsal' | 'migration' | 'swap' | 'health';

export interface Outcome {
  outcome: 'promoted' | 'rolled-back' | 'unchanged' | 'refused' | 'rollback-failed';
  sha: string;
  releaseId: string;
  backup?: BackupManifest;
  previous?: Release;
  failure?: { stage: Stage; message: string; logs?: string; service?: string };
  ship?: ShipPlan;
  rehearsal?: RehearsalResult;
  migration?: {
    from: string;
    to: string;
    ms: number;
    attempts: number;
    pending: boolean;
    entrypoint?: boolean;
    /** Why the migration runs in the new api container after the swap (compose v1). */
    inPlace?: string;
    /** In place: whether alembic was asked, after the swap, what is pending (until then `pending` is unknown). */
    planRead?: boolean;
  };
  /** What a failure did to the data. */
  data?: {
    schemaMoved: boolean;
    restored?: string;
    /** Writes since the backup, the ones made while the migration ran left out. */
    rowsLost?: number;
    lostTables?: Array<{ table: string; rows: number }>;
    /** Writes made while the migration ran: its own, and any of the app's in that time. */
    duringMigration?: number;
    aside?: string;
  };
  frozen?: string[];
  rollbackError?: string;
  containers: ContainerState[];
  interrupted: string[];
}

export const promoteAction: ActionDefinition<PromoteInputs, PromoteOutputs, Plan> = {
  name: 'promote',
  prepare({ io }) {
    const backupId = io.input('backup-id') ? validate.backupId(io.input('backup-id'), 'input backup-id') : undefined;
    const sha = io.input('sha') ? validate.sha(io.input('sha').trim().toLowerCase(), 'input sha') : undefined;
    return {
      sha,
      requireGate: validate.boolean(io.input('require-gate') || 'true', 'input require-gate'),
      backupId,
      backupMaxAgeMinutes: validate.positiveInt(io.input('backup-max-age-minutes') || '60', 'input backup-max-age-minutes', 10080),
    };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const prod = new Environment('prod', config);
    const dev = new Environment('dev', config);
    io.output('url', prod.cfg.url);
    const frozenServices = config.promote['write-freeze'];

    // 1. The commit and what passed the gate for it, read under dev's lock.
    const gated = await gatedRelease(host, config['state-dir'], dev, plan.sha, plan.requireGate, run, log, lockTimeoutSeconds);
    const sha = gated.sha;
    // 2. The two-person rule, before the host is touched at all.
    if (config.promote['require-different-actor'] && gated.pusher && gated.pusher === run.actor) {
      throw new OperationFailed(
        `${run.actor} deployed ${sha.slice(0, 12)} to dev and may not also promote it (promote.require-different-actor): ask another person to run flip-the-switch. Nothing was changed.`,
      );
    }

    const workDir = `${config['state-dir']}/prod/work/promote`;
    const devWorkDir = `${config['state-dir']}/prod/work/promote-dev-config`;
    const result = await underLock(
      { host, stateDir: config['state-dir'], env: 'prod', project: config.environments.prod.project, action: 'promote', sha, run, log, lockTimeoutSeconds },
      async (op): Promise<Outcome> => {
        const previous = currentRelease(op.records);
        const interrupted = [
          ...op.interrupted.map((r) => `${r.action} ${r.op} by ${r.run} (started ${r.time}) never finished`),
          ...op.recovered.map((r) => `a cut host change was put right first: ${r}`),
        ];
        // The rollback point must be what prod really runs.
        const prodDrift = drift(await observe(host, prod), previous);
        if (previous && prodDrift.length) {
          throw new OperationFailed(
            `${driftMessage('prod', previous, prodDrift)} ` +
              `There is no known-good state to roll back to, so nothing was changed. Settle prod first: run the rollback workflow with release-id ${previous.release}.`,
          );
        }
        if (previous?.sha === sha) {
          log.info(`prod already runs ${sha.slice(0, 12)} (release ${previous.release}); nothing to do`);
          return { outcome: 'unchanged', sha, releaseId: previous.release, previous, containers: await prod.containers(host), interrupted };
        }

        // The commit must be on the configured branch.
        await resolveRef(host, prod, sha);
        const branch = config.promote.branch;
        const onBranch = await host.run(sh`git for-each-ref --contains ${sha} --format='%(refname:strip=3)' ${`refs/remotes/${prod.cfg.remote}/${branch}`}`, {
          cwd: prod.cfg.checkout,
          check: false,
          quiet: true,
          timeoutSeconds: 120,
        });
        if (onBranch.exitCode !== 0 || !onBranch.stdout.trim()) {
          throw new OperationFailed(
            `${sha.slice(0, 12)} is not on ${prod.cfg.remote}/${branch} (promote.branch): only commits merged there are promoted. Nothing was changed.`,
          );
        }
        log.info(`${sha.slice(0, 12)} is on ${onBranch.stdout.trim().split('\n').slice(0, 3).join(', ')}`);

        // 3. The new commit beside prod's checkout, and what to ship.
        // With promote.release-dirs it is the release's own directory, which its containers will mount.
        const releaseDirs = config.promote['release-dirs'];
        const at = releaseDirs ? await releaseEnvironment(host, config, prod, sha) : prod.at(await scratchCheckout(host, prod, sha, workDir));
        const freezeStarted: string[] = [];
        try {
          // Read once: the builds and promote.database-env's value both come from it.
          const prodConfig = await mergedConfig(host, at);
          const prodBuilds = buildDefinitions(prodConfig, at.cfg.checkout);
          // dev's merged configuration of the same commit, from a scratch checkout of dev's own clone.
          const devAt = dev.at(await scratchCheckout(host, dev, sha, devWorkDir));
          const devBuilds = await mergedBuilds(host, devAt);
          await removeScratchCheckout(host, dev, devWorkDir);
          const names: Record<string, string> = {};
          for (const [service, b] of prodBuilds)
            names[service] = b.image ?? previous?.images[service]?.name ?? defaultImageName(prod.project, service, config['compose-command']);
          const ship = shipPlan(prodBuilds, devBuilds, gated.images, names);
          for (const r of ship.rebuild) log.info(`${r.service} will be rebuilt for prod: ${r.reasons.join('; ')}`);

          // The app's database variable, which the rehearsal points at its copy: looked up before anything changes.
          const databaseValue = await rehearsalDatabase(host, config, at, log, prodConfig);

          // 4. A verified backup of prod, or nothing happens.
          if (frozenServices.length) {
            log.warning(`promote.write-freeze: stopping ${frozenServices.join(', ')} until the end, so a restore would lose no write`);
            await host.run(prod.compose('stop', ...frozenServices), prod.composeOptions({ label: `prod compose stop (write freeze)` }));
            freezeStarted.push(...frozenServices);
          }
          let backup: BackupManifest;
          if (plan.backupId) {
            backup = await usableBackup(host, config, prod, plan.backupId, log);
            const ageMinutes = (Date.now() - Date.parse(backup.time)) / 60000;
            if (ageMinutes > plan.backupMaxAgeMinutes) {
              throw new OperationFailed(
                `backup ${backup.id} is ${Math.round(ageMinutes)} minutes old, more than backup-max-age-minutes (${plan.backupMaxAgeMinutes}); take a new one`,
              );
            }
          } else {
            backup = await takeBackup(host, config, prod, { release: previous?.release, sha: previous?.sha }, log);
          }
          await op.record('backup', {
            backup: backup.id,
            status: backup.status,
            bytes: backup.files['db.dump']?.bytes,
            sha256: backup.files['db.dump']?.sha256,
          });
          const schemaBefore = await schemaState(host, prod);

          const base = { sha, backup, previous, ship, interrupted, frozen: freezeStarted.length ? freezeStarted : undefined };
          const refuse = async (stage: Stage, message: string, rehearsal?: RehearsalResult): Promise<Outcome> => {
            // Prod's containers never changed; its image names go back to what they run.
            if (previous)
              await restoreReleaseImages(host, prod, previous).catch((e) =>
                log.warning(`could not point prod's image names back at ${previous.release}: ${errorMessage(e)}`),
              );
            if (freezeStarted.length)
              await host.run(prod.compose('start', ...freezeStarted), prod.composeOptions({ label: 'prod compose start (end of the write freeze)' }));
            await op.record('refused', { stage, reason: message, backup: backup.id });
            return {
              ...base,
              outcome: 'refused',
              releaseId: previous?.release ?? '',
              failure: { stage, message },
              rehearsal,
              containers: await prod.containers(host),
              data: { schemaMoved: false },
            };
          };

          // 5. The images: gated ids under prod's names, differing builds rebuilt. Nothing restarts.
          let stage: Stage = 'isolation';
          let expected: Record<string, string>;
          let pending = false;
          let heads: string[] = [];
          /** Why the migration runs in the new api container after the swap instead of before it (compose v1's limit). */
          let inPlace = '';
          try {
            await isolationGate(host, { ...config, environments: { ...config.environments, prod: at.cfg } }, log, `prod at ${sha.slice(0, 12)}`);
            stage = 'images';
            expected = await shipImages(host, at, ship, log);
            // 6. The rehearsal on a full copy of prod.
            if (config.gate.alembic) {
              try {
                heads = await oneOffHeads(host, at, `${prod.project}-twinstack-heads`, config.gate['timeout-seconds']);
              } catch (e) {
                if (!(e instanceof OneOffUnavailable)) throw e;
                inPlace = e.message;
                log.warning(e.message);
              }
            }
            pending = config.gate.alembic && !inPlace && !(heads.length === 1 && heads[0] === schemaBefore.revision);
          } catch (e) {
            return refuse(stage, errorMessage(e));
          }
          const mode = config.promote.rehearse;
          let rehearsal: RehearsalResult | undefined;
          if (config.gate.alembic && !inPlace && (mode === 'always' || (mode === 'auto' && pending))) {
            if (databaseValue instanceof Error) return refuse('rehearsal', errorMessage(databaseValue));
            try {
              rehearsal = await rehearse(host, config, at, backup, log, op.id, databaseValue);
            } catch (e) {
              return refuse('rehearsal', `the rehearsal could not run: ${errorMessage(e)}`);
            }
            if (!rehearsal.ok) return refuse('rehearsal', rehearsalRefusal(rehearsal, config.promote['max-exclusive-lock-ms']), rehearsal);
          } else if (pending) {
            log.info(`promote.rehearse is ${mode}: the migration is not rehearsed`);
          }

          // ── Point of no return. The way forward must end early enough to leave the rollback its time.
          const fullDeadline = host.deadline;
          if (fullDeadline !== undefined) {
            if (fullDeadline - Date.now() < 2 * ROLLBACK_RESERVE_MS) {
              return refuse(
                stage,
                `too little time is left before the run's deadline to promote and still roll back (${Math.round((fullDeadline - Date.now()) / 60000)} min). Raise the job's timeout-minutes.`,
              );
            }
            host.deadline = fullDeadline - ROLLBACK_RESERVE_MS;
          }
          let migration: Outcome['migration'] = {
            from: schemaBefore.revision,
            to: pending ? heads.join(',') : schemaBefore.revision,
            ms: 0,
            attempts: 0,
            pending,
            inPlace: inPlace || undefined,
          };
          // The write counters around the migration: a restore leaves the migration's own writes out of the rows it loses.
          const counted: Partial<MigrationWindow> = {};
          try {
            // 7. The real migration, in a one-off container of the new image, while the old containers serve.
            stage = 'migration';
            if (pending) migration = await countedAround(host, prod, counted, log, () => migrate(host, config, at, schemaBefore, heads, log));
            const schemaMigrated = pending ? await schemaState(host, prod) : schemaBefore;
            // 8. The swap.
            stage = 'swap';
            // From release directories the checkout moves only once no container mounts it any more
            // (the first release may have been started from it); otherwise the containers are started from it.
            if (!releaseDirs) await checkoutCommit(host, prod, sha);
            log.startGroup('prod: compose up (no build: the shipped images)');
            try {
              await switchServices(host, releaseDirs ? at : prod, config.promote.rolling, rollingOptions(config, prod), log, 'prod compose up');
            } finally {
              log.endGroup();
            }
            if (releaseDirs) await checkoutCommit(host, prod, sha);
            let schemaSwapped = schemaMigrated;
            if (inPlace) {
              stage = 'migration';
              const t = Date.now();
              const plan = await migrationPlan(host, prod, config.gate['timeout-seconds']);
              // Recorded before it runs: a migration that fails here is reported as one, never as "none pending".
              migration = {
                from: plan.current,
                to: plan.heads.join(','),
                ms: 0,
                attempts: plan.pending ? 1 : 0,
                pending: plan.pending,
                inPlace,
                planRead: true,
              };
              if (plan.pending) {
                await countedAround(host, prod, counted, log, () => upgradeHead(host, prod, plan, config.gate['timeout-seconds']));
                migration.ms = Date.now() - t;
                schemaSwapped = await schemaState(host, prod);
              }
            }
            stage = 'health';
            const containers = await waitHealthy(host, prod, log);
            await probeHealthUrl(host, prod, log);
            assertImages(containers, expected, 'prod');
            // An app that migrates when it starts changes the schema after our migration: say so.
            const schemaAfter = await schemaState(host, prod);
            if (schemaAfter.fingerprint !== schemaSwapped.fingerprint || schemaAfter.revision !== schemaSwapped.revision) {
              migration = { ...migration, to: schemaAfter.revision, entrypoint: true };
              log.warning(
                `prod's schema changed when the new containers started (${schemaMigrated.revision || 'none'} → ${schemaAfter.revision || 'none'}): the app migrates on start`,
              );
            }
            const releaseId = newReleaseId(sha);
            const images = await tagRelease(host, prod, releaseId, containers);
            await op.record('release', {
              release: releaseId,
              sha,
              kind: 'promote',
              images,
              previous: previous?.release,
              devRelease: gated.devRelease?.release,
              gate: gated.gate?.op,
              backup: backup.id,
              shipped: ship.ship.map((s) => s.service),
              rebuilt: ship.rebuild.map((s) => s.service),
            });
            // Housekeeping once the release is recorded: a failure here is a warning, never a rollback.
            await pruneOldReleases(host, config, prod, { release: releaseId, sha }, previous, log);
            return { ...base, outcome: 'promoted', releaseId, rehearsal, migration, containers };
          } catch (e) {
            const failure = {
              stage,
              message: errorMessage(e),
              logs: e instanceof HealthError ? e.logs : undefined,
              service: e instanceof HealthError ? e.service : undefined,
            };
            log.error(`promote failed during ${stage}: ${failure.message}; rolling back`);
            host.deadline = fullDeadline;
            // 9. Did the schema move? Only then does the database go back to the backup.
            const now = await schemaState(host, prod).catch(() => undefined);
            const schemaMoved = !now || now.revision !== schemaBefore.revision || now.fingerprint !== schemaBefore.fingerprint;
            const data: NonNullable<Outcome['data']> = { schemaMoved };
            if (schemaMoved && backup.writeCounters) {
              const window = counted.before && counted.after ? { before: counted.before, after: counted.after } : undefined;
              const lost = rowsLostToRestore(backup.writeCounters, await writeCounters(host, prod).catch(() => ({})), window);
              data.rowsLost = lost.total;
              data.lostTables = lost.tables;
              if (window) data.duringMigration = lost.duringMigration;
              data.aside = restoreAsideName(backup.database);
              log.warning(
                `prod's schema moved (${schemaBefore.revision || 'none'} → ${now?.revision ?? 'unreadable'}): restoring backup ${backup.id} loses ${lost.total} row write(s) made since it; they stay in database ${data.aside}`,
              );
            } else if (!schemaMoved) {
              log.info(`prod's schema is unchanged (${schemaBefore.revision || 'none'}): the migration rolled back by itself; no restore, no write lost`);
            }
            const rollbackFailed = async (rollbackError: string): Promise<Outcome> => ({
              ...base,
              outcome: 'rollback-failed',
              releaseId: '',
              failure,
              migration,
              data,
              rollbackError,
              containers: await prod.containers(host).catch(() => []),
            });
            if (!previous) return rollbackFailed('prod had no release recorded by twinstack to return to');
            try {
              const restart = await startRelease(host, config, prod, previous, log, schemaMoved ? backup : undefined);
              if (restart.restoredAt) data.restored = lossWindow(backup, restart.restoredAt);
              await op.record('release', {
                release: previous.release,
                sha: previous.sha,
                kind: 'rollback',
                images: previous.images,
                previous: previous.previous,
                reason: `promote of ${sha} failed during ${stage}`,
                restoredBackup: restart.restoredAt ? backup.id : undefined,
              });
              await op.record('rollback', {
                release: previous.release,
                failedSha: sha,
                stage,
                restoredBackup: restart.restoredAt ? backup.id : undefined,
                restoredAt: restart.restoredAt,
                schemaMoved,
                rowsLost: data.rowsLost,
              });
              freezeStarted.length = 0;
              return { ...base, outcome: 'rolled-back', releaseId: previous.release, failure, rehearsal, migration, data, containers: restart.containers };
            } catch (re) {
              return rollbackFailed(errorMessage(re));
            }
          }
        } finally {
          // A freeze the way forward did not end (its `up` starts every service) ends here.
          if (freezeStarted.length) {
            const c = await prod.containers(host).catch(() => []);
            const stopped = freezeStarted.filter((s) => !c.some((x) => x.service === s && x.status === 'running'));
            if (stopped.length)
              await host.run(prod.compose('start', ...stopped), prod.composeOptions({ label: 'prod compose start (end of the write freeze)', check: false }));
          }
          await removeScratchCheckout(host, prod, workDir);
          await removeScratchCheckout(host, dev, devWorkDir);
        }
      },
      (r) => (r.outcome === 'promoted' || r.outcome === 'unchanged' ? 'success' : 'failure'),
    );

    io.output('outcome', result.outcome);
    io.output('release-id', result.releaseId);
    io.output('backup-id', result.backup?.id ?? '');
    io.output('sha', result.sha);
    await io.summary(promoteSummary(prod, result, gated).toMarkdown());
    const short = sha.slice(0, 12);
    const why = `${result.failure?.stage} (${result.failure?.message})`;
    if (result.outcome === 'refused') throw new OperationFailed(`promotion of ${short} refused during ${why}; prod was not changed`);
    if (result.outcome === 'rolled-back') throw new OperationFailed(`promotion of ${short} failed during ${why}; prod was rolled back to ${result.releaseId}`);
    if (result.outcome === 'rollback-failed')
      throw new OperationFailed(`promotion of ${short} failed during ${why} AND the rollback failed (${result.rollbackError}): prod needs a person now`);
  },
};

/**
 * promote.database-env's value for the rehearsal, when one may run. Not found, it refuses at once
 * under `rehearse: always`; under `auto` the error is kept and refuses only if a migration is pending.
 */
async function rehearsalDatabase(host: Host, config: Config, at: Environment, log: Logger, mergedYaml: string): Promise<string | Error | undefined> {
  if (!config.gate.alembic || config.promote.rehearse === 'never') return undefined;
  const value = await databaseEnvValue(host, at, config.promote['database-env'], log, mergedYaml).catch((e: unknown) =>
    e instanceof Error ? e : new Error(String(e)),
  );
  if (value instanceof Error && config.promote.rehearse === 'always') throw new OperationFailed(`${value.message}. Nothing was changed.`);
  return value;
}

/** Runs a migration step between two readings of prod's write counters, the second also when it fails. */
async function countedAround<T>(host: Host, prod: Environment, counted: Partial<MigrationWindow>, log: Logger, step: () => Promise<T>): Promise<T> {
  counted.before = await writeCounters(host, prod).catch(ignored(log, 'reading the write counters before the migration'));
  try {
    return await step();
  } finally {
    counted.after = await writeCounters(host, prod).catch(ignored(log, 'reading the write counters after the migration'));
  }
}

/** The real migration: alembic upgrade head in a one-off container, lock_timeout set, retried when it only waited for a lock. */
async function migrate(
  host: Host,
  config: Config,
  at: Environment,
  before: SchemaState,
  heads: string[],
  log: Logger,
): Promise<NonNullable<Outcome['migration']>> {
  const attempts = config.promote['migration-attempts'];
  const lockTimeout = config.promote['lock-timeout-ms'];
  const started = Date.now();
  for (let attempt = 1; ; attempt++) {
    const r = await oneOffAlembic(host, at, ['upgrade', 'head'], {
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

function ms(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)} s` : `${n} ms`;
}

export function promoteSummary(prod: Environment, r: Outcome, gated: GatedRelease): Summary {
  const s = new Summary().heading('Flip the switch: dev → prod');
  const short = r.sha.slice(0, 12);
  switch (r.outcome) {
    case 'promoted':
      s.text(
        `✅ **prod now runs \`${short}\`** (release \`${r.releaseId}\`), the commit that passed on dev${gated.devRelease ? ` (release \`${gated.devRelease.release}\`)` : ''}.`,
      );
      break;
    case 'unchanged':
      s.text(`➖ **prod already runs \`${short}\`** (release \`${r.releaseId}\`). Nothing was changed.`);
      break;
    case 'refused':
      s.text(`🛑 **Refused before anything on prod changed.** prod still runs \`${r.previous?.release ?? '?'}\`: same containers, same database.`);
      break;
    case 'rolled-back':
      s.text(
        `↩️ **The promotion failed and prod was rolled back.** prod runs its previous release \`${r.releaseId}\` (\`${r.previous?.sha.slice(0, 12)}\`) again, healthy.`,
      );
      break;
    case 'rollback-failed':
      s.text(`🚨 **The promotion failed and the rollback did not complete. prod needs a person now.**`);
      break;
  }
  const items: string[] = [];
  if (r.failure) items.push(`${r.outcome === 'refused' ? 'stopped at' : 'failed during'} **${r.failure.stage}**: ${r.failure.message}`);
  // What was lost: "nothing" unless the schema moved.
  if (r.outcome === 'rolled-back' || r.outcome === 'rollback-failed') {
    if (r.data?.schemaMoved) {
      items.push(
        `**data:** the schema had moved, so the database was ${r.data.restored ? `restored from backup \`${r.backup?.id}\`: ${r.data.restored}` : 'to be restored'}. ` +
          `${r.data.rowsLost !== undefined ? `**${r.data.rowsLost} row write(s)** made since the backup ${r.data.restored ? 'are' : 'would be'} lost` : 'The rows written since the backup could not be counted'}` +
          `${
            r.data.lostTables?.length
              ? ` (${r.data.lostTables
                  .slice(0, 10)
                  .map((t) => `${t.table}: ${t.rows}`)
                  .join(', ')})`
              : ''
          }. ` +
          `${r.data.duringMigration ? `${r.data.duringMigration} more were made while the migration ran: its own, left out of that count, and any the app made meanwhile, which are lost too. ` : ''}` +
          `${r.data.aside ? `They are kept in database \`${r.data.aside}\` until the next restore: copy them back with \`pg_dump -a -t <table> ${r.data.aside}\` into \`${r.backup?.database}\`.` : ''}`,
      );
    } else {
      items.push(`**data: nothing lost.** The schema is unchanged (the migration rolled back by itself, or never ran): no restore.`);
    }
  }
  if (r.outcome === 'refused') items.push('**data: nothing lost**, nothing restarted.');
  if (r.rollbackError) items.push(`rollback error: ${r.rollbackError}`);
  if (r.backup) items.push(`backup before the change: \`${r.backup.id}\` (${r.backup.files['db.dump']?.bytes ?? 0} bytes, ${r.backup.verification.detail})`);
  if (r.frozen)
    items.push(`write freeze (promote.write-freeze): ${r.frozen.join(', ')} ${r.frozen.length > 1 ? 'were' : 'was'} stopped from the backup to the end`);
  if (r.previous && r.outcome === 'promoted') items.push(`previous release (rollback target): \`${r.previous.release}\``);
  for (const i of r.interrupted) items.push(`⚠️ an earlier operation on prod was interrupted: ${i}`);
  if (r.outcome === 'rollback-failed')
    items.push(`Next: look at the containers below; run the rollback workflow with a release id, or restore backup \`${r.backup?.id}\` by hand.`);
  if (r.outcome === 'rolled-back' || r.outcome === 'refused') items.push(`Next: fix the cause on dev, gate it, and flip the switch again.`);
  s.list(items);

  if (r.ship) {
    s.heading('Images', 3);
    if (r.outcome === 'refused') s.text(`None of these reached prod's containers: prod still runs \`${r.previous?.release ?? '?'}\`.`);
    s.table(
      ['service', imagesColumn(r.outcome), 'why'],
      [
        ...r.ship.ship.map((x) => [x.service, `gated image \`${shortId(x.id)}\``, 'what the gate tested on dev']),
        ...r.ship.rebuild.map((x) => [x.service, 'rebuilt from the same commit', x.reasons.join('; ')]),
        ...r.ship.asConfigured.map((x) => [x.service, x.builds ? 'built for prod' : 'as prod configures it', x.reason]),
      ],
    );
  }
  if (r.rehearsal || r.migration) {
    s.heading('Migration', 3);
    const m: string[] = [];
    if (r.rehearsal) {
      const h = r.rehearsal;
      m.push(
        h.error
          ? `rehearsal on a full copy of prod: **failed** after ${ms(h.durationMs)}: \`${h.error}\``
          : `rehearsal on a full copy of prod (restored in ${ms(h.restoreMs)}): ${h.revisionBefore || 'none'} → ${h.revisionAfter || 'none'} in ${ms(h.durationMs)}`,
      );
      m.push(
        h.locks.length
          ? `ACCESS EXCLUSIVE locks: ${h.locks.map((l) => `\`${l.table}\` ${ms(l.ms)}`).join(', ')}`
          : 'ACCESS EXCLUSIVE locks: none seen (sampled every 100 ms)',
      );
      if (!h.error)
        m.push(h.rewritten.length ? `tables rewritten: ${h.rewritten.map((t) => `\`${t.table}\` (${t.rows} rows)`).join(', ')}` : 'tables rewritten: none');
      if (!h.error) m.push(`rows updated: ${h.updatedRows}`);
    }
    if (r.migration) {
      const g = r.migration;
      if (g.inPlace) m.push(`⚠️ ${g.inPlace}`);
      if (!g.pending && g.inPlace && !g.planRead) m.push(`the migration was to run in the new api container after the swap; it never ran`);
      else if (!g.pending) m.push(`no migration pending: prod's database is at ${g.from || 'none'}`);
      else if (r.outcome !== 'promoted') m.push(unfinishedMigration(g, r.failure?.stage));
      else if (g.inPlace && r.outcome === 'promoted')
        m.push(`prod migrated ${g.from || 'none'} → ${g.to} in ${ms(g.ms)} in the new api container, after the swap`);
      else if (r.outcome === 'promoted')
        m.push(
          `prod migrated ${g.from || 'none'} → ${g.to} in ${ms(g.ms)} before the swap, old containers serving (${g.attempts} attempt${g.attempts > 1 ? 's' : ''})`,
        );
      if (g.entrypoint) m.push(`⚠️ the schema changed again when the new containers started (now ${g.to}): the app migrates on start`);
    }
    s.list(m);
  }
  s.heading(`${prod.name}`, 3);
  servicesTable(s, r.containers);
  if (r.failure?.logs) s.detailsCode(`last log lines of ${r.failure.service}`, r.failure.logs);
  if (gated.devRelease) s.text(`dev still runs \`${gated.devRelease.release}\`.`);
  return s;
}

/** A pending migration of a promotion that did not end promoted: whether it failed itself or ran before the failure. */
function unfinishedMigration(g: NonNullable<Outcome['migration']>, stage: Stage | undefined): string {
  const where = g.inPlace ? ' in the new api container, after the swap' : ' before the swap';
  if (stage === 'migration') return `prod's migration ${g.from || 'none'} → ${g.to || '?'} **failed**${where}`;
  if (stage === 'swap' || stage === 'health') return `prod migrated ${g.from || 'none'} → ${g.to || '?'}${where}, then the ${stage} failed`;
  return `the migration ${g.from || 'none'} → ${g.to || '?'} did not run`;
}

/** What the images table says prod did with each image: only a promotion ships them for good. */
function imagesColumn(outcome: Outcome['outcome']): string {
  if (outcome === 'refused') return 'prod would have got (not shipped)';
  if (outcome === 'rolled-back' || outcome === 'rollback-failed') return 'prod got, until the rollback';
  return 'prod gets';
}

export interface GatedRelease {
  sha: string;
  /** Service → image id the passing gate tested (or, without a gate, what dev runs). */
  images: Record<string, string>;
  gate?: RecordOf<'gate'>;
  /** dev's release, when it runs this commit. */
  devRelease?: Release;
  /** Who deployed the commit to dev (the pusher, for a push-triggered deploy). */
  pusher?: string;
}

/**
 * The commit to promote and what passed the gate for it: `sha`, or what dev runs. When dev runs the
 * commit, it must run it undrifted and still run the gated images. Read under dev's lock, so no dev
 * deploy changes it halfway through the reading. Refuses in one line otherwise.
 */
export async function gatedRelease(
  host: Host,
  stateDir: string,
  dev: Environment,
  wanted: string | undefined,
  requireGate: boolean,
  run: RunInfo,
  log: Logger,
  lockTimeoutSeconds: number,
): Promise<GatedRelease> {
  const lock = await EnvironmentLock.acquireToRead(host, stateDir, 'dev', run, 'promote (reading dev)', lockTimeoutSeconds, log, '');
  try {
    const devRecords = await new HostLog(host, stateDir, 'dev').read(log);
    const devRelease = currentRelease(devRecords);
    const sha = wanted ?? devRelease?.sha;
    if (!sha) throw new OperationFailed('dev has no release recorded: deploy dev and run the gate first. Nothing was changed.');
    const pusher = devRecords.filter((r) => r.event === 'release' && r.kind === 'deploy' && r.sha === sha).at(-1)?.actor;
    const gate = latest(devRecords, 'gate', (r) => r.sha === sha);
    const runsIt = devRelease?.sha === sha ? devRelease : undefined;
    const observed = runsIt ? await observe(host, dev) : undefined;
    if (runsIt && observed) {
      const drifted = drift(observed, runsIt);
      if (drifted.length) {
        throw new OperationFailed(
          `${driftMessage('dev', runsIt, drifted)} What runs on dev was not gated as such. Deploy dev again and run the gate, then promote. Nothing was changed.`,
        );
      }
    }
    if (!requireGate) {
      const images = gate?.passed ? (gate.images ?? {}) : runsIt ? Object.fromEntries(Object.entries(runsIt.images).map(([s, i]) => [s, i.id])) : undefined;
      if (!images)
        throw new OperationFailed(
          `dev never ran ${sha.slice(0, 12)} as a release twinstack knows, so there are no images to ship: deploy it to dev first. Nothing was changed.`,
        );
      log.warning(`require-gate is off: promoting ${sha.slice(0, 12)} without a passing gate`);
      return { sha, images, gate, devRelease: runsIt, pusher };
    }
    if (gate?.passed !== true) {
      throw new OperationFailed(
        `commit ${sha}${runsIt ? ` (dev release ${runsIt.release})` : ''} has no passing gate on dev${gate ? ` (its last gate failed at ${gate.time})` : ''}: ` +
          `${wanted && !runsIt ? 'only a commit that passed the gate can be promoted; deploy it to dev and run the gate' : 'run the gate on dev, or fix and deploy again'}. Nothing was changed.`,
      );
    }
    const tested = gate.images ?? {};
    if (!Object.keys(tested).length) {
      throw new OperationFailed(
        `the passing gate of ${sha.slice(0, 12)} (${gate.time}) does not say which images it tested: run the gate on dev again. Nothing was changed.`,
      );
    }
    if (observed) {
      const changed = Object.entries(tested).filter(([svc, id]) => observed.images[svc] !== id);
      if (changed.length) {
        throw new OperationFailed(
          `dev no longer runs what passed the gate at ${gate.time}: ${changed.map(([svc, id]) => `${svc} ran ${shortId(id)}, now ${observed.images[svc] ? shortId(observed.images[svc]) : 'nothing'}`).join('; ')}. ` +
            `Run the gate on dev again. Nothing was changed.`,
        );
      }
    }
    return { sha, images: tested, gate, devRelease: runsIt, pusher };
  } finally {
    await lock.release();
  }
}
