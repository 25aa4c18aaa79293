/**
 * Off-host copies on real parts: the VPS is one sshd on loopback, the backup host a second one whose
 * authorized_keys confines the VPS's key with rrsync (the README's line), PostgreSQL is real, and
 * so are age and rsync. Every assertion is on the files as they are on the backup host.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { backupAction } from '../../src/actions/backup/backup';
import { takeBackup, usableBackup, type BackupManifest } from '../../src/domain/backup';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { connectWithAdminKey, copyOffsite, pruneOffsite, writeOnlyAuthorizedKey } from '../../src/domain/offsite';
import { OperationFailed } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { knownHostsFile, sshTransport, type SshTransport } from '../../src/infra/rsync';
import { argv, sh } from '../../src/infra/shell';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { freePort } from '../harness/ports';
import { startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';
import { runOnFake } from '../support/run-action';

let vps: TestSshd;
let backupHost: TestSshd;
let pg: TestPostgres;
let host: SshHost;
let dir: string;
/** The directory rrsync confines the VPS's key to, on the backup host. */
let store: string;
/** Another directory, behind a key confined by `rrsync -wo` alone. */
let laxStore: string;
let writeKey: string;
let laxKeyFile: string;
let writeKeyFile: string;
let ageKey: string;
let otherAgeKey: string;
let config: Config;
let prod: Environment;

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const fileSha = (file: string) => sha256(fs.readFileSync(file));
/** Backup ids are to the second: each test's backups start in a second of their own. */
const nextSecond = () => new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 20));

function keygen(file: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'twinstack-test', '-f', file], { stdio: 'ignore' });
  return fs.readFileSync(`${file}.pub`, 'utf8').trim();
}

function makeConfig(offsite: Record<string, unknown> = {}): Config {
  const o = {
    host: '127.0.0.1',
    port: backupHost.port,
    user: backupHost.user,
    path: store,
    'known-hosts': backupHost.knownHosts.trim().split('\n'),
    recipients: [execFileSync('age-keygen', ['-y', ageKey], { encoding: 'utf8' }).trim()],
    keep: 2,
    ...offsite,
  };
  return parseConfig(
    `state-dir: ${dir}/state
backup: { dir: ${dir}/backups, keep: 5, offsite: ${JSON.stringify(o)} }
environments:
  prod: {checkout: /srv/p, project: p, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:1, database: {name: makapix, user: ${pg.user}, port: ${pg.port}, via: host}}
  dev: {checkout: /srv/d, project: d, compose-files: [a.yml], env-file: .env, url: http://127.0.0.1:2, database: {name: makapix_dev, user: ${pg.user}, port: 1, via: host}}
`,
    'test',
  );
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-offsite-'));
  fs.chmodSync(dir, 0o777);
  fs.mkdirSync(path.join(dir, 'keys'), { mode: 0o700 });
  writeKeyFile = path.join(dir, 'keys', 'offsite');
  const writePub = keygen(writeKeyFile);
  writeKey = fs.readFileSync(writeKeyFile, 'utf8');
  laxKeyFile = path.join(dir, 'keys', 'lax');
  const laxPub = keygen(laxKeyFile);
  ageKey = path.join(dir, 'keys', 'age.txt');
  otherAgeKey = path.join(dir, 'keys', 'other-age.txt');
  execFileSync('age-keygen', ['-o', ageKey], { stdio: 'ignore' });
  execFileSync('age-keygen', ['-o', otherAgeKey], { stdio: 'ignore' });
  store = path.join(dir, 'store', 'makapix');
  laxStore = path.join(dir, 'store', 'lax');
  fs.mkdirSync(store, { recursive: true });
  fs.mkdirSync(laxStore, { recursive: true });
  // The VPS's sessions keep their temp directories in one of this suite's own, so the leftover check
  // sees this suite's pushes only (the other off-host suites push beside it, each from its own VPS).
  fs.mkdirSync(path.join(dir, 'vps-tmp'));
  [vps, pg, backupHost] = await Promise.all([
    startSshd({ setEnv: { TMPDIR: path.join(dir, 'vps-tmp') } }),
    startPostgres(),
    startSshd({ authorizedKeys: [writeOnlyAuthorizedKey(store, writePub), `command="rrsync -wo ${laxStore}",restrict ${laxPub}`] }),
  ]);
  host = await connect(vps);
  pg.psql('create database makapix');
  pg.psql(
    `create table users (id int primary key, email text); insert into users select g, 'u' || g || '@example.com' from generate_series(1, 2000) g;`,
    'makapix',
  );
  config = makeConfig();
  prod = new Environment('prod', config);
});
after(async () => {
  await host?.close();
  await Promise.all([vps?.stop(), backupHost?.stop(), pg?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

const inputs = () => ({ environment: 'prod', 'ssh-key': vps.privateKey, 'offsite-ssh-key': writeKey, 'offsite-admin-key': backupHost.privateKey });
const localDir = (id: string) => path.join(dir, 'backups', 'prod', id);
const remoteDir = (id: string) => path.join(store, 'prod', id);
const snapshot = (d: string) =>
  Object.fromEntries(
    fs
      .readdirSync(d)
      .sort()
      .map((f) => [f, { sha256: fileSha(path.join(d, f)), mtimeMs: fs.statSync(path.join(d, f)).mtimeMs }]),
  );
/** Leftovers of a copy on the VPS: the key's temp directory, the staging directory. */
const leftovers = () => [
  ...fs.readdirSync(path.join(dir, 'vps-tmp')).filter((f) => f.startsWith('twinstack-offsite.')),
  ...fs.readdirSync(path.join(dir, 'backups', 'prod')).filter((f) => f.startsWith('.offsite')),
];

describe('off-host copies', () => {
  let copied: BackupManifest;

  it('seals every file of a verified backup on the VPS, copies it to the backup host, and checks it there', async () => {
    await nextSecond();
    const t = Date.now();
    const run = await runOnFake(backupAction, { config, host }, inputs());
    assert.equal(run.error, undefined, run.failure);
    const seconds = (Date.now() - t) / 1000;
    assert.equal(run.outputs.offsite, 'copied');
    const id = run.outputs['backup-id'];
    copied = JSON.parse(fs.readFileSync(path.join(localDir(id), 'manifest.json'), 'utf8')) as BackupManifest;
    assert.equal(run.outputs['offsite-path'], `${backupHost.user}@127.0.0.1 port ${backupHost.port}:${remoteDir(id)}`);

    // On the backup host: exactly the sealed files and the upload record, each hash as computed on the VPS.
    const upload = JSON.parse(fs.readFileSync(path.join(remoteDir(id), 'upload.json'), 'utf8')) as {
      files: Record<string, { sha256: string; bytes: number; plain: { sha256: string } }>;
    };
    assert.deepEqual(fs.readdirSync(remoteDir(id)).sort(), ['db.dump.age', 'globals.sql.age', 'manifest.json.age', 'upload.json']);
    const local = JSON.parse(fs.readFileSync(path.join(localDir(id), 'offsite.json'), 'utf8')) as { status: string; arrival: string; writeOnly: boolean };
    assert.deepEqual([local.status, local.arrival, local.writeOnly], ['copied', 'checked', true]);
    for (const [name, f] of Object.entries(upload.files)) {
      assert.equal(fileSha(path.join(remoteDir(id), name)), f.sha256, `${name} arrived as sealed`);
      assert.equal(fs.statSync(path.join(remoteDir(id), name)).size, f.bytes);
      assert.match(
        fs
          .readFileSync(path.join(remoteDir(id), name))
          .subarray(0, 22)
          .toString(),
        /^age-encryption\.org\/v1/,
      );
    }
    // The private key reads them back to the bytes the manifest vouches for.
    const decrypt = (name: string, key = ageKey) => spawnSync('age', ['-d', '-i', key, path.join(remoteDir(id), name)]);
    for (const name of ['db.dump', 'globals.sql']) {
      const plain = decrypt(`${name}.age`);
      assert.equal(plain.status, 0, plain.stderr.toString());
      assert.equal(sha256(plain.stdout), copied.files[name].sha256, `${name} decrypts to the verified bytes`);
    }
    assert.equal(sha256(decrypt('manifest.json.age').stdout), fileSha(path.join(localDir(id), 'manifest.json')));
    // Without it, nothing reads: age refuses another key, and no plaintext is in the sealed files.
    const refused = decrypt('db.dump.age', otherAgeKey);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr.toString(), /no identity matched/);
    const plainDump = fs.readFileSync(path.join(localDir(id), 'db.dump'));
    const sealedDump = fs.readFileSync(path.join(remoteDir(id), 'db.dump.age'));
    assert.equal(sealedDump.indexOf(plainDump.subarray(0, 5)), -1, 'the dump header PGDMP is not in the sealed file');
    for (let at = 0; at + 32 <= plainDump.length; at += 1024) assert.equal(sealedDump.indexOf(plainDump.subarray(at, at + 32)), -1);
    assert.equal(fs.readFileSync(path.join(remoteDir(id), 'globals.sql.age')).indexOf('CREATE ROLE'), -1);
    // Nothing of the copy stays on the VPS: no key file, no staging directory.
    assert.deepEqual(leftovers(), []);
    assert.match(run.summary, /Encrypted copy on the backup host/);
    assert.match(run.summary, /checked on arrival/);
    process.stdout.write(
      `# offsite: dump ${copied.files['db.dump'].bytes} bytes (sealed ${upload.files['db.dump.age'].bytes}), backup and copy in ${seconds.toFixed(1)} s\n`,
    );
  });

  describe("from the VPS, with the VPS's own key", () => {
    let transport: SshTransport;
    let tmp: string;
    const target = () => `${backupHost.user}@127.0.0.1`;
    const attempt = (cmd: string) => host.run(cmd, { check: false, quiet: true, timeoutSeconds: 60 });

    before(async () => {
      tmp = (await host.run('mktemp -d', { quiet: true })).stdout.trim();
      transport = { keyFile: `${tmp}/key`, knownHostsFile: `${tmp}/known_hosts`, port: backupHost.port };
      await host.writeFile(transport.keyFile, writeKey, 0o600);
      await host.writeFile(transport.knownHostsFile, knownHostsFile(backupHost.knownHosts), 0o600);
      await host.run(sh`mkdir -p ${tmp}/empty ${tmp}/forged/prod/${copied.id} && printf forged > ${tmp}/forged/prod/${copied.id}/db.dump.age`, { quiet: true });
    });
    after(() => host.run(sh`rm -rf ${tmp}`, { quiet: true }));

    it('can neither delete, overwrite nor read an existing copy: every file keeps its sha256 and mtime', async () => {
      const before = snapshot(remoteDir(copied.id));
      const e = sshTransport(transport);
      const tries: Array<[string, string]> = [
        ['rsync --delete', argv('rsync', '-r', '--delete', '-e', e, `${tmp}/empty/`, `${target()}:prod/${copied.id}/`)],
        ['rsync --delete-before, whole tree', argv('rsync', '-r', '--delete-before', '-e', e, `${tmp}/empty/`, `${target()}:prod/`)],
        ['rsync --remove-source-files, pulled back', argv('rsync', '--remove-source-files', '-e', e, `${target()}:prod/${copied.id}/db.dump.age`, `${tmp}/`)],
        ['rsync read', argv('rsync', '-e', e, `${target()}:prod/${copied.id}/globals.sql.age`, `${tmp}/`)],
        ['ssh rm', `${e} ${target()} ${sh`rm -rf prod/${copied.id}`}`],
        ['ssh sh', `${e} ${target()} ${sh`sh -c 'truncate -s0 prod/*/db.dump.age'`}`],
        ['overwrite', argv('rsync', '-r', '-e', e, `${tmp}/forged/prod`, `${target()}:`)],
        ['overwrite --inplace --ignore-times', argv('rsync', '-r', '--inplace', '--ignore-times', '-e', e, `${tmp}/forged/prod`, `${target()}:`)],
        ['overwrite --append', argv('rsync', '-r', '--append', '-e', e, `${tmp}/forged/prod`, `${target()}:`)],
        ['overwrite through --backup', argv('rsync', '-r', '--backup', '--suffix=.age', '-e', e, `${tmp}/forged/prod`, `${target()}:`)],
      ];
      const outcomes: string[] = [];
      for (const [what, cmd] of tries) {
        const r = await attempt(cmd);
        outcomes.push(`${what}: exit ${r.exitCode}`);
        // The transfers that rrsync lets through (a plain push) must still have changed nothing.
        if (!what.startsWith('overwrite') || what.includes('--backup')) assert.notEqual(r.exitCode, 0, `${what} was refused`);
      }
      assert.deepEqual(snapshot(remoteDir(copied.id)), before, outcomes.join('; '));
      assert.ok(!fs.existsSync(path.join(tmp, 'db.dump.age')) && !fs.existsSync(path.join(tmp, 'globals.sql.age')), 'nothing was read back');
    });

    it('why the line says -no-del -no-overwrite: behind rrsync -wo alone, the same --delete removes a copy', async () => {
      fs.mkdirSync(path.join(laxStore, 'prod', 'b20250101T000000Z-prod'), { recursive: true });
      fs.writeFileSync(path.join(laxStore, 'prod', 'b20250101T000000Z-prod', 'db.dump.age'), 'sealed');
      await host.writeFile(`${tmp}/lax`, fs.readFileSync(laxKeyFile, 'utf8'), 0o600);
      const e = sshTransport({ ...transport, keyFile: `${tmp}/lax` });
      const r = await attempt(argv('rsync', '-r', '--delete', '-e', e, `${tmp}/empty/`, `${target()}:prod/`));
      assert.equal(r.exitCode, 0, r.stderr);
      assert.deepEqual(fs.readdirSync(path.join(laxStore, 'prod')), []);
    });
  });

  describe('a copy that fails', () => {
    const downConfig = async (over: Record<string, unknown> = {}) => {
      const port = await freePort();
      return makeConfig({ port, 'known-hosts': backupHost.knownHosts.replaceAll(`]:${backupHost.port} `, `]:${port} `), ...over });
    };

    it('leaves the local backup verified and intact when the backup host is down', async () => {
      const c = await downConfig();
      await nextSecond();
      const m = await takeBackup({ host, config: c, env: prod, ctx: {}, log: new MemoryLogger() });
      const before = snapshot(localDir(m.id));
      const copy = await copyOffsite({
        host,
        config: c,
        env: prod,
        manifest: m,
        keys: { write: writeKey, admin: backupHost.privateKey },
        log: new MemoryLogger(),
      });
      assert.equal(copy.status, 'failed');
      assert.ok(copy.status === 'failed' && copy.stage === 'push');
      assert.match(copy.status === 'failed' ? copy.error : '', /^the VPS cannot reach the backup host 127\.0\.0\.1:\d+: .*Connection refused/);
      const after = snapshot(localDir(m.id));
      delete after['offsite.json'];
      assert.deepEqual(after, before);
      assert.equal((await usableBackup({ host, config: c, env: prod, id: m.id, log: new MemoryLogger() })).status, 'verified');
      assert.equal((JSON.parse(fs.readFileSync(path.join(localDir(m.id), 'offsite.json'), 'utf8')) as { status: string }).status, 'failed');
      assert.deepEqual(leftovers(), []);
    });

    it('refuses a backup host whose key is not the pinned one, and copies nothing', async () => {
      // The VPS's own host keys, pinned for the backup host's address: the real backup host shows another.
      const c = makeConfig({ 'known-hosts': vps.knownHosts.replaceAll(`]:${vps.port} `, `]:${backupHost.port} `) });
      await nextSecond();
      const m = await takeBackup({ host, config: c, env: prod, ctx: {}, log: new MemoryLogger() });
      const copy = await copyOffsite({
        host,
        config: c,
        env: prod,
        manifest: m,
        keys: { write: writeKey, admin: backupHost.privateKey },
        log: new MemoryLogger(),
      });
      assert.equal(copy.status, 'failed');
      assert.match(copy.status === 'failed' ? copy.error : '', /showed a host key that is not in backup\.offsite\.known-hosts/);
      assert.ok(!fs.existsSync(remoteDir(m.id)));
      assert.equal((await usableBackup({ host, config: c, env: prod, id: m.id, log: new MemoryLogger() })).status, 'verified');
    });

    it('with required: false, the step succeeds and says so; with required: true, it fails in one line naming the cause', async () => {
      await nextSecond();
      const lax = await runOnFake(backupAction, { config: await downConfig({ required: false }), host }, inputs());
      assert.equal(lax.error, undefined, lax.failure);
      assert.equal(lax.outputs.offsite, 'failed');
      assert.match(lax.summary, /✅ \*\*Backup `b\S+` verified\*\*/);
      assert.match(lax.summary, /The off-host copy failed\*\* at push: the VPS cannot reach the backup host/);
      assert.match(lax.summary, /local backup is verified and untouched/);
      assert.match(lax.summary, /not required \(backup\.offsite\.required: false\), so this step only warns/);
      assert.ok(lax.log.lines.some((l) => l.startsWith('warning:') && /off-host copy failed/.test(l)));

      await nextSecond();
      const strict = await runOnFake(backupAction, { config: await downConfig(), host }, inputs());
      assert.ok(strict.error instanceof OperationFailed);
      assert.doesNotMatch(strict.failure, /\n/);
      assert.match(
        strict.failure,
        /^backup: backup (b\S+-prod) of prod is verified on the VPS, but its off-host copy failed: the VPS cannot reach the backup host 127\.0\.0\.1:\d+: .*Connection refused/,
      );
      const id = /backup (b\S+-prod)/.exec(strict.failure)?.[1] ?? '';
      assert.equal((await usableBackup({ host, config, env: prod, id, log: new MemoryLogger() })).status, 'verified');
      assert.match(strict.summary, /required \(backup\.offsite\.required: true\), so this step fails/);
    });
  });

  it('retention from the runner with the admin key removes only the oldest copies beyond keep', async () => {
    // dev's tree on the backup host: four complete copies, a broken push older than them, one still arriving.
    const base = path.join(store, 'dev');
    const ids = ['b20250101T000000Z-dev', 'b20250102T000000Z-dev', 'b20250103T000000Z-dev', 'b20250104T000000Z-dev'];
    for (const id of ids) {
      fs.mkdirSync(path.join(base, id), { recursive: true });
      fs.writeFileSync(path.join(base, id, 'db.dump.age'), id);
      fs.writeFileSync(path.join(base, id, 'upload.json'), '{}');
    }
    fs.mkdirSync(path.join(base, 'b20241231T000000Z-dev'));
    fs.writeFileSync(path.join(base, 'b20241231T000000Z-dev', 'db.dump.age'), 'broken');
    fs.mkdirSync(path.join(base, 'b20991231T000000Z-dev'));
    const prodBefore = fs.readdirSync(path.join(store, 'prod')).sort();
    const admin = await connectWithAdminKey(config.backup.offsite!, backupHost.privateKey, new MemoryLogger());
    try {
      const removed = await pruneOffsite(admin, config.backup.offsite!, 'dev', new MemoryLogger());
      assert.deepEqual(removed.sort(), ['b20241231T000000Z-dev', 'b20250101T000000Z-dev', 'b20250102T000000Z-dev']);
    } finally {
      await admin.close();
    }
    assert.deepEqual(fs.readdirSync(base).sort(), ['b20250103T000000Z-dev', 'b20250104T000000Z-dev', 'b20991231T000000Z-dev']);
    assert.equal(fs.readFileSync(path.join(base, 'b20250104T000000Z-dev', 'db.dump.age'), 'utf8'), 'b20250104T000000Z-dev');
    assert.deepEqual(fs.readdirSync(path.join(store, 'prod')).sort(), prodBefore, "prod's copies are not dev's to prune");
  });

  it('keeps the newest backup.offsite.keep copies of prod after every backup', async () => {
    for (let i = 0; i < 2; i++) {
      await nextSecond();
      const run = await runOnFake(backupAction, { config, host }, inputs());
      assert.equal(run.error, undefined, run.failure);
    }
    const left = fs.readdirSync(path.join(store, 'prod')).sort();
    assert.equal(left.length, 2, left.join(', '));
    assert.ok(!left.includes(copied.id), 'the oldest copy went');
  });
});
