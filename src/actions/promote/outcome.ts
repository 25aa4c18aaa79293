/**
 * How a promotion ends, as one of five outcomes, each carrying only what is true of it: a refusal
 * changed nothing, a rollback says what happened to the data, a failed rollback says why. The job
 * summary and the action's outputs are read from this value, never from flags set along the way.
 */
import type { BackupManifest } from '../../domain/backup';
import type { BaseBackup } from '../../domain/wal';
import type { ContainerState } from '../../domain/environment';
import type { RehearsalResult } from '../../domain/rehearsal';
import type { Release } from '../../domain/release';
import type { ShipPlan } from '../../domain/ship';

/** Where a promotion stopped (refused) or failed (past the point of no return), in runbook order. */
export type Stage = 'checkout' | 'base-backup' | 'isolation' | 'images' | 'rehearsal' | 'migration' | 'swap' | 'health';

export interface Failure {
  stage: Stage;
  message: string;
  /** The last log lines of the service that turned unhealthy. */
  logs?: string;
  service?: string;
  /** On a swarm: what the engine said of each service when the deploy failed (SwarmDeployFailed). */
  engine?: string[];
}

export interface MigrationReport {
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
}

/** What a failure did to the data. */
export interface DataReport {
  schemaMoved: boolean;
  restored?: string;
  /** Writes since the backup, the ones made while the migration ran left out. */
  rowsLost?: number;
  lostTables?: Array<{ table: string; rows: number }>;
  /** Writes made while the migration ran: its own, and any of the app's in that time. */
  duringMigration?: number;
  aside?: string;
}

/** What every outcome says: the commit, prod's release and containers now, and what was prepared. */
interface Common {
  sha: string;
  /** The release prod runs now ('' when nobody knows). */
  releaseId: string;
  /** prod's release before the promotion: the rollback target. */
  previous?: Release;
  containers: ContainerState[];
  /** Earlier operations on prod that never finished, and cut host changes put right first. */
  interrupted: string[];
  backup?: BackupManifest;
  /** The base backup taken after the dump (backup.wal). */
  base?: BaseBackup;
  ship?: ShipPlan;
  /** On a swarm: the digests prod was given (service → repo@sha256:…). */
  digests?: Record<string, string>;
  rehearsal?: RehearsalResult;
  migration?: MigrationReport;
  /** promote.write-freeze: the services stopped from the backup to the end. */
  frozen?: string[];
}

export type Outcome =
  /** prod already ran the commit: nothing was done. */
  | (Common & { outcome: 'unchanged' })
  /** prod runs the commit, healthy, recorded as a release. */
  | (Common & { outcome: 'promoted' })
  /** Stopped before the point of no return: prod runs what it ran, on the same database. */
  | (Common & { outcome: 'refused'; failure: Failure; data: DataReport })
  /** Failed past the point of no return; prod runs its previous release again, healthy. */
  | (Common & { outcome: 'rolled-back'; failure: Failure; data: DataReport })
  /** Failed past the point of no return, and the way back failed too: a person must look now. */
  | (Common & { outcome: 'rollback-failed'; failure: Failure; data: DataReport; rollbackError: string });

export type OutcomeName = Outcome['outcome'];

/** The failure of an outcome that has one. */
export function failureOf(r: Outcome): Failure | undefined {
  return 'failure' in r ? r.failure : undefined;
}
