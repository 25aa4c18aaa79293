/**
 * Restore from the off-host copies alone (restore with source: offsite), on real parts: prod's
 * PostgreSQL in a real container with a real WAL receiver, the VPS a real sshd, the backup host a
 * second sshd whose authorized_keys confines the VPS's key with rrsync (the README's line), age
 * and rsync real. A base backup and the WAL go off the host; then the receiver, the local base
 * backups and the whole WAL directory are destroyed. The drill passes from the backup host alone
 * and leaves nothing behind (no scratch server, staging directory or identity file), a real
 * restore puts into prod exactly the rows the pushed WAL holds (read from prod's database), and one
 * flipped byte in an off-host copy, or one off-host segment deleted, each fail naming that file
 * before prod is touched.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { restoreAction } from '../../src/actions/restore/restore';
import { takeBackup } from '../../src/domain/backup';
import type { Config } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { HostLog, latest } from '../../src/domain/host-log';
import { withOffsiteArchive, type OffsiteSource } from '../../src/domain/offsite-restore';
import { restoreToPoint, scratchRoot } from '../../src/domain/pitr';
import { baseBackup, baseBackupRoot, ensureWal, walDir } from '../../src/domain/wal';
import { copyWalOffsite } from '../../src/domain/wal-offsite-retention';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import type { TestSshd } from '../harness/sshd';
import { runOnFake } from '../support/run-action';
import { offsiteConfig, offsiteSkipReason, startOffsiteHosts } from './offsite-support';
import { startWalDb, walSuite } from './wal-support';

const { PROJECT, IMAGE, NETWORK, DB, RECEIVER, SCRATCH, PASSWORD, docker, attempt, psql } = walSuite('offrestore');
const ROWS = { a: 3_000, b: 6_000, c: 1_000 };

const sql = (query: string, database = 'app', user = 'owner') => psql(query, { database, user });
const stats = (query: string) => sql(query, 'postgres', 'postgres');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = offsiteSkipReason();

let vps: TestSshd;
let backupHost: TestSshd;
let host: SshHost;
let root: string;
let store: string;
let writeKey: string;
let identity: string;
let config: Config;
let ctx: EnvContext;
/** Completed segments: one holding batch b, and the last one pushed. */
let middle: string;
let last: string;
const log = new MemoryLogger();
/** The runner's temporary directory for this file alone (other runs on the machine make identity directories too). */
let runnerTmp: string;
const savedTmpdir = process.env.TMPDIR;

const batch = (name: string, n: number) => sql(`INSERT INTO events (batch, note) SELECT '${name}', 'event ' || g FROM generate_series(1, ${n}) g`);

/** Ends the current segment and waits until pg_receivewal has written it completely; returns its name. */
async function completeSegment(): Promise<string> {
  const segment = stats('SELECT pg_walfile_name(pg_current_wal_lsn())');
  stats('SELECT pg_switch_wal()');
  for (let i = 0; i < 120 && !fs.existsSync(path.join(walDir(config), segment)); i++) await sleep(500);
  assert.ok(fs.existsSync(path.join(walDir(config), segment)), `${segment} was not archived`);
  return segment;
}

/** What a restore from the backup host must leave nowhere: scratch servers, staging directories, identity files on the runner. */
function leftBehind(): string[] {
  const scratch = fs.existsSync(scratchRoot(config)) ? fs.readdirSync(scratchRoot(config)) : [];
  const identities = fs.readdirSync(runnerTmp).filter((f) => f.startsWith('twinstack-age-'));
  return [...scratch, ...identities, ...(attempt('inspect', SCRATCH).status === 0 ? [`container ${SCRATCH}`] : [])];
}

function cleanUp(): void {
  for (const c of [SCRATCH, RECEIVER, DB]) attempt('rm', '-f', '-v', c);
  attempt('network', 'rm', NETWORK);
  attempt('rmi', '-f', IMAGE);
}

const offsite = (): OffsiteSource => ({ adminKey: backupHost.privateKey, identity });
const drill = () =>
  runOnFake(
    restoreAction,
    { host, config },
    { target: 'latest', drill: 'true', source: 'offsite', 'offsite-admin-key': backupHost.privateKey, 'offsite-identity': identity },
  );

/** Runs `fn` with one off-host file changed by `spoil`, and puts it back afterwards. */
async function withSpoilt<T>(file: string, spoil: (f: string) => void, fn: () => Promise<T>): Promise<T> {
  const saved = fs.readFileSync(file);
  spoil(file);
  try {
    return await fn();
  } finally {
    fs.writeFileSync(file, saved);
  }
}

describe('restore from the off-host copies alone', { skip }, () => {
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-offrestore-'));
    runnerTmp = path.join(root, 'runner-tmp');
    fs.mkdirSync(runnerTmp);
    process.env.TMPDIR = runnerTmp;
    try {
      await startWalDb({ image: IMAGE, network: NETWORK, db: DB, project: PROJECT });
      const hosts = await startOffsiteHosts(root);
      ({ vps, backupHost, store, writeKey, identity } = hosts);
      host = await connect(vps, {}, log);
      config = offsiteConfig(root, PROJECT, hosts.offsite);
    } catch (e) {
      cleanUp();
      throw e;
    }
    ctx = { host, config, env: new Environment('prod', config), log };
    await ensureWal(ctx, PASSWORD);
    sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('rev_a')");
    sql('CREATE TABLE events (id bigserial PRIMARY KEY, batch text NOT NULL, note text)');
    batch('a', ROWS.a);
    const dump = await takeBackup({ ...ctx, ctx: {} });
    assert.equal(dump.rowCounts?.['public.events'], ROWS.a);
    const base = await baseBackup(ctx, PASSWORD);
    await completeSegment();
    batch('b', ROWS.b);
    middle = await completeSegment();
    batch('c', ROWS.c);
    last = await completeSegment();
    const copies = await copyWalOffsite({ host, config, env: ctx.env, keys: { write: writeKey, admin: backupHost.privateKey }, log }, base);
    assert.equal(copies.base.status, 'copied', copies.base.status === 'failed' ? copies.base.error : '');
    assert.equal(copies.wal.copy?.status, 'copied');
    assert.ok(fs.existsSync(path.join(store, 'prod', 'wal', `${last}.age`)), `${last} did not go off the host`);
    // The disaster: the receiver, the local base backups and the whole WAL directory are gone.
    docker('rm', '-f', RECEIVER);
    fs.rmSync(baseBackupRoot(config), { recursive: true, force: true });
    fs.rmSync(walDir(config), { recursive: true, force: true });
  });
  after(async () => {
    if (savedTmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmpdir;
    await host?.close();
    await Promise.all([vps?.stop(), backupHost?.stop()]);
    cleanUp();
    fs.rmSync(root, { recursive: true, force: true });
    for (const line of log.text.split('\n').filter((l) => /test: |prod drill:|recovered to|fetching base/.test(l))) console.log(line);
  });

  it('the drill with source offsite passes and records it, leaving nothing behind', async () => {
    const r = await drill();
    assert.equal(r.error, undefined, r.failure);
    const rec = latest(await new HostLog(host, config['state-dir'], 'prod').read(), 'drill');
    assert.equal(rec?.status, 'passed');
    assert.ok(!fs.existsSync(walDir(config)) && !fs.existsSync(baseBackupRoot(config)), 'the local archive came back');
    assert.deepEqual(leftBehind(), []);
    log.info(`test: offsite drill passed: RTO ${r.outputs['rto-seconds']} s, RPO ${r.outputs['rpo-seconds']} s`);
  });

  it('fails naming an off-host WAL segment with one flipped byte, before anything is recovered', async () => {
    const file = path.join(store, 'prod', 'wal', `${middle}.age`);
    const flip = (f: string) => {
      const b = fs.readFileSync(f);
      b[Math.floor(b.length / 2)] ^= 0x01;
      fs.writeFileSync(f, b);
    };
    const r = await withSpoilt(file, flip, drill);
    assert.ok(r.failure.includes(`${middle}.age`), r.failure);
    assert.ok(!r.failure.includes('\n'));
    assert.deepEqual(leftBehind(), []);
    log.info(`test: ${r.failure}`);
  });

  it('fails naming a WAL segment missing from the off-host archive', async () => {
    const file = path.join(store, 'prod', 'wal', `${middle}.age`);
    const r = await withSpoilt(file, (f) => fs.rmSync(f), drill);
    assert.match(r.failure, new RegExp(`WAL segment ${middle} is missing`));
    assert.deepEqual(leftBehind(), []);
    log.info(`test: ${r.failure}`);
  });

  it('a restore from the off-host copies swaps their rows into prod; a damaged copy leaves prod as it was', async () => {
    batch('d', 500);
    const before = sql('SELECT count(*) FROM events');
    const file = path.join(store, 'prod', 'base');
    const stamp = fs.readdirSync(file)[0];
    const tar = path.join(file, stamp, 'base.tar.age');
    const flip = (f: string) => {
      const b = fs.readFileSync(f);
      b[4096] ^= 0x01;
      fs.writeFileSync(f, b);
    };
    await withSpoilt(tar, flip, () =>
      assert.rejects(
        withOffsiteArchive(ctx, { offsite: offsite(), target: 'latest' }, (source) => restoreToPoint(ctx, { target: 'latest', source })),
        (e: Error) => e.message.includes(tar) && !e.message.includes('\n'),
      ),
    );
    assert.equal(sql('SELECT count(*) FROM events'), before, 'prod changed after a failed restore');
    await withOffsiteArchive(ctx, { offsite: offsite(), target: 'latest' }, (source) => restoreToPoint(ctx, { target: 'latest', source }));
    assert.equal(
      sql("SELECT string_agg(batch || ':' || n, ',' ORDER BY batch) FROM (SELECT batch, count(*) n FROM events GROUP BY batch) x"),
      `a:${ROWS.a},b:${ROWS.b},c:${ROWS.c}`,
    );
    assert.deepEqual(leftBehind(), []);
  });
});
