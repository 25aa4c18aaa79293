/**
 * backup.offsite and the off-host keys, checked before anything runs on the host: every bad value
 * is one line saying what to change. Also the command lines the VPS runs for a copy, as strings.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { offsiteKeysInput, type OffsiteInputs } from '../../src/actions/common';
import { parseConfig, type Config } from '../../src/domain/config';
import { offsiteLocation, pushFailure, writeOnlyAuthorizedKey } from '../../src/domain/offsite';
import { ageEncrypt } from '../../src/infra/age';
import { ActionIO } from '../../src/infra/actions-io';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { remoteSpec, rsyncAddOnly } from '../../src/infra/rsync';

const makapix = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');
const RECIPIENT = 'age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
const HOST_KEY = 'AAAAC3NzaC1lZDI1NTE5AAAAIHtRQP8nZ8VGtfOFAZuY6D8z2rVmYwK1Bb+s27Yr41ZQ';
const good = {
  host: 'backups.example.net',
  user: 'twinstack',
  path: '/srv/backups/makapix',
  'known-hosts': `backups.example.net ssh-ed25519 ${HOST_KEY}`,
  recipients: [RECIPIENT],
};
const withOffsite = (o: Record<string, unknown>) => `${makapix}\nbackup:\n  offsite: ${JSON.stringify(o)}\n`;

function rejects(o: Record<string, unknown>, message: RegExp): void {
  assert.throws(
    () => parseConfig(withOffsite(o), '.github/twinstack.yml'),
    (e: Error) => {
      assert.ok(e instanceof ConfigurationError, String(e));
      assert.ok(!e.message.includes('\n'), 'the error is more than one line');
      assert.match(e.message, message);
      return true;
    },
  );
}

describe('backup.offsite in the config', () => {
  it('reads a good section with its defaults: port 22, required, keep 14', () => {
    const c = parseConfig(withOffsite(good), 'c');
    assert.deepEqual(
      { port: c.backup.offsite?.port, required: c.backup.offsite?.required, keep: c.backup.offsite?.keep },
      { port: 22, required: true, keep: 14 },
    );
    assert.equal(parseConfig(makapix, 'c').backup.offsite, undefined, 'off unless configured');
    assert.equal(
      offsiteLocation(c.backup.offsite!, 'prod', 'b20260101T000000Z-prod'),
      'twinstack@backups.example.net:/srv/backups/makapix/prod/b20260101T000000Z-prod',
    );
  });

  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a missing host', { ...good, host: undefined }, /: backup\.offsite\.host: Required$/],
    ['a host that is an option', { ...good, host: '-oProxyCommand=x' }, /backup\.offsite\.host: must be a host name or an IP address$/],
    ['a port out of range', { ...good, port: 70000 }, /backup\.offsite\.port: Number must be less than or equal to 65535$/],
    ['a relative path', { ...good, path: 'srv/backups' }, /backup\.offsite\.path: must be an absolute path/],
    ['a path climbing out', { ...good, path: '/srv/../etc' }, /backup\.offsite\.path: must not contain "\.\."$/],
    ['a user name with a space', { ...good, user: 'back up' }, /backup\.offsite\.user: must be a user name on the backup host$/],
    ['no recipients', { ...good, recipients: [] }, /backup\.offsite\.recipients: needs at least one age public key/],
    [
      'a private age key as recipient',
      { ...good, recipients: ['AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ'] },
      /backup\.offsite\.recipients\[0\]: is an age private key: put its public key here \(age-keygen -y key\.txt\)/,
    ],
    ['a recipient that is no key', { ...good, recipients: ['age1nope'] }, /backup\.offsite\.recipients\[0\]: must be an age public key/],
    [
      'known-hosts that is not a key line',
      { ...good, 'known-hosts': 'backups.example.net' },
      /backup\.offsite\.known-hosts: line 1: expected "host key-type base64-key"/,
    ],
    [
      'known-hosts for another host',
      { ...good, 'known-hosts': `vps.example.net ssh-ed25519 ${HOST_KEY}` },
      /backup\.offsite\.known-hosts: has no key for backups\.example\.net: give that host's line\(s\)/,
    ],
    [
      'known-hosts for the default port when the host listens on another',
      { ...good, port: 2222 },
      /backup\.offsite\.known-hosts: has no key for \[backups\.example\.net\]:2222/,
    ],
    ['required that is not a boolean', { ...good, required: 'yes' }, /backup\.offsite\.required: Expected boolean, received string$/],
    ['keep 0', { ...good, keep: 0 }, /backup\.offsite\.keep: Number must be greater than or equal to 1$/],
    ['a misspelt key', { ...good, recipient: RECIPIENT }, /backup\.offsite: unknown key "recipient"$/],
  ];
  for (const [what, o, message] of bad) it(`refuses ${what}, in one line`, () => rejects(o, message));
});

describe('the off-host keys (secret inputs)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-offsite-keys-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = (name: string, passphrase = '') => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', path.join(dir, name)], { stdio: 'ignore' });
    return fs.readFileSync(path.join(dir, name), 'utf8');
  };
  const [login, write, admin, locked] = [key('login'), key('write'), key('admin'), key('locked', 'a passphrase')];
  const configured = parseConfig(withOffsite(good), 'c');
  const off = parseConfig(makapix, 'c');

  class Inputs extends ActionIO<OffsiteInputs, unknown> {
    constructor(
      private readonly values: Partial<OffsiteInputs>,
      log: MemoryLogger,
    ) {
      super(log);
    }
    override secret(name: keyof OffsiteInputs): string {
      const v = this.values[name] ?? '';
      if (v) this.log.secret(v);
      return v;
    }
  }
  const read = (values: Partial<OffsiteInputs>, config: Config = configured, log = new MemoryLogger()) => offsiteKeysInput(new Inputs(values, log), config);
  const refuses = (values: Partial<OffsiteInputs>, message: RegExp, config: Config = configured) =>
    assert.throws(
      () => read(values, config),
      (e: Error) => e instanceof ConfigurationError && !e.message.includes('\n') && message.test(e.message),
    );

  it('reads three different keys, and masks them as they are read', () => {
    const log = new MemoryLogger();
    const keys = read({ 'ssh-key': login, 'offsite-ssh-key': write, 'offsite-admin-key': admin }, configured, log);
    assert.equal(keys?.write, write);
    assert.equal(keys?.admin, admin);
    const line = write.split('\n')[1];
    assert.ok(!log.redact(`a line with ${line}`).includes(line), 'offsite-ssh-key is masked');
    assert.equal(read({ 'ssh-key': login }, off), undefined, 'no off-host copy, no keys');
  });

  it('refuses each bad combination in one line saying what to change', () => {
    refuses({ 'ssh-key': login }, /^input offsite-ssh-key is required: backup\.offsite sends copies to backups\.example\.net/);
    refuses({ 'ssh-key': login, 'offsite-ssh-key': write }, /^input offsite-ssh-key is given but the config has no backup\.offsite/, off);
    refuses({ 'ssh-key': login, 'offsite-admin-key': admin }, /^input offsite-admin-key is given but the config has no backup\.offsite/, off);
    refuses(
      { 'ssh-key': login, 'offsite-ssh-key': locked },
      /^input offsite-ssh-key is not a usable private key: it is encrypted; give a key without a passphrase/,
    );
    refuses({ 'ssh-key': login, 'offsite-ssh-key': 'not a key' }, /^input offsite-ssh-key is not a usable private key/);
    refuses({ 'ssh-key': login, 'offsite-ssh-key': fs.readFileSync(path.join(dir, 'write.pub'), 'utf8') }, /^input offsite-ssh-key is a public key/);
    refuses({ 'ssh-key': login, 'offsite-ssh-key': login }, /^input offsite-ssh-key is the same key as ssh-key/);
    refuses({ 'ssh-key': login, 'offsite-ssh-key': write, 'offsite-admin-key': write }, /^input offsite-admin-key is the same key as offsite-ssh-key/);
    refuses({ 'ssh-key': login, 'offsite-ssh-key': write, 'offsite-admin-key': login }, /^input offsite-admin-key is the same key as ssh-key/);
  });
});

describe('the command lines of a copy', () => {
  const o = parseConfig(withOffsite({ ...good, port: 2222, 'known-hosts': `[backups.example.net]:2222 ssh-ed25519 ${HOST_KEY}` }), 'c').backup.offsite!;

  it('encrypts to public keys only, with the file names after --', () => {
    assert.equal(ageEncrypt([RECIPIENT], '/b/prod/x/db.dump', '/b/s/db.dump.age'), `age --encrypt -r ${RECIPIENT} -o /b/s/db.dump.age -- /b/prod/x/db.dump`);
    assert.throws(() => ageEncrypt([], 'a', 'b'), /at least one recipient/);
  });

  it('pushes add-only, with the host key pinned and no config read', () => {
    const cmd = rsyncAddOnly({
      sources: ['/b/.offsite-x/prod'],
      destination: remoteSpec('twinstack', 'backups.example.net', ''),
      transport: { keyFile: '/tmp/t/key', knownHostsFile: '/tmp/t/known_hosts', port: 2222 },
    });
    assert.match(cmd, /^rsync --recursive --times --ignore-existing --timeout=120 -e '/);
    assert.doesNotMatch(cmd, /--delete|--remove|--inplace|--append/);
    for (const opt of [
      '-F /dev/null',
      '-p 2222',
      '-i /tmp/t/key',
      'StrictHostKeyChecking=yes',
      'UserKnownHostsFile=/tmp/t/known_hosts',
      'BatchMode=yes',
      'IdentitiesOnly=yes',
    ])
      assert.ok(cmd.includes(opt), opt);
    assert.ok(cmd.endsWith(`-- /b/.offsite-x/prod twinstack@backups.example.net:`));
    assert.equal(remoteSpec('u', '::1', 'p'), 'u@[::1]:p');
  });

  it("writes the backup host's authorized_keys line the README shows", () => {
    const line = writeOnlyAuthorizedKey('/srv/backups/makapix', `ssh-ed25519 ${HOST_KEY} vps`);
    assert.equal(line, `command="rrsync -wo -no-del -no-overwrite /srv/backups/makapix",restrict ssh-ed25519 ${HOST_KEY} vps`);
    const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    assert.ok(readme.includes('command="rrsync -wo -no-del -no-overwrite /srv/backups/makapix",restrict ssh-ed25519 AAAA'), 'the README shows the same line');
  });

  it('says in one line why a push failed, from ssh’s own words', () => {
    const failure = (stderr: string) => pushFailure(o, { exitCode: 255, stderr, timedOut: false });
    const refused =
      'ssh: connect to host backups.example.net port 2222: Connection refused\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: unexplained error (code 255) at io.c(232) [sender=3.2.7]\n';
    assert.equal(
      failure(refused),
      'the VPS cannot reach the backup host backups.example.net:2222: ssh: connect to host backups.example.net port 2222: Connection refused',
    );
    assert.match(failure('Host key verification failed.\nrsync error: ...'), /showed a host key that is not in backup\.offsite\.known-hosts/);
    assert.match(failure('twinstack@backups.example.net: Permission denied (publickey).\n'), /refused offsite-ssh-key for user twinstack/);
    assert.match(pushFailure(o, { exitCode: 124, stderr: '', timedOut: true }), /took longer than backup\.offsite\.timeout-seconds \(7200 s\)/);
  });
});
