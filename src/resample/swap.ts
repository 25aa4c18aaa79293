/**
 * Putting the staging database in dev's place, and taking it back out if anything fails after
 * that: dev is either fully refreshed or exactly as it was. Database renames are instant and keep
 * every byte, so the way back is a rename too.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import type { LogEvent, RecordFields } from '../domain/host-log';
import type { Environment } from '../domain/environment';
import { errorMessage, OperationFailed } from '../infra/errors';
import type { Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { probeHealthUrl, waitHealthy } from '../domain/release';
import { argv, hostScript, sh } from '../infra/shell';
import { NOTHING_LATER, type LaterCompose } from '../infra/compose';
import { queryJson } from './catalog';
import { dropDatabaseSql, psql, renameDatabaseSql } from '../infra/postgres';

const SWAP_UNDO = fs.readFileSync(__dirname + '/swap-undo.sh', 'utf8');
const SWAP_FINISH = fs.readFileSync(__dirname + '/swap-finish.sh', 'utf8');

/** Dev's app services (everything in its compose project but the database). */
export interface AppServices {
  /** Stops the running app services; returns what it stopped, to start again. */
  stop(): Promise<string[]>;
  start(services: string[]): Promise<void>;
  /** Waits until the started services are healthy and the health URL answers; throws otherwise. */
  health(services: string[]): Promise<void>;
  /** The compose command that starts them again, for an undo script the next run may have to run. */
  startLater(services: string[]): LaterCompose;
}

/** With `via: host` there are no containers to stop: the database stands alone (tests, bare setups). */
export const NO_SERVICES: AppServices = {
  stop: () => Promise.resolve([]),
  start: () => Promise.resolve(),
  health: () => Promise.resolve(),
  startLater: () => NOTHING_LATER,
};

export function appServices(host: Host, env: Environment, log: Logger, checkHealth: boolean): AppServices {
  if (env.cfg.database.via === 'host') return NO_SERVICES;
  const timeout = env.cfg.healthTimeoutSeconds;
  return {
    async stop() {
      const running = (await env.containers(host)).filter((c) => c.status === 'running' && c.service && c.service !== env.cfg.database.service);
      const services = [...new Set(running.map((c) => c.service))].sort();
      if (services.length) {
        log.info(`Stopping dev services ${services.join(', ')}.`);
        await host.run(env.compose('stop', ...services), env.composeOptions({ label: `stopping dev ${services.join(', ')}`, timeoutSeconds: 600 }));
      }
      return services;
    },
    async start(services) {
      if (!services.length) return;
      log.info(`Starting dev services ${services.join(', ')}.`);
      await host.run(env.compose('start', ...services), env.composeOptions({ label: `starting dev ${services.join(', ')}`, timeoutSeconds: 600 }));
    },
    startLater(services) {
      return services.length ? env.composeLater('start', ...services) : NOTHING_LATER;
    },
    async health(services) {
      if (!checkHealth || !services.length) return;
      // The same verdict a deploy gives: every service healthy (or running, without a
      // healthcheck), then the environment's health URL answering 2xx.
      await waitHealthy(host, env, log, timeout);
      await probeHealthUrl(host, env, log);
    },
  };
}

/** The names twinstack gives dev's databases during a resample. */
export function databaseNames(dev: string): { dev: string; staging: string; previous: string } {
  const base = dev.slice(0, 48);
  return { dev, staging: `${base}__ts_staging`, previous: `${base}__ts_previous` };
}

/** SQL on dev's server, connected to the maintenance database. */
export class DevServer {
  constructor(
    readonly host: Host,
    readonly env: Environment,
    readonly maintenance: string,
  ) {}

  async exec(sql: string, label: string, database = this.maintenance): Promise<string> {
    const r = await this.host.run(psql(this.env, database, { tuples: true }), { stdin: `${sql}\n`, quiet: true, label, timeoutSeconds: 600 });
    return r.stdout;
  }

  /** One query's JSON answer, checked against its schema. */
  json<S extends z.ZodTypeAny>(schema: S, sql: string, label: string, database = this.maintenance): Promise<z.output<S>> {
    return queryJson(this.host, this.env, { database, sql, label, schema });
  }

  async databases(): Promise<string[]> {
    return this.json(z.array(z.string()), `SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database`, 'listing dev databases');
  }

  async exists(name: string): Promise<boolean> {
    return (await this.databases()).includes(name);
  }

  /** Ends every session on a database, then renames it; retried while clients reconnect. */
  async rename(from: string, to: string): Promise<void> {
    let last = '';
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.exec(renameDatabaseSql(from, to, { settle: true }), `renaming database ${from} to ${to}`);
        return;
      } catch (e) {
        last = errorMessage(e);
        if (!/being accessed by other users/.test(last)) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    throw new Error(`could not rename ${from} to ${to}: ${last}`);
  }

  async drop(name: string): Promise<void> {
    await this.exec(dropDatabaseSql(name), `dropping database ${name}`);
  }
}

/** The swap failed and so did the way back: dev is on neither database until someone acts. */
export class SwapBackFailed extends OperationFailed {}

export interface SwapOptions {
  server: DevServer;
  names: ReturnType<typeof databaseNames>;
  services: AppServices;
  /** Dev's migrations on the swapped-in database (alembic upgrade head in the api container). */
  migrate: () => Promise<void>;
  log: Logger;
  record: <E extends LogEvent>(event: E, fields: RecordFields<E>) => Promise<unknown>;
  /** Where the swap leaves its undo until it has finished (the environment's pending directory). */
  pendingDir: string;
  /** Whether dev has a database, when the caller read it under the same lock (saves a round trip). */
  hadDev?: boolean;
}

/**
 * What puts dev's database back when a run is cut during its swap, as a script on the host: the next
 * operation on dev runs it before anything else (see undoPending in operation.ts). It only acts while
 * `previous` exists, which is from the first rename until the swap has passed.
 */
export function swapUndoScript(server: DevServer, names: ReturnType<typeof databaseNames>, restart: LaterCompose): string {
  const body = hostScript(SWAP_UNDO, {
    PSQL: psql(server.env, server.maintenance),
    PSQL_TUPLES: psql(server.env, server.maintenance, { tuples: true }),
    DEV: names.dev,
    STAGING: names.staging,
    PREVIOUS: names.previous,
    DROP_STAGING: dropDatabaseSql(names.staging),
    DEV_TO_STAGING: renameDatabaseSql(names.dev, names.staging, { settle: true }),
    PREVIOUS_TO_DEV: renameDatabaseSql(names.previous, names.dev, { settle: true }),
    ...restart,
  });
  return `# resample swap of dev started ${new Date().toISOString()}: put dev's database back\n${body}\n`;
}

/**
 * Stops dev's app, renames dev's database aside and staging into its place, migrates, starts the
 * app and checks its health. On any failure the renames are undone and the app restarted on the
 * old database; the error is rethrown. The old database is dropped only once everything passed.
 */
export async function swapIn(o: SwapOptions): Promise<void> {
  const { server, names, services, log } = o;
  const hadDev = o.hadDev ?? (await server.exists(names.dev));
  const marker = `${o.pendingDir}/resample-swap.sh`;
  const leave = (script: string) => server.host.writeFile(marker, script);
  const clear = async () => {
    await server.host.run(sh`rm -f ${marker}`, { quiet: true, label: 'removing the swap undo', timeoutSeconds: 60 });
  };
  const stopped = await services.stop();
  // Written before any database moves: a run cut from here on leaves the way back to the next operation on dev.
  await leave(swapUndoScript(server, names, services.startLater(stopped)));
  let movedAside = false;
  let swapped = false;
  try {
    if (hadDev) {
      await server.rename(names.dev, names.previous);
      movedAside = true;
    }
    await server.rename(names.staging, names.dev);
    swapped = true;
    await o.record('swapped', { database: names.dev, previous: hadDev ? names.previous : undefined });
    await o.migrate();
    await services.start(stopped);
    await services.health(stopped);
  } catch (e) {
    log.error(`Resample failed after the swap began (${errorMessage(e)}); putting dev's database back.`);
    await services.stop().catch((se) => log.warning(`could not stop dev services before swapping back: ${errorMessage(se)}`));
    try {
      if (swapped) await server.rename(names.dev, names.staging);
      if (movedAside) await server.rename(names.previous, names.dev);
    } catch (be) {
      throw new SwapBackFailed(
        `${errorMessage(e)}; then putting dev's database back failed too (${errorMessage(be)}): dev's own database is ${movedAside ? names.previous : 'gone'}; ` +
          `the next operation on dev puts it back first (${marker} on the host), or run that script by hand`,
      );
    }
    await server.drop(names.staging).catch((de) => log.warning(`could not drop ${names.staging}: ${errorMessage(de)}`));
    await o.record('swapped-back', { database: names.dev });
    await services.start(stopped);
    await clear();
    throw e;
  }
  // The point of no return: dev runs on the sample. What is left is finishing, not undoing: a run cut
  // here leaves the next operation to drop the database dev had before.
  if (!hadDev) return clear();
  const finish = hostScript(SWAP_FINISH, { DROP: dropDatabaseSql(names.previous), PSQL: psql(server.env, server.maintenance) });
  await leave(`# resample swap of dev passed ${new Date().toISOString()}: drop the database dev had before\n${finish}\n`);
  try {
    await server.drop(names.previous);
    await clear();
  } catch (e) {
    log.warning(`could not drop the previous dev database ${names.previous}: ${errorMessage(e)}; the next operation on dev drops it (${marker})`);
  }
}

/**
 * Before anything else: a run that died mid-swap leaves `previous` behind. If dev's database is
 * missing, previous is put back; if both exist the swap never finished (it drops previous only
 * after passing), so the half-done one goes and previous comes back. A leftover staging is dropped.
 */
export async function recoverLeftovers(server: DevServer, names: ReturnType<typeof databaseNames>, log: Logger): Promise<string[]> {
  const dbs = await server.databases();
  const notes: string[] = [];
  if (dbs.includes(names.previous)) {
    if (dbs.includes(names.dev)) {
      notes.push(`found ${names.previous} beside ${names.dev}: an earlier resample died during its swap; restored the database dev had before it`);
      if (dbs.includes(names.staging)) await server.drop(names.staging);
      await server.rename(names.dev, names.staging);
    } else {
      notes.push(`found ${names.previous} and no ${names.dev}: an earlier resample died during its swap; restored it`);
    }
    await server.rename(names.previous, names.dev);
  }
  // The list read above still holds unless the recovery above changed it.
  if ((notes.length ? await server.databases() : dbs).includes(names.staging)) {
    await server.drop(names.staging);
    notes.push(`dropped a staging database left by an earlier run (${names.staging})`);
  }
  for (const n of notes) log.warning(n);
  return notes;
}

/** The migration step: dev's migrate command in a one-off api container (skipped with via: host). */
export function composeMigrate(host: Host, env: Environment, command: string[], log: Logger): () => Promise<void> {
  return async () => {
    if (env.cfg.database.via === 'host') {
      log.info('Migrations skipped: dev database runs on the host (via: host), no api container to run them in.');
      return;
    }
    log.info(`Running ${command.join(' ')} in a one-off ${env.cfg.apiService} container.`);
    await host.run(
      env.compose('run', '--rm', '--no-deps', '-T', env.cfg.apiService, ...command),
      env.composeOptions({ label: `dev migrations (${argv(...command)})`, timeoutSeconds: 1800 }),
    );
  };
}
