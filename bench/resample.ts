/**
 * Resample bench: a Makapix-shaped production database at a chosen scale, then
 *   - the resample (its own process, through SSH, as the action runs it),
 *   - the floor: the same rows moved by bare COPY pipes between the same two servers,
 *   - the scan floor, the physical limit of any sampler that must look at all of production: one
 *     sequential read of every production table the sample reads, plus that floor's COPY of the
 *     sampled rows, plus post-data (constraints and indexes),
 *   - the seed design's row-by-row copy of the same rows,
 *   - the action process's peak memory,
 * at two scales (the second 10x the rows), with how each figure grows between them, and a third,
 * large scale (--large, default 500,000 users, ~29 million rows; 0 skips it) where fixed costs no
 * longer hide the per-row cost. The row-by-row copy is skipped at the large scale (minutes, and
 * its ratio is already read at the first two).
 * Usage: npx tsx bench/resample.ts [--small 5000] [--users 50000] [--large 500000] [--fraction 0.1] [--skip-rowbyrow]
 * Through `npm run bench -- resample`, BENCH_RESAMPLE_LARGE sets --large (0 skips it).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/domain/config';
import { MemoryLogger } from '../src/infra/logger';
import { argv } from '../src/infra/shell';
import { planResample } from '../src/resample/engine';
import { copiedTables } from '../src/resample/plan';
import { ident, qualified } from '../src/infra/sql';
import { connect, target } from '../test/harness/connect';
import { startPostgres, type TestPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';
import { SAMPLE_CONFIG } from '../test/fixtures/sample-schema/generate';
import { benchConfigYaml, createDevDatabase, runSql } from '../test/integration/resample-support';
import { generateMakapix } from './resample-data';
import { rowByRow } from './resample-rowbyrow';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** Two scales, the second 10x the first (--small, --users). */
const SMALL = arg('small', 5_000);
const USERS = arg('users', SMALL * 10);
const LARGE = arg('large', Number(process.env.BENCH_RESAMPLE_LARGE ?? 500_000));
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
    const yaml = (prodDb: string) => benchConfigYaml({ dir, prod, dev, prodDb, sample: SAMPLE_CONFIG, timeoutSeconds: 7200 });

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
        fanoutSeconds: number;
      };
    };

    createDevDatabase(dev);
    const load = os.loadavg();
    const psql = (pg: TestPostgres, db: string, ...a: string[]) =>
      argv('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', pg.port, '-U', pg.user, '-d', db, ...a);

    /** One scale: the resample, the bare-COPY floor and the row-by-row copy of the very same rows. */
    const measure = async (db: string, users: number, withRowByRow: boolean) => {
      const prodRows = generateMakapix(prod, db, users);
      // The machine is shared: the load during each measurement, so a ratio taken under uneven load shows it.
      const loadAtRun = os.loadavg()[0];
      const run = resampleOnce(db);
      console.log(
        `resample of ${db}: ${run.rowsCopied} rows in ${run.seconds.toFixed(1)} s, ${run.sshBytes} bytes over SSH; ${run.phases.map(([p, sec]) => `${p} ${sec.toFixed(1)} s`).join(', ')}`,
      );
      const pgDump = (section: string) =>
        argv('pg_dump', '-h', '127.0.0.1', '-p', prod.port, '-U', prod.user, '--section', section, '--no-owner', '--no-acl', '-d', db);
      // The floor: the very rows dev now has, parked in production, moved again by bare COPY pipes.
      const config = parseConfig(yaml(db), 'bench');
      const plan = await planResample(
        { host, config, log, run: { url: 'bench', actor: 'bench', sha: '', workflow: 'bench' }, lockTimeoutSeconds: 60 },
        { dryRun: false, fraction: FRACTION },
      );
      const tables = copiedTables(plan);
      // The scan floor's read: every production table the sample reads, whole and in turn, through
      // the same path as the resample's rows (psql on the host, its COPY out into a pipe).
      const loadAtScan = os.loadavg()[0];
      let t = process.hrtime.bigint();
      await host.run(
        tables
          .map((tp) => `${psql(prod, db, '-c', `COPY (SELECT * FROM ${qualified(tp.table.schema, tp.table.name)}) TO STDOUT`)} | cat > /dev/null`)
          .join(' && '),
        { quiet: true, timeoutSeconds: 7200, label: 'scan floor: one sequential read of every table the sample reads' },
      );
      const scan = seconds(t);
      runSql(
        prod,
        db,
        `CREATE SCHEMA bench_floor;\n${tables.map((tp) => `CREATE TABLE bench_floor.${ident(tp.table.name)} AS SELECT ${tp.columns.map((c) => ident(c.name)).join(', ')} FROM ${qualified(tp.table.schema, tp.table.name)} WITH NO DATA;`).join('\n')}`,
      );
      const cols = (tp: (typeof tables)[number]) => `(${tp.columns.map((c) => ident(c.name)).join(', ')})`;
      await host.run(
        tables
          .map(
            (tp) =>
              `${psql(dev, 'makapix_dev', '-c', `COPY (SELECT ${tp.columns.map((c) => ident(c.name)).join(', ')} FROM ${qualified(tp.table.schema, tp.table.name)}) TO STDOUT`)} | ${psql(prod, db, '-c', `COPY bench_floor.${ident(tp.table.name)} ${cols(tp)} FROM STDIN`)}`,
          )
          .join(' && '),
        { quiet: true, timeoutSeconds: 7200, label: 'parking the sampled rows in production' },
      );
      const target = `floor_${db}`;
      dev.psql(`CREATE DATABASE ${target}`);
      await host.run(`${pgDump('pre-data')} | ${psql(dev, target, '-o', '/dev/null')}`, { quiet: true, timeoutSeconds: 600 });
      t = process.hrtime.bigint();
      await host.run(
        tables
          .map(
            (tp) =>
              `${psql(prod, db, '-c', `COPY bench_floor.${ident(tp.table.name)} ${cols(tp)} TO STDOUT`)} | ${psql(dev, target, '-c', `COPY ${qualified(tp.table.schema, tp.table.name)} ${cols(tp)} FROM STDIN`)}`,
          )
          .join(' && '),
        { quiet: true, timeoutSeconds: 7200, label: 'floor: bare COPY pipes' },
      );
      const floor = seconds(t);
      t = process.hrtime.bigint();
      await host.run(`${pgDump('post-data')} | ${psql(dev, target, '-o', '/dev/null')}`, { quiet: true, timeoutSeconds: 7200 });
      const floorWithConstraints = floor + seconds(t);
      runSql(prod, db, 'SET client_min_messages = warning; DROP SCHEMA bench_floor CASCADE;');
      dev.psql(`DROP DATABASE ${target}`);

      let rbr: { seconds: number; rows: number } | undefined;
      if (ROW_BY_ROW && withRowByRow) {
        const rbrTarget = `rowbyrow_${db}`;
        dev.psql(`CREATE DATABASE ${rbrTarget}`);
        await host.run(`${pgDump('pre-data')} | ${psql(dev, rbrTarget, '-o', '/dev/null')}`, { quiet: true, timeoutSeconds: 600 });
        t = process.hrtime.bigint();
        const rows = await rowByRow(plan, { port: prod.port, user: prod.user, database: db }, { port: dev.port, user: dev.user, database: rbrTarget });
        rbr = { seconds: seconds(t), rows };
        dev.psql(`DROP DATABASE ${rbrTarget}`);
      }
      // The next scale needs the room: production's copy at this scale is no longer read.
      prod.psql(`DROP DATABASE ${db}`);
      const loadAtEnd = os.loadavg()[0];
      return { users, prodRows, run, floor, floorWithConstraints, scan, scanFloor: scan + floorWithConstraints, rbr, load: [loadAtRun, loadAtScan, loadAtEnd] };
    };

    const scales = [await measure('makapix_small', SMALL, true), await measure('makapix', USERS, true)];
    if (LARGE > 0) scales.push(await measure('makapix_large', LARGE, false));
    const lines = [
      '',
      `Resample bench (${os.cpus().length} cores, load average ${load.map((l) => l.toFixed(1)).join(' ')} before, ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} after), fraction ${FRACTION}, ${scales.length} scales (${scales
        .slice(1)
        .map((m, k) => `${(m.prodRows / scales[k].prodRows).toFixed(1)}x`)
        .join(', ')} the rows):`,
    ];
    for (const m of scales) {
      lines.push(
        `  ${m.users} users / ${m.prodRows} rows: resample ${m.run.seconds.toFixed(1)} s for ${m.run.rowsCopied} rows (plan, schema, snapshot copy, checks, constraints, leak scan, swap)`,
        `    floor, bare COPY pipes of the same rows: ${m.floor.toFixed(1)} s -> resample / floor = ${(m.run.seconds / m.floor).toFixed(2)}x; with post-data ${m.floorWithConstraints.toFixed(1)} s -> ${(m.run.seconds / m.floorWithConstraints).toFixed(2)}x`,
        `    scan floor: read of every table the sample reads ${m.scan.toFixed(1)} s + that COPY and post-data = ${m.scanFloor.toFixed(1)} s -> resample / scan floor = ${(m.run.seconds / m.scanFloor).toFixed(2)}x (aim <= 1.5x at the largest scale)`,
        `    load average (1 min) as the resample started ${m.load[0].toFixed(1)}, as the scan floor started ${m.load[1].toFixed(1)}, at its end ${m.load[2].toFixed(1)}`,
        `    phases: ${m.run.phases.map(([p, sec]) => `${p} ${sec.toFixed(1)} s`).join(', ')}; beside the rows, production's children per parent (representativeness) ${m.run.fanoutSeconds.toFixed(1)} s`,
        m.rbr
          ? `    row by row (seed design), same rows: ${m.rbr.seconds.toFixed(1)} s for ${m.rbr.rows} rows -> row-by-row / resample = ${(m.rbr.seconds / m.run.seconds).toFixed(1)}x (aim >= 10x)`
          : '    row by row: skipped',
        `    peak memory of the resample process ${(m.run.maxRssKb / 1024).toFixed(0)} MB, ${m.run.sshBytes} bytes over SSH`,
      );
    }
    for (const [k, b] of scales.slice(1).entries()) {
      const a = scales[k];
      lines.push(
        `  growth from ${a.users} to ${b.users} users (${(b.prodRows / a.prodRows).toFixed(1)}x the rows): resample time ${(b.run.seconds / a.run.seconds).toFixed(1)}x, floor ${(b.floor / a.floor).toFixed(1)}x, scan floor ${(b.scanFloor / a.scanFloor).toFixed(1)}x` +
          `${a.rbr && b.rbr ? `, row by row ${(b.rbr.seconds / a.rbr.seconds).toFixed(1)}x` : ''}, peak memory ${(b.run.maxRssKb / a.run.maxRssKb).toFixed(2)}x, bytes over SSH ${(b.run.sshBytes / a.run.sshBytes).toFixed(2)}x`,
      );
    }
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
