/**
 * Point-in-time restore of prod (src/domain/pitr.ts) against a real PostgreSQL 15 in a real
 * container, over a real OpenSSH server, from a real base backup and the WAL pg_receivewal archived:
 * rows are written in batches with known commit times around a base backup and a "migration"; a
 * recovery to a time between two batches holds exactly the rows committed before it, `latest` holds
 * the rows still only in the .partial segment, the swap leaves prod with exactly those rows, a target
 * before the oldest base backup is refused before anything is created, and a recovery that fails
 * leaves no scratch container or directory. Every check reads the host (docker, psql, files).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { recoverToScratch, restoreToPoint, scratchRoot } from '../../src/domain/pitr';
import { baseBackup, ensureWal, walDir, type BaseBackup } from '../../src/domain/wal';
import { OperationFailed } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';
import { startWalDb, walSuite } from './wal-support';

const { PROJECT, IMAGE, NETWORK, DB, SCRATCH, PASSWORD, docker, attempt, psql } = walSuite('pitr');
const ROWS = { a: 20_000, b: 5_000, c: 3_000 };

/** psql as prod's database owner (the tables are the owner's, as an app's migrations make them). */
const sql = (query: string, database = 'app') => psql(query, { database });
/** psql inside the scratch server's container, on its socket. */
const scratchSql = (query: string) => docker('exec', SCRATCH, 'psql', '-X', '-q', '-A', '-t', '-h', '/pitr', '-U', 'owner', '-d', 'app', '-c', query);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let skip: string | false = sshdAvailable() ?? false;
if (!skip && attempt('image', 'inspect', 'twinstack-fixture-base:latest').status !== 0)
  skip = 'the fixture base image is missing (bash test/e2e/support/base-image.sh)';

let sshd: TestSshd;
let host: SshHost;
let root: string;
let config: Config;
let ctx: EnvContext;
let base: BaseBackup;
/** The database's clock between batch b and batch c: the recovery target. */
let target: Date;
const log = new MemoryLogger();

function configFor(dir: string): Config {
  const text = fs
    .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${dir}/state`)
    .replace('project: makapix-prod', `project: ${PROJECT}`)
    .replace('{ service: db, name: makapix, user: owner,', '{ service: db, name: app, user: owner,');
  return parseConfig(`${text}\nbackup:\n  dir: ${dir}/backups\n  wal: { enabled: true, admin-user: postgres }\n`, 'twinstack.yml');
}

/** One batch: `n` rows in one transaction; returns its commit time as the database's clock saw it just after. */
function batch(name: string, n: number): string {
  sql(`INSERT INTO events (batch, note) SELECT '${name}', 'event ' || g FROM generate_series(1, ${n}) g`);
  return sql('SELECT clock_timestamp()');
}

/** The archive's completed segments with their size and mtime: what a recovery must never change. */
function completedSegments(): string {
  return fs
    .readdirSync(walDir(config))
    .filter((f) => /^[0-9A-F]{24}$/.test(f))
    .map((f) => `${f} ${fs.statSync(path.join(walDir(config), f)).size} ${fs.statSync(path.join(walDir(config), f)).mtimeMs}`)
    .join('\n');
}

function scratchLeft(): string[] {
  const left = fs.existsSync(scratchRoot(config)) ? fs.readdirSync(scratchRoot(config)) : [];
  return attempt('inspect', SCRATCH).status === 0 ? [...left, `container ${SCRATCH}`] : left;
}

function cleanUp(): void {
  for (const c of [SCRATCH, `${PROJECT}-twinstack-wal`, DB]) attempt('rm', '-f', '-v', c);
  attempt('network', 'rm', NETWORK);
  attempt('rmi', '-f', IMAGE);
}

describe('point-in-time restore of prod', { skip }, () => {
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-pitr-'));
    config = configFor(root);
    try {
      await startWalDb({ image: IMAGE, network: NETWORK, db: DB, project: PROJECT });
      sshd = await startSshd();
      host = await connect(sshd, {}, log);
    } catch (e) {
      cleanUp();
      throw e;
    }
    ctx = { host, config, env: new Environment('prod', config), log };
    await ensureWal(ctx, PASSWORD);
    sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('rev_a')");
    sql('CREATE TABLE events (id bigserial PRIMARY KEY, batch text NOT NULL, note text, at timestamptz NOT NULL DEFAULT clock_timestamp())');
    // No autovacuum commit after the last batch, so a target after it is past the archive's last commit.
    sql('ALTER TABLE events SET (autovacuum_enabled = off)');
    batch('a', ROWS.a);
    base = await baseBackup(ctx, PASSWORD);
    // The segment the base backup starts in, completed and archived (the failure test spoils a copy of it).
    docker('exec', DB, 'psql', '-X', '-q', '-h', '/var/run/postgresql', '-U', 'postgres', '-c', 'SELECT pg_switch_wal()');
    batch('b', ROWS.b);
    await sleep(1500);
    target = new Date(sql(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`));
    await sleep(1500);
    // The "migration" the restore goes back before: a new column, a new revision, and rows.
    sql("BEGIN; ALTER TABLE events ADD COLUMN extra int; UPDATE alembic_version SET version_num = 'rev_b'; COMMIT");
    batch('c', ROWS.c);
  });
  after(async () => {
    await host?.close();
    await sshd?.stop();
    cleanUp();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('refuses a target before the oldest base backup, before anything is created on the host', async () => {
    const early = new Date(Date.parse(fs.statSync(path.join(base.dir, 'backup_manifest')).mtime.toISOString()) - 1000);
    await assert.rejects(recoverToScratch(ctx, { target: early }), (e: Error) => {
      assert.ok(e instanceof OperationFailed, String(e));
      assert.match(e.message, /no base backup was whole before .*choose a later target/);
      assert.ok(!e.message.includes('\n'));
      return true;
    });
    assert.equal(fs.existsSync(scratchRoot(config)), false, 'the scratch directory root was created');
    assert.notEqual(attempt('inspect', SCRATCH).status, 0, 'a scratch container was created');
  });

  it('recovers, in a scratch server with no network, exactly the rows committed before the target, and the revision then', async () => {
    const archived = completedSegments();
    const rec = await recoverToScratch(ctx, { target, keep: true });
    try {
      assert.equal(docker('inspect', '--format', '{{.HostConfig.NetworkMode}} {{json .HostConfig.PortBindings}}', SCRATCH), 'none {}');
      assert.equal(
        docker('inspect', '--format', '{{.Image}}', SCRATCH),
        docker('inspect', '--format', '{{.Image}}', DB),
        "the scratch server is not prod's image",
      );
      assert.equal(scratchSql("SELECT batch || ':' || count(*) FROM events GROUP BY batch ORDER BY batch"), `a:${ROWS.a}\nb:${ROWS.b}`);
      assert.equal(scratchSql('SELECT version_num FROM alembic_version'), 'rev_a');
      assert.equal(scratchSql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'extra'"), '0');
      assert.equal(scratchSql('SELECT pg_is_in_recovery()'), 'f');
      // The recovery point is the last replayed commit: after batch b's last row, before the target.
      const lastRow = new Date(scratchSql(`SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM events`));
      assert.ok(
        rec.recoveryPoint >= lastRow && rec.recoveryPoint < target,
        `${rec.recoveryPoint.toISOString()} is not between ${lastRow.toISOString()} and the target`,
      );
      assert.equal(rec.alembicRevision, 'rev_a');
      assert.equal(rec.counts.get('public.events'), ROWS.a + ROWS.b);
      log.info(`test: recovered ${ROWS.a + ROWS.b} rows to a time target in ${rec.seconds} s`);
    } finally {
      await rec.remove();
    }
    assert.deepEqual(scratchLeft(), []);
    assert.equal(completedSegments(), archived, 'the WAL archive was changed');
  });

  it('latest replays the rows still only in the .partial segment', async () => {
    const current = docker(
      'exec',
      DB,
      'psql',
      '-X',
      '-A',
      '-t',
      '-h',
      '/var/run/postgresql',
      '-U',
      'postgres',
      '-c',
      'SELECT pg_walfile_name(pg_current_wal_lsn())',
    );
    assert.ok(fs.existsSync(path.join(walDir(config), `${current}.partial`)), 'batch c is not in the segment being received');
    assert.equal(fs.existsSync(path.join(walDir(config), current)), false);
    const rec = await recoverToScratch(ctx, { target: 'latest', keep: true });
    try {
      assert.equal(scratchSql("SELECT batch || ':' || count(*) FROM events GROUP BY batch ORDER BY batch"), `a:${ROWS.a}\nb:${ROWS.b}\nc:${ROWS.c}`);
      assert.equal(scratchSql('SELECT version_num FROM alembic_version'), 'rev_b');
      log.info(`test: recovered ${ROWS.a + ROWS.b + ROWS.c} rows to latest in ${rec.seconds} s`);
    } finally {
      await rec.remove();
    }
    assert.deepEqual(scratchLeft(), []);
    assert.ok(fs.existsSync(path.join(walDir(config), `${current}.partial`)), 'the .partial segment was moved');
  });

  it('a target after the last commit the archive holds recovers everything it holds', async () => {
    await sleep(1000);
    const late = new Date(sql(`SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`));
    await sleep(1000);
    const rec = await recoverToScratch(ctx, { target: late, keep: true });
    try {
      assert.equal(scratchSql("SELECT batch || ':' || count(*) FROM events GROUP BY batch ORDER BY batch"), `a:${ROWS.a}\nb:${ROWS.b}\nc:${ROWS.c}`);
      assert.equal(scratchSql('SELECT version_num FROM alembic_version'), 'rev_b');
      // Without a commit after the target in the archive PostgreSQL stops short of promoting; the
      // recovery then replays to the end (a background commit after the target, such as an
      // autovacuum's, reaches the target instead: the rows are the same either way).
      log.info(`test: target after the archive's last commit: archiveEndsBeforeTarget=${rec.archiveEndsBeforeTarget}`);
    } finally {
      await rec.remove();
    }
    assert.deepEqual(scratchLeft(), []);
  });

  it('a recovery that fails leaves no scratch server or directory, and prod untouched', async () => {
    const start = /^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$/m.exec(
      execFileSync('tar', ['-xOf', path.join(base.dir, 'base.tar'), 'backup_label'], { encoding: 'utf8' }),
    )?.[1];
    assert.ok(start);
    const file = path.join(walDir(config), start);
    const saved = fs.readFileSync(file);
    // The segment holding the backup's checkpoint, spoilt (kept aside and put back by the test).
    fs.writeFileSync(file, Buffer.alloc(saved.length));
    try {
      await assert.rejects(recoverToScratch(ctx, { target: 'latest' }), (e: Error) => {
        assert.ok(e instanceof OperationFailed, String(e));
        assert.match(e.message, /the scratch server .* stopped before its recovery ended/);
        return true;
      });
    } finally {
      fs.writeFileSync(file, saved);
    }
    assert.deepEqual(scratchLeft(), []);
    assert.equal(sql('SELECT count(*) FROM events'), String(ROWS.a + ROWS.b + ROWS.c));
  });

  it('the swap leaves prod with exactly the rows committed before the target, its old database kept aside', async () => {
    const r = await restoreToPoint(ctx, { target });
    assert.equal(sql("SELECT batch || ':' || count(*) FROM events GROUP BY batch ORDER BY batch"), `a:${ROWS.a}\nb:${ROWS.b}`);
    assert.equal(sql('SELECT version_num FROM alembic_version'), 'rev_a');
    assert.equal(sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'events' AND column_name = 'extra'"), '0');
    assert.equal(sql('SELECT count(*) FROM events', 'app_twinstack_pre_restore'), String(ROWS.a + ROWS.b + ROWS.c));
    // The dump it went through is a verified backup of prod, its manifest naming the recovery.
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'backups', 'prod', r.backup.id, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(manifest.status, 'verified');
    assert.deepEqual(manifest.pointInTime, { base: base.dir, target: target.toISOString(), recoveryPoint: r.recovery.recoveryPoint.toISOString() });
    assert.ok(r.unrecoveredSeconds >= 0 && r.unrecoveredSeconds < 10, String(r.unrecoveredSeconds));
    assert.deepEqual(scratchLeft(), []);
    log.info(`test: point-in-time restore into prod in ${r.recovery.seconds} s of recovery`);
  });

  after(() => {
    // The figures the report quotes: how long each recovery took.
    for (const line of log.text.split('\n').filter((l) => /test: |recovered to|restored to/.test(l))) console.log(line);
  });
});
