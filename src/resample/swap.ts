/**
 * Putting the staging database in dev's place, and taking it back out if anything fails after
 * that: dev is either fully refreshed or exactly as it was. Database renames are instant and keep
 * every byte, so the way back is a rename too.
 */
import type { Environment } from '../core/environment';
import { errorMessage } from '../core/errors';
import type { Host } from '../core/host';
import type { Logger } from '../core/logger';
import { argv, sh } from '../core/shell';
import { queryJson } from './catalog';
import { ident, literal } from './sql';

/** Dev's app services (everything in its compose project but the database). */
export interface AppServices {
  /** Stops the running app services; returns what it stopped, to start again. */
  stop(): Promise<string[]>;
  start(services: string[]): Promise<void>;
  /** Waits until the started services are healthy and the health URL answers; throws otherwise. */
  health(services: string[]): Promise<void>;
}

/** With `via: host` there are no containers to stop: the database stands alone (tests, bare setups). */
export const NO_SERVICES: AppServices = {
  stop: async () => [],
  start: async () => undefined,
  health: async () => undefined,
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
    async health(services) {
      if (!checkHealth || !services.length) return;
      const deadline = Date.now() + timeout * 1000;
      for (;;) {
        const states = (await env.containers(host)).filter((c) => services.includes(c.service));
        const bad = states.filter((c) => c.status !== 'running' || (c.hasHealthcheck && c.health !== 'healthy'));
        if (bad.some((c) => c.status === 'exited' || c.health === 'unhealthy')) {
          throw new Error(`dev service ${bad.map((c) => `${c.service} (${c.status}, ${c.health})`).join(', ')} failed after the swap`);
        }
        if (!bad.length) break;
        if (Date.now() > deadline) throw new Error(`dev services not healthy after ${timeout}s: ${bad.map((c) => `${c.service} (${c.status}, ${c.health})`).join(', ')}`);
        await new Promise((r) => setTimeout(r, 3000));
      }
      const url = `${env.cfg.url}${env.cfg.healthPath}`;
      const probe = sh`end=$(( $(date +%s) + ${Math.max(10, Math.round((deadline - Date.now()) / 1000))} )); until curl -fsS -o /dev/null --max-time 10 ${url}; do [ "$(date +%s)" -lt "$end" ] || exit 1; sleep 3; done`;
      await host.run(probe, { label: `waiting for ${url}`, timeoutSeconds: timeout + 60, quiet: true });
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

  psql(database: string, extra: string[] = []): string {
    return this.env.dbTool('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', database, ...extra]);
  }

  async exec(sql: string, label: string, database = this.maintenance): Promise<string> {
    const r = await this.host.run(this.psql(database, ['-f', '-']), { stdin: `${sql}\n`, quiet: true, label, timeoutSeconds: 600 });
    return r.stdout;
  }

  json<T>(sql: string, label: string, database = this.maintenance): Promise<T> {
    return queryJson<T>(this.host, this.env, database, sql, label);
  }

  async databases(): Promise<string[]> {
    return this.json<string[]>(`SELECT coalesce(json_agg(datname ORDER BY datname), '[]') FROM pg_database`, 'listing dev databases');
  }

  async exists(name: string): Promise<boolean> {
    return (await this.databases()).includes(name);
  }

  /** Ends every session on a database, then renames it; retried while clients reconnect. */
  async rename(from: string, to: string): Promise<void> {
    let last = '';
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.exec(
          `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ${literal(from)} AND pid <> pg_backend_pid();\n` +
            `SELECT pg_sleep(0.2);\nALTER DATABASE ${ident(from)} RENAME TO ${ident(to)};`,
          `renaming database ${from} to ${to}`,
        );
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
    await this.exec(
      `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = ${literal(name)} AND pid <> pg_backend_pid();\nDROP DATABASE IF EXISTS ${ident(name)};`,
      `dropping database ${name}`,
    );
  }
}

export interface SwapOptions {
  server: DevServer;
  names: ReturnType<typeof databaseNames>;
  services: AppServices;
  /** Dev's migrations on the swapped-in database (alembic upgrade head in the api container). */
  migrate: () => Promise<void>;
  log: Logger;
  record: (event: string, fields?: Record<string, unknown>) => Promise<unknown>;
}

/**
 * Stops dev's app, renames dev's database aside and staging into its place, migrates, starts the
 * app and checks its health. On any failure the renames are undone and the app restarted on the
 * old database; the error is rethrown. The old database is dropped only once everything passed.
 */
export async function swapIn(o: SwapOptions): Promise<void> {
  const { server, names, services, log } = o;
  const hadDev = await server.exists(names.dev);
  const stopped = await services.stop();
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
    if (swapped) await server.rename(names.dev, names.staging);
    if (movedAside) await server.rename(names.previous, names.dev);
    await server.drop(names.staging).catch((de) => log.warning(`could not drop ${names.staging}: ${errorMessage(de)}`));
    await o.record('swapped-back', { database: names.dev });
    await services.start(stopped);
    throw e;
  }
  // The point of no return: dev runs on the sample.
  if (hadDev) await server.drop(names.previous).catch((e) => log.warning(`could not drop the previous dev database ${names.previous}: ${errorMessage(e)}; drop it by hand`));
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
  if ((await server.databases()).includes(names.staging)) {
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
    await host.run(env.compose('run', '--rm', '--no-deps', '-T', env.cfg.apiService, ...command), env.composeOptions({ label: `dev migrations (${argv(...command)})`, timeoutSeconds: 1800 }));
  };
}
