/**
 * Resample bench: a Makapix-shaped production database at a chosen scale, then
 *   - the resample (its own process, through SSH, as the action runs it),
 *   - the floor: the same rows moved by bare COPY pipes between the same two servers,
 *   - the seed design's row-by-row copy of the same rows,
 *   - the action process's peak memory at two scales.
 * Usage: npx tsx bench/resample.ts [--users 50000] [--small 12500] [--fraction 0.1] [--skip-rowbyrow]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../src/domain/config';
import { MemoryLogger } from '../src/infra/logger';
import { argv } from '../src/infra/shell';
import { planResample } from '../src/resample/engine';
import { copiedTables } from '../src/resample/plan';
import { ident, qualified } from '../src/infra/sql';
import { connect, target } from '../test/harness/connect';
import { startPostgres, type TestPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';
import { SAMPLE_CONFIG, SCHEMA_SQL, dataSql } from '../test/fixtures/sample-schema/generate';
import { createDevDatabase, runSql } from '../test/integration/resample-support';
import { rowByRow } from './resample-rowbyrow';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const USERS = arg('users', 50_000);
const SMALL = arg('small', Math.round(USERS / 4));
const FRACTION = arg('fraction', 0.1);
const ROW_BY_ROW = !process.argv.includes('--skip-rowbyrow');

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-bench-'));
  const [sshd, prod, dev] = await Promise.all([startSshd(), startPostgres(), startPostgres()]);
  const log = new MemoryLogger();
  const host = await connect(sshd, {}, log);
  try {
    const yaml = (prodDb: string) =>
      stringify({
        'state-dir': path.join(dir, 'state'),
        'command-timeout-seconds': 7200,
        environments: Object.fromEntries(
          (
            [
              ['prod', prod, prodDb],
              ['dev', dev, 'makapix_dev'],
            ] as Array<[string, TestPostgres, string]>
          ).map(([name, pg, db]) => [
            name,
            {
              checkout: path.join(dir, name),
              project: `b${name}`,
              'compose-files': ['c.yml'],
              'env-file': '.env',
              url: 'http://127.0.0.1:9',
              database: { name: db, user: pg.user, host: '127.0.0.1', port: pg.port, via: 'host' },
            },
          ]),
        ),
        sample: SAMPLE_CONFIG,
      });

    const generate = (db: string, users: number) => {
      const t = process.hrtime.bigint();
      prod.psql(`CREATE DATABASE ${db}`);
      runSql(prod, db, `${SCHEMA_SQL}\n${dataSql(users)}`);
      const rows = Number(prod.psql('SELECT sum(n_live_tup) FROM pg_stat_user_tables', db).trim());
      const size = prod.psql(`SELECT pg_size_pretty(pg_database_size('${db}'))`).trim();
      console.log(`generated ${db}: ${users} users, ${rows} rows, ${size} in ${seconds(t).toFixed(1)} s`);
      return rows;
    };

    const resampleOnce = (db: string) => {
      const job = JSON.stringify({ target: target(sshd), configYaml: yaml(db), fraction: FRACTION });
      const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(__dirname, 'resample-run.ts'), job], {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      if (r.status !== 0) throw new Error(`resample failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
        seconds: number;
        rowsCopied: number;
        sshBytes: number;
        maxRssKb: number;
        phases: Array<[string, number]>;
      };
    };

    createDevDatabase(dev);
    const smallRows = generate('makapix_small', SMALL);
    const small = resampleOnce('makapix_small');
    const prodRows = generate('makapix', USERS);
    const big = resampleOnce('makapix');
    console.log(
      `resample: ${big.rowsCopied} rows in ${big.seconds.toFixed(1)} s, ${big.sshBytes} bytes over SSH; ${big.phases.map(([p, sec]) => `${p} ${sec.toFixed(1)} s`).join(', ')}`,
    );

    // The floor: the very rows dev now has, parked in production, moved again by bare COPY pipes.
    const config = parseConfig(yaml('makapix'), 'bench');
    const plan = await planResample(
      { host, config, log, run: { url: 'bench', actor: 'bench', sha: '', workflow: 'bench' }, lockTimeoutSeconds: 60 },
      { dryRun: false, fraction: FRACTION },
    );
    const tables = copiedTables(plan);
    const psql = (pg: TestPostgres, db: string, ...a: string[]) =>
      argv('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', pg.port, '-U', pg.user, '-d', db, ...a);
    const pgDump = (section: string) =>
      argv('pg_dump', '-h', '127.0.0.1', '-p', prod.port, '-U', prod.user, '--section', section, '--no-owner', '--no-acl', '-d', 'makapix');
    runSql(
      prod,
      'makapix',
      `CREATE SCHEMA bench_floor;\n${tables.map((tp) => `CREATE TABLE bench_floor.${ident(tp.table.name)} AS SELECT ${tp.columns.map((c) => ident(c.name)).join(', ')} FROM ${qualified(tp.table.schema, tp.table.name)} WITH NO DATA;`).join('\n')}`,
    );
    const cols = (tp: (typeof tables)[number]) => `(${tp.columns.map((c) => ident(c.name)).join(', ')})`;
    await host.run(
      tables
        .map(
          (tp) =>
            `${psql(dev, 'makapix_dev', '-c', `COPY (SELECT ${tp.columns.map((c) => ident(c.name)).join(', ')} FROM ${qualified(tp.table.schema, tp.table.name)}) TO STDOUT`)} | ${psql(prod, 'makapix', '-c', `COPY bench_floor.${ident(tp.table.name)} ${cols(tp)} FROM STDIN`)}`,
        )
        .join(' && '),
      { quiet: true, timeoutSeconds: 7200, label: 'parking the sampled rows in production' },
    );
    dev.psql('CREATE DATABASE floor_target');
    await host.run(`${pgDump('pre-data')} | ${psql(dev, 'floor_target', '-o', '/dev/null')}`, { quiet: true, timeoutSeconds: 600 });
    let t = process.hrtime.bigint();
    await host.run(
      tables
        .map(
          (tp) =>
            `${psql(prod, 'makapix', '-c', `COPY bench_floor.${ident(tp.table.name)} ${cols(tp)} TO STDOUT`)} | ${psql(dev, 'floor_target', '-c', `COPY ${qualified(tp.table.schema, tp.table.name)} ${cols(tp)} FROM STDIN`)}`,
        )
        .join(' && '),
      { quiet: true, timeoutSeconds: 7200, label: 'floor: bare COPY pipes' },
    );
    const floorCopy = seconds(t);
    t = process.hrtime.bigint();
    await host.run(`${pgDump('post-data')} | ${psql(dev, 'floor_target', '-o', '/dev/null')}`, { quiet: true, timeoutSeconds: 7200 });
    const floorWithConstraints = floorCopy + seconds(t);
    runSql(prod, 'makapix', 'DROP SCHEMA bench_floor CASCADE;');

    let rbr: { seconds: number; rows: number } | undefined;
    if (ROW_BY_ROW) {
      dev.psql('CREATE DATABASE rowbyrow_target');
      await host.run(`${pgDump('pre-data')} | ${psql(dev, 'rowbyrow_target', '-o', '/dev/null')}`, { quiet: true, timeoutSeconds: 600 });
      t = process.hrtime.bigint();
      const rows = await rowByRow(
        plan,
        { port: prod.port, user: prod.user, database: 'makapix' },
        { port: dev.port, user: dev.user, database: 'rowbyrow_target' },
      );
      rbr = { seconds: seconds(t), rows };
    }

    const lines = [
      '',
      `Resample bench (${os.cpus().length} cores): production ${USERS} users / ${prodRows} rows, fraction ${FRACTION}`,
      `  resample (plan, schema, snapshot copy, checks, constraints, leak scan, swap): ${big.seconds.toFixed(1)} s for ${big.rowsCopied} rows`,
      `  floor, bare COPY pipes of the same rows:            ${floorCopy.toFixed(1)} s  -> resample / floor = ${(big.seconds / floorCopy).toFixed(2)}x (aim <= 1.5x)`,
      `  floor plus constraints and indexes (post-data):    ${floorWithConstraints.toFixed(1)} s  -> resample / floor = ${(big.seconds / floorWithConstraints).toFixed(2)}x`,
      rbr
        ? `  row-by-row baseline (seed design), same rows:       ${rbr.seconds.toFixed(1)} s for ${rbr.rows} rows -> row-by-row / resample = ${(rbr.seconds / big.seconds).toFixed(1)}x (aim >= 10x)`
        : '  row-by-row baseline: skipped',
      `  peak memory of the resample process: ${(small.maxRssKb / 1024).toFixed(0)} MB at ${SMALL} users (${smallRows} rows), ${(big.maxRssKb / 1024).toFixed(0)} MB at ${USERS} users (${prodRows} rows) -> ratio ${(big.maxRssKb / small.maxRssKb).toFixed(2)} for ${(prodRows / smallRows).toFixed(1)}x the data`,
      `  bytes over SSH: ${small.sshBytes} (small) vs ${big.sshBytes} (large)`,
    ];
    console.log(lines.join('\n'));
  } finally {
    await host.close();
    await Promise.all([sshd.stop(), prod.stop(), dev.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
