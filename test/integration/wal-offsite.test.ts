/**
 * The WAL archive and the base backups off the host, on real parts: the VPS is one sshd on
 * loopback, the backup host a second one whose authorized_keys confines the VPS's key with
 * `rrsync -wo -no-del -no-overwrite` (the README's line); age and rsync are real. A base backup's
 * files land sealed in <path>/prod/base/<stamp>/, completed WAL segments in <path>/prod/wal/, each
 * push only the segments after the marker; the retention on the VPS keeps what has not gone off it.
 * The files are stand-ins (what pg_basebackup and pg_receivewal write is proven in wal.test.ts):
 * every assertion is on the files on the two hosts.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { writeOnlyAuthorizedKey } from '../../src/domain/offsite';
import { baseBackupRoot, walDir, type BaseBackup } from '../../src/domain/wal';
import { copyBaseOffsite, PUSHED_MARKER, pushWalOffsite } from '../../src/domain/wal-offsite';
import { pruneBaseBackups } from '../../src/domain/wal-retention';
import { copyWalOffsite } from '../../src/domain/wal-offsite-retention';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startSshd, type TestSshd } from '../harness/sshd';

let vps: TestSshd;
let backupHost: TestSshd;
let host: SshHost;
let dir: string;
let store: string;
let writeKey: string;
let ageKey: string;
let config: Config;
let prod: Environment;
const log = new MemoryLogger();

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const segment = (n: number) => `00000001000000000000000${n.toString(16).toUpperCase()}`;
const decrypt = (file: string) => {
  const r = spawnSync('age', ['-d', '-i', ageKey, file]);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout;
};
/** Each file's sha256 and mtime: what must not change on the backup host. */
const snapshot = (d: string) =>
  Object.fromEntries(fs.readdirSync(d).map((f) => [f, `${sha256(fs.readFileSync(path.join(d, f)))} ${fs.statSync(path.join(d, f)).mtimeMs}`]));

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-wal-offsite-'));
  fs.mkdirSync(path.join(dir, 'keys'), { mode: 0o700 });
  const keyFile = path.join(dir, 'keys', 'offsite');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'twinstack-test', '-f', keyFile], { stdio: 'ignore' });
  writeKey = fs.readFileSync(keyFile, 'utf8');
  ageKey = path.join(dir, 'keys', 'age.txt');
  execFileSync('age-keygen', ['-o', ageKey], { stdio: 'ignore' });
  store = path.join(dir, 'store');
  fs.mkdirSync(store);
  [vps, backupHost] = await Promise.all([
    startSshd(),
    startSshd({ authorizedKeys: [writeOnlyAuthorizedKey(store, fs.readFileSync(`${keyFile}.pub`, 'utf8'))] }),
  ]);
  host = await connect(vps);
  const offsite = {
    host: '127.0.0.1',
    port: backupHost.port,
    user: backupHost.user,
    path: store,
    'known-hosts': backupHost.knownHosts.trim().split('\n'),
    recipients: [execFileSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).trim()],
    keep: 1,
  };
  config = parseConfig(
    `state-dir: ${dir}/state
backup: { dir: ${dir}/backups, offsite: ${JSON.stringify(offsite)}, wal: { enabled: true, keep-base: 1 } }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: u, port: 5432, via: host}}
  dev: {checkout: /srv/d, project: d, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: u, port: 1, via: host}}
`,
    'test',
  );
  prod = new Environment('prod', config);
  fs.mkdirSync(walDir(config), { recursive: true, mode: 0o700 });
});
after(async () => {
  await host?.close();
  await Promise.all([vps?.stop(), backupHost?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A stand-in base backup: a base.tar whose backup_label starts at `start`, and a backup_manifest. */
function fakeBase(stamp: string, start: string): BaseBackup {
  const d = path.join(baseBackupRoot(config), stamp);
  fs.mkdirSync(path.join(d, 'src'), { recursive: true });
  fs.writeFileSync(
    path.join(d, 'src', 'backup_label'),
    `START WAL LOCATION: 0/${parseInt(start.slice(16), 16).toString(16).toUpperCase()}000028 (file ${start})\n`,
  );
  fs.writeFileSync(path.join(d, 'src', 'PG_VERSION'), randomBytes(4096));
  execFileSync('tar', ['-cf', path.join(d, 'base.tar'), '-C', path.join(d, 'src'), 'backup_label', 'PG_VERSION']);
  fs.rmSync(path.join(d, 'src'), { recursive: true });
  fs.writeFileSync(path.join(d, 'backup_manifest'), JSON.stringify({ 'WAL-Ranges': [{ Timeline: 1, 'Start-LSN': '0/1000028' }] }));
  const files = Object.fromEntries(fs.readdirSync(d).map((f) => [f, fs.statSync(path.join(d, f)).size]));
  return { dir: d, stamp, files, seconds: 0 };
}

function fakeSegments(...numbers: number[]): void {
  for (const n of numbers) fs.writeFileSync(path.join(walDir(config), segment(n)), randomBytes(64 * 1024));
}

const options = () => ({ host, config, env: prod, keys: { write: writeKey, admin: backupHost.privateKey }, log });

describe('the WAL archive and the base backups off the host', () => {
  it("seals a base backup's files and pushes them to <path>/prod/base/<stamp>/, checked there", async () => {
    const base = fakeBase('20260101T000000Z', segment(2));
    const copy = await copyBaseOffsite(options(), base);
    assert.equal(copy.status, 'copied', copy.status === 'failed' ? copy.error : '');
    const remote = path.join(store, 'prod', 'base', base.stamp);
    assert.deepEqual(fs.readdirSync(remote).sort(), ['backup_manifest.age', 'base.tar.age', 'upload.json']);
    for (const f of ['base.tar', 'backup_manifest'])
      assert.equal(sha256(decrypt(path.join(remote, `${f}.age`))), sha256(fs.readFileSync(path.join(base.dir, f))), `${f} decrypts to what the VPS has`);
    assert.equal(copy.status === 'copied' && copy.arrival, 'checked');
    assert.deepEqual(
      fs.readdirSync(baseBackupRoot(config)).filter((f) => f.startsWith('.offsite')),
      [],
      'the staging directory was left on the VPS',
    );
  });

  it('pushes the completed segments to <path>/prod/wal/, never a .partial or the .pgpass, and marks the last one', async () => {
    fakeSegments(1, 2, 3);
    fs.writeFileSync(path.join(walDir(config), `${segment(4)}.partial`), 'receiving');
    fs.writeFileSync(path.join(walDir(config), '.pgpass'), '*:*:*:twinstack_wal:secret\n', { mode: 0o600 });
    const pushed = await pushWalOffsite(options());
    assert.deepEqual(pushed.segments, [segment(1), segment(2), segment(3)]);
    const remote = path.join(store, 'prod', 'wal');
    assert.deepEqual(fs.readdirSync(remote).sort(), [...[1, 2, 3].map((n) => `${segment(n)}.age`), `upload-${segment(3)}.json`]);
    for (const n of [1, 2, 3])
      assert.equal(sha256(decrypt(path.join(remote, `${segment(n)}.age`))), sha256(fs.readFileSync(path.join(walDir(config), segment(n)))));
    assert.equal(fs.readFileSync(path.join(walDir(config), PUSHED_MARKER), 'utf8').trim(), segment(3));
  });

  it('the next push sends only the segments after the marker, and leaves the ones there untouched', async () => {
    const remote = path.join(store, 'prod', 'wal');
    const before = snapshot(remote);
    fakeSegments(4, 5);
    const pushed = await pushWalOffsite(options());
    assert.deepEqual(pushed.segments, [segment(4), segment(5)]);
    const now = snapshot(remote);
    for (const [f, v] of Object.entries(before)) assert.equal(now[f], v, `${f} changed on the backup host`);
    assert.deepEqual(
      Object.keys(now)
        .filter((f) => !(f in before))
        .sort(),
      [`${segment(4)}.age`, `${segment(5)}.age`, `upload-${segment(5)}.json`],
    );
    assert.equal(fs.readFileSync(path.join(walDir(config), PUSHED_MARKER), 'utf8').trim(), segment(5));
    const again = await pushWalOffsite(options());
    assert.deepEqual(again.segments, []);
    assert.deepEqual(snapshot(remote), now);
  });

  it('the retention on the VPS deletes no segment that has not gone off the host', async () => {
    fakeSegments(6, 7, 8);
    // Pushed up to 5; the newest base backup starts at 8: 6 and 7 are older than it but still only here.
    fakeBase('20260102T000000Z', segment(8));
    const r = await pruneBaseBackups({ host, config, env: prod, log });
    assert.deepEqual(fs.readdirSync(baseBackupRoot(config)), ['20260102T000000Z']);
    assert.deepEqual(r.walRemoved.sort(), [1, 2, 3, 4].map(segment));
    const left = fs.readdirSync(walDir(config)).sort();
    assert.deepEqual(left, [PUSHED_MARKER, '.pgpass', ...[5, 6, 7, 8].map(segment), `${segment(4)}.partial`].sort());
  });

  it('after a new base backup arrives, the runner keeps the newest backup.offsite.keep there and removes the WAL older than the oldest kept one needs', async () => {
    const remote = path.join(store, 'prod', 'wal');
    assert.deepEqual(fs.readdirSync(path.join(store, 'prod', 'base')), ['20260101T000000Z']);
    // Starts at 7; 6, 7 and 8 are not off the host yet (pushed up to 5).
    const base = fakeBase('20260103T000000Z', segment(7));
    const copies = await copyWalOffsite(options(), base);
    assert.equal(copies.base.status, 'copied', copies.base.status === 'failed' ? copies.base.error : '');
    const record = JSON.parse(fs.readFileSync(path.join(store, 'prod', 'base', base.stamp, 'upload.json'), 'utf8')) as { meta?: { walStart?: string } };
    assert.equal(record.meta?.walStart, segment(7), 'the record says in the clear where the base backup starts');
    assert.deepEqual(fs.readdirSync(path.join(store, 'prod', 'base')), [base.stamp], 'backup.offsite.keep is 1');
    // 1 to 5 (and their pushes' records) were there before the base backup arrived and are older than 7: gone.
    // 6 is older too, but arrived after that record (the push after the base backup): kept until the next base backup.
    assert.deepEqual(fs.readdirSync(remote).sort(), [...[6, 7, 8].map((n) => `${segment(n)}.age`), `upload-${segment(8)}.json`]);
    assert.deepEqual(
      copies.retention?.walRemoved.sort(),
      [...[1, 2, 3, 4, 5].map((n) => `${segment(n)}.age`), `upload-${segment(3)}.json`, `upload-${segment(5)}.json`].sort(),
    );
  });
});
