/**
 * The way back, after a failure past the point of no return: the previous release's images start
 * again, and the database is restored from the backup only when its schema moved, after counting
 * the rows that restore loses. It ends rolled-back, or rollback-failed when prod needs a person.
 */
import { restoreAsideName } from '../../domain/backup';
import { HealthError, type Release } from '../../domain/release';
import { lossWindow, startRelease, type RestartResult } from '../../domain/rollback';
import { rowsLostToRestore, schemaState, writeCounters } from '../../domain/schema';
import { SwarmDeployFailed } from '../../domain/swarm-release';
import { engineReportLines } from '../common';
import { errorMessage } from '../../infra/errors';
import { ignored } from '../../infra/logger';
import type { ForwardFailed, Progress } from './forward';
import type { DataReport, Failure, MigrationReport, Outcome, Stage } from './outcome';
import { outcomeBase } from './prepare';
import type { Committed, Promotion } from './promotion';

/** Rolls prod back to its previous release; the run's full deadline is restored for it. */
export async function rollBackPromotion(p: Promotion, c: Committed, failed: ForwardFailed): Promise<Outcome> {
  const { host, config, prod, log } = p;
  const { stage, migration } = failed.progress;
  const e = failed.error;
  const failure: Failure = {
    stage,
    message: errorMessage(e),
    logs: e instanceof HealthError ? e.logs : undefined,
    service: e instanceof HealthError ? e.service : undefined,
    engine: e instanceof SwarmDeployFailed ? engineReportLines(e.services) : undefined,
  };
  log.error(`promote failed during ${stage}: ${failure.message}; rolling back`);
  host.deadline = c.fullDeadline;
  let data = await dataAfterFailure(p, c, failed.progress);
  const { previous } = c;
  if (!previous) return rollbackFailed(p, c, { failure, migration, data }, 'prod had no release recorded by twinstack to return to');
  try {
    const restart = await startRelease({ host, config, env: prod, release: previous, log, restore: data.schemaMoved ? c.backup : undefined });
    if (restart.restoredAt) data = { ...data, restored: lossWindow(c.backup, restart.restoredAt) };
    await recordRollback(p, c, { previous, stage, restart, data });
    return {
      ...outcomeBase(p, c),
      outcome: 'rolled-back',
      releaseId: previous.release,
      failure,
      rehearsal: c.rehearsal,
      migration,
      data,
      containers: restart.containers,
    };
  } catch (re) {
    return rollbackFailed(p, c, { failure, migration, data }, errorMessage(re));
  }
}

/** Did the schema move? Only then does the database go back to the backup, and the rows written since are counted first. */
async function dataAfterFailure(p: Promotion, c: Committed, progress: Progress): Promise<DataReport> {
  const { host, prod, log } = p;
  const { backup, schemaBefore } = c;
  // A schema that cannot be read counts as moved: the restore is the safe side.
  const now = await schemaState(host, prod).catch(ignored(log, "reading prod's schema after the failure (taken as moved)"));
  const schemaMoved = !now || now.revision !== schemaBefore.revision || now.fingerprint !== schemaBefore.fingerprint;
  if (!schemaMoved) {
    log.info(`prod's schema is unchanged (${schemaBefore.revision || 'none'}): the migration rolled back by itself; no restore, no write lost`);
    return { schemaMoved };
  }
  if (!backup.writeCounters) return { schemaMoved };
  const { before, after } = progress.window;
  const window = before && after ? { before, after } : undefined;
  const lost = rowsLostToRestore(
    backup.writeCounters,
    await writeCounters(host, prod).catch(ignored(log, "reading prod's write counters (rows lost not counted)", {})),
    window,
  );
  const aside = restoreAsideName(backup.database);
  log.warning(
    `prod's schema moved (${schemaBefore.revision || 'none'} → ${now?.revision ?? 'unreadable'}): restoring backup ${backup.id} loses ${lost.total} row write(s) made since it; they stay in database ${aside}`,
  );
  return { schemaMoved, rowsLost: lost.total, lostTables: lost.tables, ...(window ? { duringMigration: lost.duringMigration } : {}), aside };
}

/** The previous release runs again: recorded as a release (a rollback) and as the rollback of this promotion. */
async function recordRollback(
  p: Promotion,
  c: Committed,
  { previous, stage, restart, data }: { previous: Release; stage: Stage; restart: RestartResult; data: DataReport },
): Promise<void> {
  const restoredBackup = restart.restoredAt ? c.backup.id : undefined;
  await p.op.record('release', {
    release: previous.release,
    sha: previous.sha,
    kind: 'rollback',
    images: previous.images,
    // On a swarm the rollback deployed these again: drift and the next rollback judge by them.
    ...(previous.digests ? { digests: previous.digests } : {}),
    previous: previous.previous,
    reason: `promote of ${p.sha} failed during ${stage}`,
    restoredBackup,
  });
  await p.op.record('rollback', {
    release: previous.release,
    failedSha: p.sha,
    stage,
    restoredBackup,
    restoredAt: restart.restoredAt,
    schemaMoved: data.schemaMoved,
    rowsLost: data.rowsLost,
  });
}

/** The way back did not complete: prod runs whatever it runs now, and a person must look. */
async function rollbackFailed(
  p: Promotion,
  c: Committed,
  failed: { failure: Failure; migration: MigrationReport; data: DataReport },
  rollbackError: string,
): Promise<Outcome> {
  return {
    ...outcomeBase(p, c),
    outcome: 'rollback-failed',
    releaseId: '',
    ...failed,
    rollbackError,
    containers: await p.prod.containers(p.host).catch(ignored(p.log, "listing prod's containers for the summary", [])),
  };
}
