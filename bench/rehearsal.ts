/**
 * Rehearsal bench: promote's rehearsal (rehearse(), the real function) on a database at two sizes,
 * the larger BENCH_REHEARSAL_FACTOR (default 10) times the smaller (BENCH_REHEARSAL_ROWS rows,
 * default 200,000 rows of about 200 bytes). Real parts only: PostgreSQL from the harness, reached
 * through the harness's sshd, a verified backup by takeBackup, and the migration in a one-off
 * `compose run` container of the fixture base image (python, alembic, psycopg2) on this machine's
 * Docker engine, on the host's network so it reaches the harness PostgreSQL on 127.0.0.1. The
 * migration does work proportional to size: ALTER COLUMN TYPE (a table rewrite under ACCESS
 * EXCLUSIVE, until its commit) and an index build in the same transaction. Prints, per size, the
 * database's bytes and rows, the copy's restore time, the migration's time, the whole rehearsal's,
 * the ACCESS EXCLUSIVE holds seen by the 100 ms pg_locks sampler, and each figure's ratio between
 * the sizes. The one-off container's start (compose run of a no-op) is measured too: a fixed cost
 * inside every migration time. Compose project names start with tsrb- (TWINSTACK_BENCH_PROJECT).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { takeBackup } from '../src/domain/backup';
import { parseConfig } from '../src/domain/config';
import { Environment } from '../src/domain/environment';
import { rehearse, type RehearsalResult } from '../src/domain/rehearsal';
import { MemoryLogger } from '../src/infra/logger';
import { argv } from '../src/infra/shell';
import { BASE_IMAGE, composeCommands, dockerProblem } from '../test/e2e/support/fixture-host';
import { connect } from '../test/harness/connect';
import { startPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';

const MIGRATIONS: Record<string, string> = {
  'alembic.ini': '[alembic]\nscript_location = migrations\n',
  'migrations/env.py': `import os
from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import URL

url = URL.create("postgresql+psycopg2", username=os.environ["DB_USER"], host="127.0.0.1", port=int(os.environ["DB_PORT"]), database=os.environ["DB_NAME"])
with create_engine(url, poolclass=pool.NullPool).connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
`,
  'migrations/script.py.mako': '',
  'migrations/versions/0001_posts.py': `revision = "0001"
down_revision = None


def upgrade():
    pass
`,
  'migrations/versions/0002_widen_owner.py': `from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade():
    op.execute("ALTER TABLE posts ALTER COLUMN owner_id TYPE bigint")
    op.execute("CREATE INDEX posts_owner_created ON posts (owner_id, created_at)")
`,
};

interface Row {
  rows: number;
  bytes: number;
  restoreS: number;
  migrationS: number;
  totalS: number;
  result: RehearsalResult;
}

async function main(): Promise<void> {
  const problem = dockerProblem();
  if (problem) throw new Error(problem);
  const small = Number(process.env.BENCH_REHEARSAL_ROWS ?? 200_000);
  const factor = Number(process.env.BENCH_REHEARSAL_FACTOR ?? 10);
  const project = process.env.TWINSTACK_BENCH_PROJECT ?? 'tsrb-rehearsal';
  if (!project.startsWith('tsrb-')) throw new Error('TWINSTACK_BENCH_PROJECT must start with tsrb-');
  const compose = composeCommands()[0];
  if (!compose) throw new Error('no docker compose on this machine');

  const [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrb-bench-rehearsal-'));
  fs.chmodSync(dir, 0o777);
  const checkout = path.join(dir, 'checkout');
  for (const [f, text] of Object.entries(MIGRATIONS)) {
    fs.mkdirSync(path.dirname(path.join(checkout, f)), { recursive: true });
    fs.writeFileSync(path.join(checkout, f), text);
  }
  fs.writeFileSync(
    path.join(checkout, 'docker-compose.yml'),
    `services:\n  api:\n    image: ${BASE_IMAGE}\n    network_mode: host\n    working_dir: /app\n    volumes: ['./:/app:ro']\n    env_file: .env\n    command: ['sleep', 'infinity']\n`,
  );
  fs.writeFileSync(path.join(checkout, '.env'), `DB_USER=${pg.user}\nDB_PORT=${pg.port}\nDB_NAME=makapix\n`);
  const host = await connect(sshd);
  try {
    const config = parseConfig(
      `compose-command: ${compose}
backup: { dir: ${dir}/backups }
promote: { database-env: DB_NAME }
environments:
  prod: {checkout: ${checkout}, project: ${project}, compose-files: [docker-compose.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: ${pg.user}, port: ${pg.port}, via: host}}
  dev: {checkout: ${dir}/dev, project: ${project}-dev, compose-files: [docker-compose.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: ${pg.user}, port: 1, via: host}}
`,
      'bench',
    );
    const prod = new Environment('prod', config);

    // The one-off container's own cost, measured once warm: compose run of a no-op.
    const noop = () =>
      host.run(
        prod.compose('run', '--rm', '--no-deps', '-T', '--name', `${project}-noop`, 'api', 'true'),
        prod.composeOptions({ quiet: true, timeoutSeconds: 120, label: 'one-off no-op' }),
      );
    await noop();
    let t = Date.now();
    await noop();
    const oneOffS = (Date.now() - t) / 1000;

    pg.psql('create database makapix');
    pg.psql(
      `create table alembic_version (version_num varchar(32) primary key); insert into alembic_version values ('0001');
       create table posts (id bigint primary key, owner_id int not null, created_at timestamptz not null, title text, body text);`,
      'makapix',
    );
    const rows: Row[] = [];
    let have = 0;
    for (const n of [small, small * factor]) {
      // Rows of about 200 bytes, as in the backup bench: ids, a timestamp, text that compresses like real content.
      pg.psql(
        `insert into posts select g, g % 5000, now() - g * interval '1 second', 'post ' || g, md5(g::text) || repeat(md5((g * 7)::text), 4)
         from generate_series(${have + 1}, ${n}) g`,
        'makapix',
      );
      pg.psql('vacuum analyze posts', 'makapix');
      have = n;
      const bytes = Number(pg.psql("select pg_database_size('makapix')", 'makapix').trim());
      const backup = await takeBackup({ host, config, env: prod, ctx: {}, log: new MemoryLogger(), verify: 'list' });
      const log = new MemoryLogger();
      t = Date.now();
      const result = await rehearse({ host, config, at: prod, backup, log, opId: `bench${n}` });
      const totalS = (Date.now() - t) / 1000;
      if (!result.ok) throw new Error(`the rehearsal failed at ${n} rows: ${result.error ?? JSON.stringify(result)}`);
      rows.push({ rows: n, bytes, restoreS: result.restoreMs / 1000, migrationS: result.durationMs / 1000, totalS, result });
      await host.run(argv('rm', '-rf', `${dir}/backups`), { quiet: true });
    }
    const left = pg.psql("select count(*) from pg_database where datname like '%twinstack_rehearse%'").trim();
    const revision = pg.psql('select version_num from alembic_version', 'makapix').trim();

    const holds = (r: Row) => r.result.locks.map((l) => `${l.table} ${(l.ms / 1000).toFixed(1)} s`).join(', ') || 'none';
    const longest = (r: Row) => Math.max(0, ...r.result.locks.map((l) => l.ms)) / 1000;
    const [a, b] = rows;
    const ratio = (f: (r: Row) => number) => (f(a) > 0 ? `${(f(b) / f(a)).toFixed(1)}x` : '-');
    console.log(
      `rehearse() on a harness PostgreSQL through sshd, migration in a one-off ${compose} run container of ${BASE_IMAGE} (host network); ` +
        `migration: ALTER COLUMN TYPE bigint (table rewrite) + CREATE INDEX, one transaction; ${os.cpus().length} cores, shared and noisy: read the ratios`,
    );
    console.log('figure                         ' + rows.map((r) => `${r.rows.toLocaleString('en')} rows`.padStart(16)).join('') + '    ratio');
    const line = (what: string, f: (r: Row) => number, fmt: (v: number) => string) =>
      console.log(`${what.padEnd(31)}${rows.map((r) => fmt(f(r)).padStart(16)).join('')}${ratio(f).padStart(9)}`);
    const s = (v: number) => `${v.toFixed(1)} s`;
    line(
      'database size',
      (r) => r.bytes,
      (v) => `${(v / 1024 / 1024).toFixed(0)} MB`,
    );
    line(
      'rows (posts)',
      (r) => r.rows,
      (v) => v.toLocaleString('en'),
    );
    line('restore of the copy', (r) => r.restoreS, s);
    line('migration (incl. one-off start)', (r) => r.migrationS, s);
    line('migration minus one-off start', (r) => Math.max(0, r.migrationS - oneOffS), s);
    line('whole rehearsal', (r) => r.totalS, s);
    line('longest ACCESS EXCLUSIVE', longest, s);
    console.log('(locks are sampled every 100 ms: 0.1 s means seen in one sample)');
    for (const r of rows)
      console.log(
        `ACCESS EXCLUSIVE at ${r.rows.toLocaleString('en')} rows: ${holds(r)}; rewritten: ${r.result.rewritten.map((w) => `${w.table} (${w.rows} rows)`).join(', ') || 'none'}`,
      );
    console.log(`one-off container start (compose run of a no-op): ${s(oneOffS)}; rehearsal copies left behind: ${left}; prod still at revision ${revision}`);
    console.log(
      JSON.stringify({
        'rehearsal.one_off_start_s': oneOffS,
        ...Object.fromEntries(
          rows.flatMap((r, i) => {
            const k = `rehearsal.${i ? 'large' : 'small'}`;
            return [
              [`${k}.database_bytes`, r.bytes],
              [`${k}.rows`, r.rows],
              [`${k}.restore_s`, r.restoreS],
              [`${k}.migration_s`, r.migrationS],
              [`${k}.total_s`, r.totalS],
              [`${k}.longest_access_exclusive_s`, longest(r)],
            ];
          }),
        ),
      }),
    );
  } finally {
    await host.close();
    await Promise.all([sshd.stop(), pg.stop()]);
    try {
      execFileSync('docker', ['rm', '-f', `${project}-noop`, `${project}-twinstack-rehearse`], { stdio: 'ignore' });
    } catch {
      /* none left */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
