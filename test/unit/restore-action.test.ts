/**
 * The restore action's input: `latest` or a UTC time, checked before the host is touched; anything
 * else, a time in the future, or a config without the WAL archive is refused in one line.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import type { RestoreInputs, RestoreOutputs } from '../../action-types';
import { parseTarget, restoreAction } from '../../src/actions/restore/restore';
import { parseConfig } from '../../src/domain/config';
import { ActionIO } from '../../src/infra/actions-io';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { withDefaults } from '../harness/action-defaults';

const ENV = { checkout: '/srv/x', project: 'x', 'compose-files': ['a.yml'], 'env-file': '.env', url: 'https://x.example', database: { name: 'x', user: 'x' } };
const envs = `environments:\n  prod: ${JSON.stringify(ENV)}\n  dev: ${JSON.stringify({ ...ENV, checkout: '/srv/y', project: 'y', database: { name: 'y', user: 'y' } })}\n`;

function prepare(inputs: Record<string, string>, wal: boolean, offsite = '') {
  for (const k of Object.keys(process.env)) if (k.startsWith('INPUT_')) delete process.env[k];
  for (const [k, v] of Object.entries(withDefaults('restore', inputs))) process.env[`INPUT_${k.replace(/ /g, '_').toUpperCase()}`] = v;
  const log = new MemoryLogger();
  const config = parseConfig(`${envs}backup: { dir: /var/backups/t, wal: { enabled: ${wal} }${offsite} }\n`, 't');
  return restoreAction.prepare({
    io: new ActionIO<RestoreInputs, RestoreOutputs>(log),
    log,
    config,
    run: { url: '', actor: '', sha: '', workflow: '' },
    lockTimeoutSeconds: 60,
  });
}

function refused(f: () => unknown, message: RegExp): void {
  assert.throws(f, (e: Error) => {
    assert.ok(e instanceof ConfigurationError, String(e));
    assert.ok(!e.message.includes('\n'), 'more than one line');
    assert.match(e.message, message);
    return true;
  });
}

afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('INPUT_')) delete process.env[k];
});

describe('restore: the target input', () => {
  const now = new Date('2026-12-04T19:00:00Z');
  it('takes latest and a UTC time, to the millisecond', () => {
    assert.equal(parseTarget('latest', now), 'latest');
    assert.equal((parseTarget('2026-12-04T18:58:00Z', now) as Date).toISOString(), '2026-12-04T18:58:00.000Z');
    assert.equal((parseTarget('2026-12-04T18:58:00.25Z', now) as Date).toISOString(), '2026-12-04T18:58:00.250Z');
  });
  it('refuses a local time, an offset, a date alone, an impossible date and words', () => {
    for (const bad of ['2026-12-04T18:58:00', '2026-12-04T18:58:00+01:00', '2026-12-04', '2026-02-30T10:00:00Z', 'yesterday', 'LATEST', '']) {
      refused(() => parseTarget(bad, now), /must be latest or a UTC time such as 2026-12-04T18:58:00Z/);
    }
  });
  it('refuses a time in the future', () => {
    refused(() => parseTarget('2026-12-04T19:00:01Z', now), /is in the future .*use latest/);
  });
  it('prepare refuses without backup.wal, and reads the target with it', async () => {
    assert.throws(() => prepare({ target: 'latest' }, false), /backup.wal is not enabled/);
    assert.deepEqual(await prepare({ target: 'latest' }, true), { target: 'latest', drill: false });
    assert.throws(() => prepare({ target: 'soon' }, true), ConfigurationError);
  });
});

describe('restore: source offsite is checked before anything connects', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-restore-input-'));
  const keygen = (name: string) => {
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'test', '-f', path.join(dir, name)], { stdio: 'ignore' });
    return fs.readFileSync(path.join(dir, name), 'utf8');
  };
  const age = (name: string) => {
    execFileSync('age-keygen', ['-o', path.join(dir, name)], { stdio: 'ignore' });
    const identity = fs.readFileSync(path.join(dir, name), 'utf8');
    return { identity, recipient: execFileSync('age-keygen', ['-y'], { input: identity, encoding: 'utf8' }).trim() };
  };
  const admin = keygen('admin');
  const login = keygen('login');
  const sealedTo = age('sealed');
  const other = age('other');
  const offsite = `, offsite: { host: backup.example, user: b, path: /srv/b, known-hosts: ['backup.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl'], recipients: [${sealedTo.recipient}] }`;
  const inputs = (extra: Record<string, string>) => ({ target: 'latest', 'ssh-key': login, source: 'offsite', ...extra });

  it('takes the admin key and the identity of a recipient', async () => {
    const plan = await prepare(inputs({ 'offsite-admin-key': admin, 'offsite-identity': sealedTo.identity }), true, offsite);
    assert.equal(plan.offsite?.identity, sealedTo.identity);
    assert.equal(plan.offsite?.adminKey.trim(), admin.trim());
  });
  it('refuses offsite without backup.offsite, without the identity or the admin key, a wrong identity, the login key as admin key, and an unknown source', () => {
    refused(() => prepare(inputs({ 'offsite-admin-key': admin, 'offsite-identity': sealedTo.identity }), true), /no backup\.offsite/);
    refused(() => prepare(inputs({ 'offsite-admin-key': admin }), true, offsite), /offsite-identity is required/);
    refused(() => prepare(inputs({ 'offsite-admin-key': admin, 'offsite-identity': 'not a key' }), true, offsite), /not an age private key/);
    refused(
      () => prepare(inputs({ 'offsite-admin-key': admin, 'offsite-identity': other.identity }), true, offsite),
      /not the private key of any of backup\.offsite\.recipients/,
    );
    refused(() => prepare(inputs({ 'offsite-identity': sealedTo.identity }), true, offsite), /offsite-admin-key is required/);
    refused(() => prepare(inputs({ 'offsite-admin-key': login, 'offsite-identity': sealedTo.identity }), true, offsite), /same key as ssh-key/);
    refused(() => prepare({ target: 'latest', source: 'elsewhere' }, true, offsite), /input source "elsewhere" must be local or offsite/);
  });
  it('local (the default) needs neither', async () => {
    assert.deepEqual(await prepare({ target: 'latest' }, true, offsite), { target: 'latest', drill: false });
  });
});
