/**
 * WAL off the host between base backups (the backup action's `wal: push`), on real parts: prod's
 * PostgreSQL 15 in a container with the real pg_receivewal streaming from it, the VPS one sshd on
 * loopback, the backup host a second one whose authorized_keys confines the VPS's key with
 * `rrsync -wo -no-del -no-overwrite`; age and rsync are real. Rows written and a WAL switch make a
 * completed segment; a push puts it, sealed, on the backup host, where only the private key reads it
 * back byte for byte; a second push sends nothing; the `.partial` being received never leaves the VPS.
 * (The off-host retention after a base backup: wal-offsite.test.ts.) Every assertion reads the two hosts' files.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backupAction } from '../../src/actions/backup/backup';
import { runMonitor } from '../../src/actions/monitor/monitor';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { writeOnlyAuthorizedKey } from '../../src/domain/offsite';
import { ensureWal, receiverName, walDir } from '../../src/domain/wal';
import { PUSHED_MARKER } from '../../src/domain/wal-offsite';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';
import { runOnFake } from '../support/run-action';
import { startWalDb, walSuite } from './wal-support';

const { PROJECT, IMAGE, NETWORK, DB, PASSWORD, attempt, psql } = walSuite('walpush');
const SEGMENT_NAME = /^[0-9A-F]{24}$/;

const sql = (query: string) => psql(query, { user: 'postgres' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let skip: string | false = sshdAvailable() ?? false;
if (!skip && attempt('image', 'inspect', 'twinstack-fixture-base:latest').status !== 0)
  skip = 'the fixture base image is missing (bash test/e2e/support/base-image.sh)';

let vps: TestSshd;
let backupHost: TestSshd;
let host: SshHost;
let root: string;
let store: string;
let writeKey: string;
let ageKey: string;
let config: Config;
let prod: Environment;
const log = new MemoryLogger();

const remoteWal = () => path.join(store, 'prod', 'wal');
const remoteNames = () => (fs.existsSync(remoteWal()) ? fs.readdirSync(remoteWal()).sort() : []);
/** Each file's size and mtime on the backup host: what a push that sends nothing leaves as it was. */
const snapshot = () => remoteNames().map((f) => `${f} ${fs.statSync(path.join(remoteWal(), f)).size} ${fs.statSync(path.join(remoteWal(), f)).mtimeMs}`);
const decrypt = (file: string) => {
  const r = spawnSync('age', ['-d', '-i', ageKey, file], { maxBuffer: 64 * 1024 * 1024 });
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
};
const inputs = () => ({ environment: 'prod', 'ssh-key': vps.privateKey, wal: 'push', 'offsite-ssh-key': writeKey, 'offsite-admin-key': backupHost.privateKey });

/** Rows written, then a WAL switch: returns the segment that held them once the receiver has completed it. */
async function writeAndSwitch(rows: number): Promise<string> {
  sql(`INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, ${rows}) g`);
  const segment = sql('SELECT pg_walfile_name(pg_current_wal_lsn())');
  sql('SELECT pg_switch_wal()');
  const file = path.join(walDir(config), segment);
  for (let i = 0; i < 60 && !fs.existsSync(file); i++) await sleep(500);
  assert.ok(fs.existsSync(file), `${segment} was not archived`);
  return segment;
}

function configFor(offsite: object): Config {
  const text = fs
    .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
    .replace('project: makapix-prod', `project: ${PROJECT}`)
    .replace('{ service: db, name: makapix, user: owner,', '{ service: db, name: app, user: owner,')
    .replace('url: https://makapix.club', 'url: http://127.0.0.1:9')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${root}/state`);
  const backup = `backup:\n  dir: ${root}/backups\n  offsite: ${JSON.stringify(offsite)}\n  wal: { enabled: true, admin-user: postgres }\n`;
  return parseConfig(`${text}\nmonitor: { requests: 1, request-timeout-seconds: 1 }\n${backup}`, 'twinstack.yml');
}

function cleanUp(): void {
  for (const c of [receiverName(new Environment('prod', config)), DB]) attempt('rm', '-f', '-v', c);
  attempt('network', 'rm', NETWORK);
  attempt('rmi', '-f', IMAGE);
}

describe('WAL off the host between base backups (wal: push)', { skip }, () => {
  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-walpush-'));
    fs.mkdirSync(path.join(root, 'keys'), { mode: 0o700 });
    const keyFile = path.join(root, 'keys', 'offsite');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'twinstack-test', '-f', keyFile], { stdio: 'ignore' });
    writeKey = fs.readFileSync(keyFile, 'utf8');
    ageKey = path.join(root, 'keys', 'age.txt');
    execFileSync('age-keygen', ['-o', ageKey], { stdio: 'ignore' });
    store = path.join(root, 'store');
    fs.mkdirSync(store);
    [vps, backupHost] = await Promise.all([
      startSshd(),
      startSshd({ authorizedKeys: [writeOnlyAuthorizedKey(store, fs.readFileSync(`${keyFile}.pub`, 'utf8'))] }),
    ]);
    const recipient = execFileSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).trim();
    const o = { host: '127.0.0.1', port: backupHost.port, user: backupHost.user, path: store };
    config = configFor({ ...o, 'known-hosts': backupHost.knownHosts.trim().split('\n'), recipients: [recipient] });
    prod = new Environment('prod', config);
    try {
      await startWalDb({ image: IMAGE, network: NETWORK, db: DB, project: PROJECT });
      host = await connect(vps, {}, log);
      await ensureWal({ host, config, env: prod, log }, PASSWORD);
      sql('CREATE TABLE orders (id serial PRIMARY KEY, note text)');
    } catch (e) {
      cleanUp();
      throw e;
    }
  });
  after(async () => {
    await host?.close();
    await Promise.all([vps?.stop(), backupHost?.stop()]);
    cleanUp();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('pushes the completed segments, sealed: only the private key reads them back, byte for byte; the .partial stays on the VPS', async () => {
    const first = await writeAndSwitch(500);
    const second = await writeAndSwitch(500);
    // Rows in the next segment, which the receiver then holds as a .partial.
    sql("INSERT INTO orders (note) SELECT 'in progress ' || g FROM generate_series(1, 50) g");
    const partial = () => fs.readdirSync(walDir(config)).find((f) => f.endsWith('.partial'));
    for (let i = 0; i < 60 && !partial(); i++) await sleep(500);
    const receiving = partial();
    assert.ok(receiving, 'the receiver has no segment in progress');
    const run = await runOnFake(backupAction, { config, host }, inputs());
    assert.equal(run.error, undefined, run.failure);
    const local = fs.readdirSync(walDir(config));
    const completed = local.filter((f) => SEGMENT_NAME.test(f)).sort();
    assert.ok(completed.includes(first) && completed.includes(second));
    assert.ok(local.includes(receiving), `${receiving} was completed meanwhile`);
    const sealed = remoteNames().filter((f) => f.endsWith('.age'));
    assert.deepEqual(
      sealed,
      completed.map((s) => `${s}.age`),
      'every completed segment, and nothing else, is on the backup host',
    );
    assert.ok(!remoteNames().some((f) => f.includes('partial')), 'a .partial left the VPS');
    for (const s of completed) {
      const onBackupHost = fs.readFileSync(path.join(remoteWal(), `${s}.age`));
      assert.equal(onBackupHost.subarray(0, 21).toString(), 'age-encryption.org/v1', `${s}.age is not an age file`);
      assert.ok(!onBackupHost.includes(Buffer.from('order 250')), `${s}.age holds a row in the clear`);
      assert.ok(decrypt(path.join(remoteWal(), `${s}.age`)).equals(fs.readFileSync(path.join(walDir(config), s))), `${s} decrypts to other bytes`);
    }
    assert.equal(fs.readFileSync(path.join(walDir(config), PUSHED_MARKER), 'utf8').trim(), completed.at(-1));
    assert.equal(run.outputs['wal-offsite-segment'], completed.at(-1));
    // No dump and no base backup: wal: push only moves WAL.
    assert.deepEqual(
      fs.readdirSync(path.join(root, 'backups', 'prod')).filter((f) => /^b\d|^base$/.test(f)),
      [],
    );
  });

  it('a second push with nothing new sends nothing: the backup host is as it was', async () => {
    const before = snapshot();
    const run = await runOnFake(backupAction, { config, host }, inputs());
    assert.equal(run.error, undefined, run.failure);
    assert.deepEqual(snapshot(), before);
    assert.equal(run.outputs['wal-pushed'], '0');
  });

  it('a push cut short before its marker moved: the segments already there are not sent again, and the next ones are', async () => {
    const marker = path.join(walDir(config), PUSHED_MARKER);
    const pushed = fs.readFileSync(marker, 'utf8').trim();
    // As if the last push had reached the backup host but died before writing the marker.
    const older = fs
      .readdirSync(walDir(config))
      .filter((f) => SEGMENT_NAME.test(f) && f < pushed)
      .sort()
      .at(-1);
    assert.ok(older);
    fs.writeFileSync(marker, `${older}\n`);
    const before = snapshot();
    const next = await writeAndSwitch(100);
    const run = await runOnFake(backupAction, { config, host }, inputs());
    assert.equal(run.error, undefined, run.failure);
    const now = snapshot();
    for (const line of before) assert.ok(now.includes(line), `${line.split(' ')[0]} changed on the backup host`);
    assert.deepEqual(
      remoteNames().filter((f) => !before.some((l) => l.startsWith(`${f} `))),
      [`${next}.age`, `upload-${next}.json`],
    );
    assert.equal(fs.readFileSync(marker, 'utf8').trim(), next);
  });

  it('monitor reads the off-host recovery point on the VPS alone: the marked segment and when the receiver completed it', async () => {
    const marked = fs.readFileSync(path.join(walDir(config), PUSHED_MARKER), 'utf8').trim();
    const report = await runMonitor(host, config, log);
    const point = report.metrics.walOffsite;
    assert.equal(point?.segment, marked);
    const mtime = fs.statSync(path.join(walDir(config), marked)).mtime;
    assert.equal(point?.time, new Date(Math.floor(mtime.getTime() / 1000) * 1000).toISOString());
  });
});
