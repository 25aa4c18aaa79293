/**
 * The disaster test (issue 21), on real parts: prod's PostgreSQL 15 in a container with its data on
 * a named volume and the real pg_receivewal streaming from it, the VPS a real sshd, the backup host
 * a second one behind rrsync, age and rsync real. A writer commits rows at about 20 a second while
 * the scheduled `wal: push` (the backup action) sends the completed WAL off the host; the receiver
 * is killed mid-segment while the writer goes on. Then prod's database container, its volume, the
 * local base backups and the whole WAL directory are destroyed, and a fresh, empty database is
 * restored from the backup host alone. Every row committed before the end of the last segment that
 * left the host is back, no row the writer did not commit is, and the rows lost are only those after
 * that segment: the figures are printed (rows and seconds lost, and what the killed receiver cost).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backupAction } from '../../src/actions/backup/backup';
import type { Config } from '../../src/domain/config';
import { Environment, type EnvContext } from '../../src/domain/environment';
import { withOffsiteArchive } from '../../src/domain/offsite-restore';
import { restoreToPoint } from '../../src/domain/pitr';
import { baseBackup, ensureWal, walDir } from '../../src/domain/wal';
import { copyBaseOffsite } from '../../src/domain/wal-offsite';
import { ignored, MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { runOnFake } from '../support/run-action';
import { offsiteConfig, offsiteSkipReason, startOffsiteHosts, type OffsiteHosts } from './offsite-support';
import { runWalDb, startWalDb, type WalDb } from './wal-support';

const RUN = randomBytes(4).toString('hex');
const PROJECT = `twinstack-test-${RUN}-disaster`;
const PROD_DB: WalDb = {
  image: `twinstack-test-disaster-db:${RUN}`,
  network: `twinstack-test-${RUN}-disaster`,
  db: `${PROJECT}-db-1`,
  project: PROJECT,
  volume: `${PROJECT}_db-data`,
};
const DB = PROD_DB.db;
const RECEIVER = `${PROJECT}-twinstack-wal`;
const PASSWORD = `wal-secret-${RUN}`;
const PUSHES = 3;

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 180_000 }).trim();
const attempt = (...args: string[]) => spawnSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
const psql = ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-A', '-t', '-h', '/var/run/postgresql', '-d', 'app'];
const sql = (query: string, user = 'owner') => docker('exec', DB, ...psql, '-U', user, '-c', query);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = offsiteSkipReason();

/** A row as the writer saw it committed: its id and clock_timestamp() in the inserting transaction (seconds). */
interface Committed {
  id: number;
  at: number;
}

/**
 * prod's app, as far as this test is concerned: one session (psql fed on its stdin) inserting a row
 * every 50 ms, in autocommit. psql prints a statement's result once the server reports it done, that
 * is after its commit; so `rows` holds only committed rows, in commit order.
 */
class Writer {
  readonly rows: Committed[] = [];
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly timer: NodeJS.Timeout;
  private readonly exited: Promise<number | null>;
  private pending = '';
  private stderr = '';

  constructor() {
    this.proc = spawn('docker', ['exec', '-i', DB, ...psql, '-U', 'owner']);
    this.proc.stdout.setEncoding('utf8').on('data', (chunk: string) => this.read(chunk));
    this.proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.proc.on('close', resolve));
    const insert = 'INSERT INTO ticks DEFAULT VALUES RETURNING id, extract(epoch FROM at);\n';
    this.timer = setInterval(() => this.proc.stdin.write(insert), 50);
  }

  private read(chunk: string): void {
    const lines = (this.pending + chunk).split('\n');
    this.pending = lines.pop() ?? '';
    for (const line of lines.filter(Boolean)) {
      const [id, at] = line.split('|').map(Number);
      this.rows.push({ id, at });
    }
  }

  /** The newest committed id (0: none yet). */
  get last(): number {
    return this.rows.at(-1)?.id ?? 0;
  }

  /** Stops inserting; psql runs what it was sent, prints it, and exits. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.proc.stdin.end();
    assert.equal(await this.exited, 0, `the writer failed: ${this.stderr}`);
  }
}

let hosts: OffsiteHosts;
let host: SshHost;
let root: string;
let config: Config;
let ctx: EnvContext;
const log = new MemoryLogger();

const pushInputs = () => ({
  environment: 'prod',
  'ssh-key': hosts.vps.privateKey,
  wal: 'push',
  'offsite-ssh-key': hosts.writeKey,
  'offsite-admin-key': hosts.backupHost.privateKey,
});

/**
 * Ends the segment being written and waits until the receiver has completed it; returns its name.
 * The writer's ~20 small rows a second would take hours to fill a 16 MB segment, and a push sends
 * completed segments only: the switch stands for the traffic (or archive_timeout) that completes
 * one on a busy prod. pg_switch_wal returns the end of the segment it completed.
 */
async function completeSegment(): Promise<{ segment: string; endedAt: number }> {
  // clock_timestamp() after the switch: a row whose insert read a later clock committed after it.
  const [segment, endedAt] = sql("SELECT pg_walfile_name(pg_switch_wal()) || '|' || extract(epoch FROM clock_timestamp())", 'postgres').split('|');
  const file = path.join(walDir(config), segment);
  for (let i = 0; i < 120 && !fs.existsSync(file); i++) await sleep(250);
  assert.ok(fs.existsSync(file), `${segment} was not archived`);
  return { segment, endedAt: Number(endedAt) };
}

/** The scheduled push: the backup action with `wal: push`. Returns the newest segment off the host. */
async function push(): Promise<string> {
  const run = await runOnFake(backupAction, { config, host }, pushInputs());
  assert.equal(run.error, undefined, run.failure);
  const newest = run.outputs['wal-offsite-segment'];
  assert.ok(fs.existsSync(path.join(hosts.store, 'prod', 'wal', `${newest}.age`)), `${newest} is not on the backup host`);
  return newest;
}

const volumeExists = () => attempt('volume', 'inspect', PROD_DB.volume ?? '').status === 0;

function cleanUp(): void {
  for (const c of [RECEIVER, DB, `${PROJECT}-twinstack-pitr`]) attempt('rm', '-f', '-v', c);
  attempt('volume', 'rm', '-f', PROD_DB.volume ?? '');
  attempt('network', 'rm', PROD_DB.network);
  attempt('rmi', '-f', PROD_DB.image);
}

describe('the disaster: prod and every local backup lost while it writes, restored from the backup host alone', { skip }, () => {
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-disaster-'));
    try {
      await startWalDb(PROD_DB);
      hosts = await startOffsiteHosts(root);
      host = await connect(hosts.vps, {}, log);
    } catch (e) {
      cleanUp();
      throw e;
    }
    config = offsiteConfig(root, PROJECT, hosts.offsite);
    ctx = { host, config, env: new Environment('prod', config), log };
    await ensureWal(ctx, PASSWORD);
    sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('rev_a')");
    sql('CREATE TABLE ticks (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())');
    const base = await baseBackup(ctx, PASSWORD);
    const copy = await copyBaseOffsite({ ...ctx, keys: { write: hosts.writeKey, admin: hosts.backupHost.privateKey } }, base);
    assert.equal(copy.status, 'copied', copy.status === 'failed' ? copy.error : '');
  });
  after(async () => {
    await host?.close();
    await Promise.all([hosts?.vps.stop(), hosts?.backupHost.stop()]);
    cleanUp();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('loses no row committed before the last segment that left the host, and only rows after it', async () => {
    const writer = new Writer();
    let lastPushed = '';
    /** The newest row known committed before the last pushed segment was ended, and when that segment ended. */
    let beforeSwitch = 0;
    let endedAt = 0;
    let atKill = 0;
    try {
      for (let i = 0; i < PUSHES; i++) {
        await sleep(2_000);
        beforeSwitch = writer.last;
        const ended = await completeSegment();
        endedAt = ended.endedAt;
        lastPushed = await push();
        assert.equal(lastPushed, ended.segment, 'the push did not send the segment just completed');
      }
      // Rows into the next segment, which the receiver holds as a .partial (never pushed) until it dies.
      await sleep(2_000);
      assert.ok(
        fs.readdirSync(walDir(config)).some((f) => f.endsWith('.partial')),
        'the receiver has no segment in progress',
      );
      docker('kill', RECEIVER);
      atKill = writer.last;
      await sleep(3_000);
      await writer.stop();
    } catch (e) {
      await writer.stop().catch(ignored(log, 'stopping the writer'));
      throw e;
    }

    // The disaster: the host's database, its volume, and every local backup and WAL file are gone.
    docker('rm', '-f', DB, RECEIVER);
    docker('volume', 'rm', PROD_DB.volume ?? '');
    fs.rmSync(config.backup.dir, { recursive: true, force: true });
    assert.notEqual(attempt('inspect', DB).status, 0, 'the database container is still there');
    assert.ok(!volumeExists(), 'the data volume is still there');
    assert.ok(!fs.existsSync(walDir(config)) && !fs.existsSync(config.backup.dir), 'a local backup or WAL file is still there');

    // The new host: a fresh, empty database from the same image, restored from the backup host alone.
    await runWalDb(PROD_DB);
    assert.equal(sql("SELECT count(*) FROM pg_tables WHERE tablename = 'ticks'"), '0', 'the new database is not empty');
    const started = Date.now();
    const offsite = { adminKey: hosts.backupHost.privateKey, identity: hosts.identity };
    await withOffsiteArchive(ctx, { offsite, target: 'latest' }, (source) => restoreToPoint(ctx, { target: 'latest', source }));
    const restoreSeconds = (Date.now() - started) / 1000;

    const recovered = sql("SELECT string_agg(id || '|' || extract(epoch FROM at), ',' ORDER BY id) FROM ticks")
      .split(',')
      .filter(Boolean)
      .map((l) => l.split('|').map(Number));
    const written = new Map(writer.rows.map((r) => [r.id, r.at]));
    const recoveredIds = new Set(recovered.map(([id]) => id));
    const lost = writer.rows.filter((r) => !recoveredIds.has(r.id));
    const newest = recovered.at(-1) ?? [0, 0];

    assert.deepEqual(
      recovered.filter(([id]) => !written.has(id)),
      [],
      'rows the writer never committed',
    );
    assert.deepEqual(
      lost.filter((r) => r.id <= beforeSwitch).map((r) => r.id),
      [],
      `rows committed before the end of ${lastPushed}, the last segment off the host, are lost`,
    );
    assert.ok(
      lost.every((r) => r.id > newest[0]),
      'a row is missing in the middle of what was recovered',
    );
    assert.ok(newest[1] <= endedAt, `row ${newest[0]}, committed after ${lastPushed} was ended, was recovered: WAL that never left the host came back`);
    assert.ok(lost.length > 0, 'nothing was lost: the rows after the last pushed segment cannot have left the host');

    const lastAt = writer.rows.at(-1)?.at ?? 0;
    const inPartial = lost.filter((r) => r.id <= atKill).length;
    const rate = writer.rows.length / (lastAt - (writer.rows[0]?.at ?? 0));
    console.log(`# disaster: ${writer.rows.length} rows written (${rate.toFixed(1)}/s), ${recovered.length} recovered, ${lost.length} lost`);
    console.log(`# disaster: ${(lastAt - newest[1]).toFixed(1)} s of writes lost (last commit minus the newest recovered row)`);
    console.log(
      `# disaster: the receiver killed mid-segment cost the ${inPartial} rows of the segment it was writing (never completed, never left the host); ${lost.length - inPartial} more were committed after the kill`,
    );
    console.log(
      `# disaster: the newest recovered row committed ${(endedAt - newest[1]).toFixed(2)} s before ${lastPushed}, the last segment off the host, ended`,
    );
    console.log(`# disaster: restore from the backup host alone in ${restoreSeconds.toFixed(1)} s`);
  });
});
