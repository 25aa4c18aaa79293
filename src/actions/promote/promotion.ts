/**
 * What every step of a promotion under prod's lock is given, and the values the steps hand on: each
 * step takes the one before it and returns a richer one, so a step can only use what has happened.
 */
import type { BackupManifest } from '../../domain/backup';
import type { Config } from '../../domain/config';
import type { Environment } from '../../domain/environment';
import type { Operation } from '../../domain/operation';
import type { RehearsalResult } from '../../domain/rehearsal';
import type { Release } from '../../domain/release';
import type { SchemaState } from '../../domain/schema';
import type { ServiceBuild, ShipPlan } from '../../domain/ship';
import type { BuiltRelease } from '../../domain/swarm-release';
import type { OffsiteKeys } from '../../domain/offsite';
import type { BaseBackup } from '../../domain/wal';
import type { Host } from '../../infra/host';
import type { Sha } from '../../infra/sha';
import type { Logger } from '../../infra/logger';
import type { GatedRelease } from './gated';
import type { Stage } from './outcome';

/** promote's inputs, checked once. */
export interface Plan {
  sha?: Sha;
  requireGate: boolean;
  backupId?: string;
  backupMaxAgeMinutes: number;
  /** The backup host's keys, when the config has backup.offsite. */
  offsite?: OffsiteKeys;
  /** wal-password, when backup.wal is enabled: the replication role's, for the base backup. */
  walPassword?: string;
}

/** One promotion, under prod's lock: fixed for its whole run. */
export interface Promotion {
  host: Host;
  config: Config;
  log: Logger;
  plan: Plan;
  prod: Environment;
  dev: Environment;
  /** The operation holding prod's lock: its host log and its records. */
  op: Operation;
  /** The commit, and what passed the gate for it on dev. */
  gated: GatedRelease;
  sha: Sha;
}

/** prod as found under its lock. */
export interface Opened {
  /** What prod runs, as recorded and as observed: the rollback target. */
  previous?: Release;
  interrupted: string[];
}

/** The commit beside prod's checkout, and what will ship. Nothing on prod has changed. */
export interface Staged extends Opened {
  /** prod's environment at the new commit (a scratch checkout, or the release's own directory). */
  at: Environment;
  ship: ShipPlan;
  /** prod's build definitions at the commit, per service. */
  builds: Map<string, ServiceBuild>;
  /** promote.database-env's value for the rehearsal; an Error refuses only if a rehearsal must run. */
  databaseValue: string | Error | undefined;
}

/** A verified backup of prod, and prod's schema as it was when taken. */
export interface BackedUp extends Staged {
  backup: BackupManifest;
  schemaBefore: SchemaState;
  /** The base backup taken after the dump, with backup.wal. */
  base?: BaseBackup;
  /** promote.write-freeze: the services stopped until the end. */
  frozen: string[];
}

/** A swarm prod's release: its id (the tag of the images built for it) and every service's digest. */
export interface ShippedSwarm {
  releaseId: string;
  built: BuiltRelease;
}

/** The images under prod's names, and the migration that is pending. prod's containers still run the old ones. */
export interface Shipped extends BackedUp {
  /** Service → the image id prod must run once swapped (on a swarm: the digest, repo@sha256:…). */
  expected: Record<string, string>;
  /** On a swarm: the release, which the swap deploys. */
  swarm?: ShippedSwarm;
  heads: string[];
  pending: boolean;
  /** Why the migration runs in the new api container after the swap ('' when it runs before: compose v1's limit). */
  inPlace: string;
}

export interface Rehearsed extends Shipped {
  rehearsal?: RehearsalResult;
}

/** Past the point of no return: from here a failure rolls back. */
export interface Committed extends Rehearsed {
  /** The run's deadline, restored for the rollback (the way forward runs under an earlier one). */
  fullDeadline?: number;
}

/** A step before the point of no return says no: prod is left as it was. */
export interface Refusal {
  refused: Stage;
  message: string;
  rehearsal?: RehearsalResult;
}

export function isRefusal<T extends object>(r: T | Refusal): r is Refusal {
  return 'refused' in r;
}
