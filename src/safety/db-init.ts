/**
 * The database service runs under an init. PostgreSQL as the first process of its container reaps
 * every orphan there (a timed-out healthcheck's pg_isready, what a killed `docker exec` leaves), and
 * one that exits with code 2 looks to the postmaster like a crashed backend: it terminates every
 * session and restarts. With `init: true` Docker's init is the first process and reaps them instead.
 */
import type { EnvironmentName } from '../domain/config';
import type { ComposeModel } from './compose-model';
import type { Finding } from './findings';

export interface DbInitOptions {
  compose: ComposeModel;
  environment: EnvironmentName;
  /** The environment's database.service. */
  service: string;
  /** The environment's compose files, base first, as the config lists them. */
  composeFiles: readonly string[];
}

/** One warning when the environment's db service runs without an init; none when it has one or is not defined. */
export function dbInitFindings({ compose, environment, service, composeFiles }: DbInitOptions): Finding[] {
  const s = compose.services.find((x) => x.name === service);
  // A database outside compose (database.via: host) or a missing service is not this check's business.
  if (!s || s.init === true) return [];
  // Left out: the base file defines the service for both environments. Set to false: an overlay
  // (the environment's own, last file) most likely turned it off.
  const file = s.init === false ? composeFiles[composeFiles.length - 1] : composeFiles[0];
  return [
    {
      check: 'db-init',
      environment,
      severity: 'warning',
      message: `${environment}'s database service ${service} runs without an init${s.init === false ? ' (init: false)' : ''}: PostgreSQL is then the first process of its container and reaps its orphans, and one that exits with code 2 (a timed-out healthcheck's pg_isready) makes it crash-restart and drop every session`,
      fix: `add init: true to service ${service} in ${file ?? 'the base compose file'}`,
    },
  ];
}
