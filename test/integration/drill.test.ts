/**
 * The restore drill (restore with drill: true) against a real PostgreSQL 15 in a real container,
 * over a real OpenSSH server, from a real base backup, a real verified dump (verify: restore, its
 * manifest holding the exact row counts) and the WAL pg_receivewal archived. A drill passes and
 * reports RTO and RPO; it leaves no scratch container or directory; prod's database and containers
 * are untouched (no session opened on prod's database, no container restarted, the rows and a
 * marker the same). One flipped byte in a completed WAL segment, and a segment missing from the
 * archive, each fail the drill naming that segment. Every check reads the host (docker, psql, files).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { restoreAction } from '../../src/actions/restore/restore';
import { takeBackup } from '../../src/domain/backup';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { HostLog, latest } from '../../src/domain/host-log';
import { scratchRoot } from '../../src/domain/pitr';
import { baseBackup, ensureWal, walDir } from '../../src/domain/wal';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';
import { runOnFake } from '../support/run-action';
import { startWalDb, walSuite } from './wal-support';

const { PROJECT, IMAGE, NETWORK, DB, RECEIVER, SCRATCH, PASSWORD, docker, attempt, psql } = walSuite('drill');
const ROWS = { a: 5_000, b: 8_000, c: 1_000 };

const sql = (query: string, database = 'app', user = 'owner') => psql(query, { database, user });
/** Read through the postgres database, so reading opens no session on prod's own. */
const stats = (query: string) => sql(query, 'postgres', 'postgres');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let skip: string | false = sshdAvailable() ?? false;
if (!skip && attempt('image', 'inspect', 'twinstack-fixture-base:latest').status !== 0)
  skip = 'the fixture base image is missing (bash test/e2e/support/base-image.sh)';

let sshd: TestSshd;
let host: SshHost;
let root: string;
let config: Config;
let ctx: EnvContext;
/** The completed segment holding batch b, after the base backup's start. */
let middle: string;
const log = new MemoryLogger();

function configFor(dir: string): Config {
  const text = fs
    .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${dir}/state`)
    .replace('project: makapix-prod', `project: ${PROJECT}`)
    .replace('{ service: db, name: makapix, user: owner,', '{ service: db, name: app, user: owner,');
  const drill = `  drill:\n    smoke:\n      - SELECT count(*) FROM events WHERE batch = 'a'\n      - { sql: "SELECT note FROM markers WHERE id = 1", expect: drill-marker }\n`;
  return parseConfig(`${text}\nbackup:\n  dir: ${dir}/backups\n  verify: restore\n  wal: { enabled: true, admin-user: postgres }\n${drill}`, 'twinstack.yml');
}

function batch(name: string, n: number): void {
  sql(`INSERT INTO events (batch, note) SELECT '${name}', 'event ' || g FROM generate_series(1, ${n}) g`);
}

/** Waits until pg_receivewal has written `segment` completely (no longer .partial). */
async function archived(segment: string): Promise<void> {
  for (let i = 0; i < 120 && !fs.existsSync(path.join(walDir(config), segment)); i++) await sleep(500);
  assert.ok(fs.existsSync(path.join(walDir(config), segment)), `${segment} was not archived`);
}

function scratchLeft(): string[] {
  const left = fs.existsSync(scratchRoot(config)) ? fs.readdirSync(scratchRoot(config)) : [];
  return attempt('inspect', SCRATCH).status === 0 ? [...left, `container ${SCRATCH}`] : left;
}

/**
 * What a drill must never change on prod: sessions opened on its database, rows inserted or
 * deleted there, its containers' starts, its list of databases. (xact_commit is not compared:
 * autovacuum's own transactions move it with no client at all.)
 */
function prodState(): string {
  return [
    stats("SELECT sessions || ' ' || tup_inserted || ' ' || tup_deleted FROM pg_stat_database WHERE datname = 'app'"),
    docker('inspect', '--format', '{{.State.StartedAt}} {{.RestartCount}}', DB),
    docker('inspect', '--format', '{{.State.StartedAt}} {{.RestartCount}}', RECEIVER),
    stats("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database"),
  ].join('\n');
}

function cleanUp(): void {
  for (const c of [SCRATCH, RECEIVER, DB]) attempt('rm', '-f', '-v', c);
  attempt('network', 'rm', NETWORK);
  attempt('rmi', '-f', IMAGE);
}

const drill = () => runOnFake(restoreAction, { host, config }, { target: 'latest', drill: 'true' });

describe('restore drill of prod', { skip }, () => {
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-drill-'));
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
    sql('CREATE TABLE events (id bigserial PRIMARY KEY, batch text NOT NULL, note text)');
    sql("CREATE TABLE markers (id int PRIMARY KEY, note text); INSERT INTO markers VALUES (1, 'drill-marker')");
    sql('ALTER TABLE events SET (autovacuum_enabled = off)');
    batch('a', ROWS.a);
    const dump = await takeBackup({ ...ctx, ctx: {} });
    assert.equal(dump.rowCounts?.['public.events'], ROWS.a);
    await baseBackup(ctx, PASSWORD);
    stats('SELECT pg_switch_wal()');
    batch('b', ROWS.b);
    middle = stats('SELECT pg_walfile_name(pg_current_wal_lsn())');
    // Batch b's WAL reaches past the byte the corruption test flips.
    assert.ok(Number(stats('SELECT file_offset FROM pg_walfile_name_offset(pg_current_wal_lsn())')) > 200_000);
    stats('SELECT pg_switch_wal()');
    batch('c', ROWS.c);
    await archived(middle);
  });
  after(async () => {
    await host?.close();
    await sshd?.stop();
    cleanUp();
    fs.rmSync(root, { recursive: true, force: true });
    for (const line of log.text.split('\n').filter((l) => /test: |prod drill:|recovered to/.test(l))) console.log(line);
  });

  it('passes, reports RTO and RPO, leaves no scratch server or directory, and prod untouched', async () => {
    const before = prodState();
    const r = await drill();
    assert.equal(r.error, undefined, r.failure);
    assert.equal(prodState(), before, "prod's database or containers changed");
    assert.equal(sql('SELECT count(*) FROM events'), String(ROWS.a + ROWS.b + ROWS.c));
    assert.equal(sql('SELECT note FROM markers WHERE id = 1'), 'drill-marker');
    assert.deepEqual(scratchLeft(), []);
    const rto = Number(r.outputs['rto-seconds']);
    const rpo = Number(r.outputs['rpo-seconds']);
    assert.ok(rto > 0 && rpo >= 0 && rpo < 600, `RTO ${rto}, RPO ${rpo}`);
    const rec = latest(await new HostLog(host, config['state-dir'], 'prod').read(), 'drill');
    assert.equal(rec?.status, 'passed');
    assert.match(r.summary, /public\.events \| 5000 \| 14000/);
    assert.match(r.summary, /SELECT note FROM markers WHERE id = 1` \| drill-marker/);
    log.info(`test: drill passed: RTO ${rto} s, RPO ${rpo} s (${ROWS.a + ROWS.b + ROWS.c} rows)`);
  });

  it('fails naming a completed WAL segment with one flipped byte, and cleans up', async () => {
    const file = path.join(walDir(config), middle);
    const saved = fs.readFileSync(file);
    const spoilt = Buffer.from(saved);
    spoilt[150_000] ^= 0xff;
    fs.writeFileSync(file, spoilt);
    let r;
    try {
      r = await drill();
    } finally {
      fs.writeFileSync(file, saved);
    }
    assert.match(r.failure, new RegExp(`WAL segment ${middle} is corrupt`));
    assert.ok(!r.failure.includes('\n'));
    assert.deepEqual(scratchLeft(), []);
    log.info(`test: ${r.failure}`);
  });

  it('fails naming a WAL segment missing from the archive, and cleans up', async () => {
    const file = path.join(walDir(config), middle);
    const aside = path.join(root, middle);
    fs.renameSync(file, aside);
    let r;
    try {
      r = await drill();
    } finally {
      fs.renameSync(aside, file);
    }
    assert.match(r.failure, new RegExp(`WAL segment ${middle} is missing from the archive`));
    assert.deepEqual(scratchLeft(), []);
    log.info(`test: ${r.failure}`);
  });
});
