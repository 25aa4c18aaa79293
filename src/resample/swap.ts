/**
 * Putting the staging database in dev's place, and taking it back out if anything fails after
 * that: dev is either fully refreshed or exactly as it was. Database renames are instant and keep
 * every byte, so the way back is a rename too.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { LogEvent, RecordFields } from '../domain/host-log';
import type { Environment } from '../domain/environment';
import { errorMessage, OperationFailed, RemoteCommandError } from '../infra/errors';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { probeHealthUrl, waitHealthy } from '../domain/release';
import { argv, hostScript, sh } from '../infra/shell';
import { NOTHING_LATER, type LaterCompose } from '../infra/compose';
import { queryJson } from './catalog';
import { appReplicas, scaleLater, scaleServices } from '../domain/swarm-scale';
import { swarmOneOff } from '../domain/swarm-oneoff';
import * as swarm from '../infra/swarm';
import { dropDatabaseSql, psql, renameDatabaseSql } from '../infra/postgres';

const SWAP_UNDO = fs.readFileSync(__dirname + '/swap-undo.sh', 'utf8');
const SWAP_FINISH = fs.readFileSync(__dirname + '/swap-finish.sh', 'utf8');
const SWAP_BEGIN = fs.readFileSync(__dirname + '/swap-begin.sh', 'utf8');
const SWAP_PASS = fs.readFileSync(__dirname + '/swap-pass.sh', 'utf8');
/** swap-begin.sh and swap-pass.sh: their pending file could not be written. */
const NOT_WRITTEN = 5;

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
  if (env.onSwarm) return stackAppServices(host, env, log, checkHealth);
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

/**
 * appServices on a swarm (env.onSwarm): compose finds no containers there, so the stack's app
 * services are scaled to 0 and back to the replicas their specs had before the first stop (a second
 * stop, on the way back, finds them at 0 or started again: what they had stays the first reading).
 */
function stackAppServices(host: Host, env: Environment, log: Logger, checkHealth: boolean): AppServices {
  const had = new Map<string, number>();
  const named = (swarmName: string) => swarm.stackServiceName(env.project, swarmName) ?? swarmName;
  const scales = (services: string[]) =>
    services.flatMap((s) => {
      const replicas = had.get(s);
      return replicas === undefined ? [] : [{ service: swarm.swarmServiceName(env.project, s), replicas }];
    });
  return {
    async stop() {
      const apps = await appReplicas({ host, env, log });
      for (const a of apps) if (!had.has(named(a.service))) had.set(named(a.service), a.replicas);
      const services = apps.map((a) => named(a.service)).sort();
      if (services.length) {
        log.info(`Scaling dev services ${services.join(', ')} to 0 replicas.`);
        await scaleServices(
          { host, env },
          apps.map((a) => ({ service: a.service, replicas: 0 })),
          { why: 'for the database swap' },
        );
      }
      return services;
    },
    async start(services) {
      const back = scales(services);
      if (!back.length) return;
      log.info(`Scaling dev services back: ${back.map((b) => `${named(b.service)} to ${b.replicas}`).join(', ')}.`);
      // The engine waits until the tasks run, which for a task with a healthcheck means healthy.
      await scaleServices({ host, env }, back, { why: 'after the database swap', timeoutSeconds: env.cfg.healthTimeoutSeconds + 60 });
    },
    startLater: (services) => scaleLater(env, scales(services)),
    async health(services) {
      if (!checkHealth || !services.length) return;
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
  /** Runs once the swap has passed, beside the drop of the database dev had before (the run's own record). */
  passed?: () => Promise<unknown>;
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

/** Where a pending file is written: its directory and a temporary name beside it. */
function pendingPaths(marker: string): { MARKER: string; DIR: string; TMP: string } {
  return { MARKER: marker, DIR: marker.slice(0, marker.lastIndexOf('/')) || '/', TMP: `${marker}.twinstack-${randomBytes(6).toString('hex')}` };
}

/**
 * The renames that put staging in dev's place, in one round trip after the undo is written (see
 * swap-begin.sh). Returns which of them happened: when the session stopped partway, the server is
 * asked, and the renames left are done one by one (each retried while clients reconnect); a failure
 * there is the caller's to undo, the undo script being in place.
 */
async function beginSwap(o: SwapOptions, undo: string, hadDev: boolean): Promise<{ movedAside: boolean; swapped: boolean }> {
  const { server, names } = o;
  const marker = `${o.pendingDir}/resample-swap.sh`;
  const sql = `${hadDev ? renameDatabaseSql(names.dev, names.previous, { settle: true }) : ''}${renameDatabaseSql(names.staging, names.dev, { settle: true })}`;
  const r = await server.host.run(
    hostScript(SWAP_BEGIN, { ...pendingPaths(marker), UNDO: undo, PSQL: psql(server.env, server.maintenance, { tuples: true }) }),
    {
      stdin: sql,
      check: false,
      quiet: true,
      label: hadDev ? `swapping ${names.staging} in for ${names.dev}` : `renaming database ${names.staging} to ${names.dev}`,
      timeoutSeconds: 600,
    },
  );
  if (r.exitCode === 0 && !r.timedOut) return { movedAside: hadDev, swapped: true };
  if (r.exitCode === NOT_WRITTEN) throw new RemoteCommandError({ ...r, label: `writing the swap undo ${marker}` });
  o.log.warning(`The swap's renames stopped partway (${r.stderr.trim().split('\n').pop() ?? `exit ${r.exitCode}`}); finishing them one by one.`);
  const dbs = await server.databases();
  const state = { movedAside: dbs.includes(names.previous), swapped: dbs.includes(names.dev) && !dbs.includes(names.staging) };
  if (hadDev && !state.movedAside) {
    await server.rename(names.dev, names.previous);
    state.movedAside = true;
  }
  if (!state.swapped) {
    await server.rename(names.staging, names.dev);
    state.swapped = true;
  }
  return state;
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
  const clear = async () => {
    await server.host.run(sh`rm -f ${marker}`, { quiet: true, label: 'removing the swap undo', timeoutSeconds: 60 });
  };
  const stopped = await services.stop();
  const moved: Moved = { movedAside: false, swapped: false };
  let recorded: Promise<unknown> | undefined;
  try {
    // The undo is written before any database moves (a run cut from there on leaves the way back to
    // the next operation on dev), then the renames run, in one round trip.
    Object.assign(
      moved,
      await beginSwap(o, swapUndoScript(server, names, services.startLater(stopped)), hadDev).catch(async (e) => {
        // Stopped partway: what exists now decides the way back.
        Object.assign(moved, await movedSoFar(o, hadDev));
        throw e;
      }),
    );
    // Recorded while the migration runs; a failed record still swaps back.
    recorded = o.record('swapped', { database: names.dev, previous: hadDev ? names.previous : undefined });
    recorded.catch(ignored(log, "recording 'swapped' (awaited below)"));
    await o.migrate();
    await services.start(stopped);
    await services.health(stopped);
    await recorded;
  } catch (e) {
    // The host log keeps its order: 'swapped' is written (or has failed) before 'swapped-back'.
    await recorded?.catch(ignored(log, "recording 'swapped'"));
    await swapBack({ o, stopped, moved, marker, error: e, clear });
    throw e;
  }
  // The point of no return: dev runs on the sample. What is left is finishing, not undoing: a run cut
  // here leaves the next operation to drop the database dev had before.
  await Promise.all([finishSwap(o, hadDev, marker, clear), o.passed?.()]);
}

/** Which renames of the swap happened; unknown when dev's server could not say. */
interface Moved {
  movedAside: boolean;
  swapped: boolean;
  unknown?: boolean;
}

/** The renames done so far, read from the server. */
async function movedSoFar(o: SwapOptions, hadDev: boolean): Promise<Moved> {
  const { names } = o;
  try {
    const dbs = await o.server.databases();
    const movedAside = dbs.includes(names.previous);
    return { movedAside, swapped: dbs.includes(names.dev) && !dbs.includes(names.staging) && (!hadDev || movedAside) };
  } catch (e) {
    o.log.warning(`could not read dev's databases after the swap stopped: ${errorMessage(e)}`);
    return { movedAside: false, swapped: false, unknown: true };
  }
}

/** After a failure once the swap began: dev's database back under its name, staging dropped, the app started again. */
async function swapBack({
  o,
  stopped,
  moved,
  marker,
  error,
  clear,
}: {
  o: SwapOptions;
  stopped: string[];
  moved: Moved;
  marker: string;
  error: unknown;
  clear: () => Promise<void>;
}): Promise<void> {
  const { server, names, services, log } = o;
  log.error(`Resample failed after the swap began (${errorMessage(error)}); putting dev's database back.`);
  await services.stop().catch((se) => log.warning(`could not stop dev services before swapping back: ${errorMessage(se)}`));
  const wayBack = `the next operation on dev puts it back first (${marker} on the host), or run that script by hand`;
  if (moved.unknown) throw new SwapBackFailed(`${errorMessage(error)}; then dev's databases could not be read to put dev's own back: ${wayBack}`);
  try {
    if (moved.swapped) await server.rename(names.dev, names.staging);
    if (moved.movedAside) await server.rename(names.previous, names.dev);
  } catch (be) {
    throw new SwapBackFailed(
      `${errorMessage(error)}; then putting dev's database back failed too (${errorMessage(be)}): dev's own database is ${moved.movedAside ? names.previous : 'gone'}; ${wayBack}`,
    );
  }
  await server.drop(names.staging).catch((de) => log.warning(`could not drop ${names.staging}: ${errorMessage(de)}`));
  await o.record('swapped-back', { database: names.dev });
  await services.start(stopped);
  await clear();
}

/**
 * Once the swap passed: the finish script replaces the undo, drops the database dev had before and
 * goes, in one round trip (see swap-pass.sh). A drop that fails stays for the next operation on dev.
 */
async function finishSwap(o: SwapOptions, hadDev: boolean, marker: string, clear: () => Promise<void>): Promise<void> {
  const { server, names, log } = o;
  if (!hadDev) return clear();
  const finish = hostScript(SWAP_FINISH, { DROP: dropDatabaseSql(names.previous), PSQL: psql(server.env, server.maintenance) });
  const script = `# resample swap of dev passed ${new Date().toISOString()}: drop the database dev had before\n${finish}\n`;
  const r = await server.host.run(hostScript(SWAP_PASS, { ...pendingPaths(marker), FINISH: script }), {
    check: false,
    quiet: true,
    label: `dropping database ${names.previous}`,
    timeoutSeconds: 600,
  });
  if (r.exitCode === NOT_WRITTEN) throw new RemoteCommandError({ ...r, label: `writing the swap's finish script ${marker}` });
  if (r.exitCode !== 0 || r.timedOut)
    log.warning(
      `could not drop the previous dev database ${names.previous}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}; the next operation on dev drops it (${marker})`,
    );
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
    if (env.onSwarm) return swarmMigrate(host, env, command, log);
    log.info(`Running ${command.join(' ')} in a one-off ${env.cfg.apiService} container.`);
    await host.run(
      env.compose('run', '--rm', '--no-deps', '-T', env.cfg.apiService, ...command),
      env.composeOptions({ label: `dev migrations (${argv(...command)})`, timeoutSeconds: 1800 }),
    );
  };
}

/** composeMigrate on a swarm: dev's migrate command in a one-off task of the api service's own spec and image. */
async function swarmMigrate(host: Host, env: Environment, command: string[], log: Logger): Promise<void> {
  const service = swarm.swarmServiceName(env.project, env.cfg.apiService);
  const spec = await host.run(swarm.serviceInspect([service]), { check: false, quiet: true, label: `inspecting ${service}`, timeoutSeconds: 120 });
  const image =
    spec.exitCode === 0 ? swarm.parseServiceStatus(spec.stdout).find((s) => s.Spec.Name === service)?.Spec.TaskTemplate.ContainerSpec.Image : undefined;
  if (!image) throw new OperationFailed(`${env.name}: no service ${service} on the swarm to run the migrations in; deploy ${env.name} first`);
  const label = `dev migrations (${argv(...command)})`;
  log.info(`Running ${command.join(' ')} in a one-off task of ${service} (${image}).`);
  const r = await swarmOneOff(host, env, command, { image, name: `${env.project}-twinstack-resample-migrate`, label, timeoutSeconds: 1800 });
  if (r.exitCode !== 0 || r.timedOut) throw new RemoteCommandError({ ...r, label });
}
