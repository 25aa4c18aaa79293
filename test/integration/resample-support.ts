/**
 * A production and a dev PostgreSQL server (two real clusters: roles are per server, as on the VPS),
 * the Makapix-shaped schema loaded in production, a dev database owned by a non-owner-app setup,
 * and a config reaching both with `via: host` through a real sshd.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { RunInfo } from '../../src/infra/actions-io';
import { parseConfig, type Config } from '../../src/domain/config';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import type { ResampleContext } from '../../src/resample/engine';
import { connect } from '../harness/connect';
import { SYNC_TIMEOUT_MS, startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';
import { SAMPLE_CONFIG, SCHEMA_SQL, dataSql } from '../fixtures/sample-schema/generate';

export interface World {
  sshd: TestSshd;
  prod: TestPostgres;
  dev: TestPostgres;
  host: SshHost;
  dir: string;
  log: MemoryLogger;
  config(sample?: Record<string, unknown>, extra?: Record<string, unknown>): Config;
  /** The same config as the YAML text of a config file. */
  configYaml(sample?: Record<string, unknown>, extra?: Record<string, unknown>): string;
  ctx(config?: Config): ResampleContext;
  /** pg_dump of a database (schema and data), for before/after comparisons. */
  dump(pg: TestPostgres, db: string): string;
  databases(pg: TestPostgres): string[];
  stop(): Promise<void>;
}

export const RUN: RunInfo = { url: 'local test run', actor: 'tester', sha: '0'.repeat(40), workflow: 'test' };

export function runSql(pg: TestPostgres, db: string, sql: string, user = pg.user): string {
  return execFileSync(
    path.join(pg.bin, 'psql'),
    ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(pg.port), '-U', user, '-d', db, '-f', '-'],
    {
      input: sql,
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      timeout: SYNC_TIMEOUT_MS,
    },
  );
}

/** The dev database as the app's migrations left it: owned by app_owner, used by app_rw. */
export function createDevDatabase(dev: TestPostgres, name = 'makapix_dev'): void {
  dev.psql(
    `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner LOGIN; CREATE ROLE app_rw LOGIN; END IF; END $$`,
  );
  dev.psql(`CREATE DATABASE ${name} OWNER app_owner`);
  runSql(
    dev,
    name,
    `SET client_min_messages = error;\nSET ROLE app_owner;\n${SCHEMA_SQL}\n${dataSql(20)}\n` +
      `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO app_rw;\n` +
      `GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO app_rw;\n` +
      `ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO app_rw;\n` +
      `RESET ROLE;\nREVOKE CONNECT ON DATABASE ${name} FROM PUBLIC;\nGRANT CONNECT ON DATABASE ${name} TO app_rw;\n`,
  );
}

/**
 * The config of a bench run (bench/resample.ts, bench/resample-fixed.ts): prod and dev on two
 * local servers reached through the host, no compose project behind them.
 */
export function benchConfigYaml(o: { dir: string; prod: TestPostgres; dev: TestPostgres; prodDb: string; sample: unknown; timeoutSeconds: number }): string {
  const env = (name: string, pg: TestPostgres, db: string) => ({
    checkout: path.join(o.dir, name),
    project: `b${name}`,
    'compose-files': ['c.yml'],
    'env-file': '.env',
    url: 'http://127.0.0.1:9',
    database: { name: db, user: pg.user, host: '127.0.0.1', port: pg.port, via: 'host' },
  });
  return stringify({
    'state-dir': path.join(o.dir, 'state'),
    'command-timeout-seconds': o.timeoutSeconds,
    environments: { prod: env('prod', o.prod, o.prodDb), dev: env('dev', o.dev, 'makapix_dev') },
    sample: o.sample,
  });
}

export async function startWorld(users = 400): Promise<World> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-resample-'));
  const [sshd, prod, dev] = await Promise.all([startSshd(), startPostgres(), startPostgres()]);
  prod.psql('CREATE DATABASE makapix');
  runSql(prod, 'makapix', `${SCHEMA_SQL}\n${dataSql(users)}`);
  createDevDatabase(dev);
  const log = new MemoryLogger();
  const host = await connect(sshd, {}, log);
  const dump = (pg: TestPostgres, db: string) =>
    execFileSync(path.join(pg.bin, 'pg_dump'), ['-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '--no-sync', '-d', db], {
      encoding: 'utf8',
      maxBuffer: 512 * 1024 * 1024,
      timeout: SYNC_TIMEOUT_MS,
    })
      // pg_dump 15.14+ wraps its output in \restrict <random key>: not part of the database.
      .replace(/^\\(un)?restrict .*$/gm, '');
  const world: World = {
    sshd,
    prod,
    dev,
    host,
    dir,
    log,
    config(sample = SAMPLE_CONFIG, extra = {}) {
      return parseConfig(world.configYaml(sample, extra), 'test config');
    },
    configYaml(sample = SAMPLE_CONFIG, extra = {}) {
      const env = (name: string, pg: TestPostgres, db: string) => ({
        checkout: path.join(dir, name),
        project: `mk${name}`,
        'compose-files': ['docker-compose.yml'],
        'env-file': '.env',
        url: 'http://127.0.0.1:9',
        database: { name: db, user: pg.user, host: '127.0.0.1', port: pg.port, via: 'host' },
        vault: path.join(dir, `vault-${name}`),
      });
      return stringify({
        'state-dir': path.join(dir, 'state'),
        environments: { prod: env('prod', prod, 'makapix'), dev: env('dev', dev, 'makapix_dev') },
        sample,
        ...extra,
      });
    },
    ctx(config) {
      return { host, config: config ?? world.config(), log, run: RUN, lockTimeoutSeconds: 30 };
    },
    dump,
    databases(pg) {
      return pg.psql('SELECT datname FROM pg_database ORDER BY 1').trim().split('\n');
    },
    async stop() {
      await host.close();
      await Promise.all([sshd.stop(), prod.stop(), dev.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return world;
}

/**
 * Replaces production's database with another schema and its rows, and dev's with an empty
 * database owned as the app's migrations would own it: for schemas other than the fixture's.
 */
export function loadScenario(world: World, prodSql: string): void {
  world.prod.psql('DROP DATABASE IF EXISTS makapix WITH (FORCE)');
  world.prod.psql('CREATE DATABASE makapix');
  runSql(world.prod, 'makapix', `SET client_min_messages = warning;\n${prodSql}\nANALYZE;`);
  world.dev.psql('DROP DATABASE IF EXISTS makapix_dev WITH (FORCE)');
  world.dev.psql('CREATE DATABASE makapix_dev OWNER app_owner');
}
