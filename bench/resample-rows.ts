/**
 * Where a large resample's rows phase goes, statement by statement: the production session's
 * script (membership program, one COPY per table, cleared counts, leak probes) run alone against
 * production with psql's \timing, its output then loaded into a copy of the schema with the staging
 * session's checks (counts, orphans, leak scan), timed the same way. Both run one after the other
 * here, whereas the resample pipes one into the other: read the shares, not a sum.
 * Usage: npx tsx bench/resample-rows.ts [--users 500000] [--fraction 0.1] [--top 12] [--script FILE (keeps the production script)]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/domain/config';
import { MemoryLogger } from '../src/infra/logger';
import { countsQuery, leakQuery, orphansQuery, planResample } from '../src/resample/engine';
import { CLEARED_TABLE, PROBE_TABLE, placeholderInserts, productionScript } from '../src/resample/plan';
import { connect } from '../test/harness/connect';
import { startPostgres, type TestPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';
import { SAMPLE_CONFIG } from '../test/fixtures/sample-schema/generate';
import { benchConfigYaml, createDevDatabase } from '../test/integration/resample-support';
import { generateMakapix } from './resample-data';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const USERS = arg('users', 500_000);
const FRACTION = arg('fraction', 0.1);
const TOP = arg('top', 12);

/** Runs a psql script with \timing and echo; returns each statement's first words and milliseconds. */
function timed(pg: TestPostgres, db: string, script: string, output: string): Array<{ statement: string; ms: number }> {
  const stdout = execFileSync(
    path.join(pg.bin, 'psql'),
    ['-X', '-q', '-A', '-t', '-e', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(pg.port), '-U', pg.user, '-d', db, '-o', output, '-f', '-'],
    { input: `\\timing on\n${script}`, encoding: 'utf8', maxBuffer: 512 * 1024 * 1024, timeout: 3 * 3600_000 },
  );
  const out: Array<{ statement: string; ms: number }> = [];
  let text: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^Time: ([\d.]+) ms/.exec(line);
    if (m) {
      out.push({ statement: text.join(' ').replace(/\s+/g, ' ').slice(0, 110), ms: Number(m[1]) });
      text = [];
    } else if (line.trim()) text.push(line);
  }
  return out;
}

function print(title: string, rows: Array<{ statement: string; ms: number }>): void {
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`\n${title}: ${(total / 1000).toFixed(1)} s in ${rows.length} statements; the ${TOP} longest:`);
  for (const r of [...rows].sort((a, b) => b.ms - a.ms).slice(0, TOP))
    console.log(`  ${(r.ms / 1000).toFixed(2).padStart(7)} s ${`${((100 * r.ms) / total).toFixed(0)} %`.padStart(5)}  ${r.statement}`);
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-bench-'));
  const [sshd, prod, dev] = await Promise.all([startSshd(), startPostgres(), startPostgres()]);
  const log = new MemoryLogger();
  const host = await connect(sshd, {}, log);
  try {
    const db = 'makapix_rows';
    createDevDatabase(dev);
    const rows = generateMakapix(prod, db, USERS);
    const config = parseConfig(benchConfigYaml({ dir, prod, dev, prodDb: db, sample: SAMPLE_CONFIG, timeoutSeconds: 7200 }), 'bench');
    const plan = await planResample(
      { host, config, log, run: { url: 'bench', actor: 'bench', sha: '', workflow: 'bench' }, lockTimeoutSeconds: 60 },
      { dryRun: false, fraction: FRACTION },
    );
    console.log(
      `load average ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}; ${USERS} users, ${rows} rows, fraction ${FRACTION}`,
    );
    const sample = path.join(dir, 'sample.sql');
    const keep = process.argv.indexOf('--script');
    if (keep > 0) fs.writeFileSync(process.argv[keep + 1], productionScript(plan));
    print('production session (alone, output to a file)', timed(prod, db, productionScript(plan), sample));
    dev.psql('CREATE DATABASE staging_rows');
    const dump = execFileSync(
      path.join(prod.bin, 'pg_dump'),
      ['-h', '127.0.0.1', '-p', String(prod.port), '-U', prod.user, '--section', 'pre-data', '--no-owner', '--no-acl', '-d', db],
      {
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      },
    );
    timed(dev, 'staging_rows', dump, '/dev/null');
    const receive = [
      `SET synchronous_commit = off; SET jit = off; CREATE TEMP TABLE ${PROBE_TABLE} (src text, v text, shaped boolean); CREATE TEMP TABLE ${CLEARED_TABLE} (tbl text, fk text, n bigint, kind text);`,
      `\\i ${sample}`,
      placeholderInserts(plan) ?? '',
      countsQuery(plan),
      orphansQuery(plan),
      leakQuery(plan),
    ].join('\n');
    print('staging session (rows loaded from that file, then its checks)', timed(dev, 'staging_rows', receive, '/dev/null'));
    console.log(
      `load average ${os
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')} at the end`,
    );
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
