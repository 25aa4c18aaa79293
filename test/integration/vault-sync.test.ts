/** vault-sync against a real sshd, a real dev database and two vault directories on the "host". */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { parseConfig, type Config } from '../../src/domain/config';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { checkVaultPaths, vaultSync } from '../../src/resample/vault';
import { connect } from '../harness/connect';
import { startPostgres, type TestPostgres } from '../harness/postgres';
import { startSshd, type TestSshd } from '../harness/sshd';
import { RUN } from './resample-support';

let sshd: TestSshd;
let pg: TestPostgres;
let host: SshHost;
let dir: string;
let prodVault: string;
let devVault: string;
const log = new MemoryLogger();

function config(extra: Record<string, unknown> = {}): Config {
  const env = (name: string, port: number) => ({
    checkout: path.join(dir, name),
    project: `mk${name}`,
    'compose-files': ['docker-compose.yml'],
    'env-file': '.env',
    url: 'http://127.0.0.1:9',
    database: { name: 'makapix_dev', user: pg.user, host: '127.0.0.1', port, via: 'host' },
    vault: name === 'prod' ? prodVault : devVault,
  });
  return parseConfig(
    stringify({ 'state-dir': path.join(dir, 'state'), environments: { prod: env('prod', pg.port + 1), dev: env('dev', pg.port) }, ...extra }),
    'test config',
  );
}

const ctx = (c = config()) => ({ host, config: c, log, run: RUN, lockTimeoutSeconds: 30 });

function put(root: string, rel: string, content: string): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), content);
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-vault-'));
  prodVault = path.join(dir, 'vault-1');
  devVault = path.join(dir, 'vault-dev');
  [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  pg.psql('CREATE DATABASE makapix_dev');
  pg.psql(
    `CREATE TABLE posts (id int PRIMARY KEY, storage_shard text, storage_key text, format text);
     INSERT INTO posts SELECT g, lpad(to_hex(g % 4), 2, '0'), 'art' || g, 'png' FROM generate_series(1, 40) g;
     INSERT INTO posts VALUES (41, '..', 'escape', 'png'), (42, 'ff', 'gone', 'png');`,
    'makapix_dev',
  );
  // Production's vault: every post's file, an upscaled variant for even ids, and files of unsampled posts.
  for (let g = 1; g <= 60; g++) {
    const shard = (g % 4).toString(16).padStart(2, '0');
    put(prodVault, `${shard}/art${g}.png`, `pixels of ${g}`.repeat(g));
    if (g % 2 === 0) put(prodVault, `${shard}/art${g}_upscaled.webp`, `big ${g}`.repeat(10));
  }
  put(dir, 'escape.png', 'outside the vault');
  // Dev's vault: a stale file from an earlier sample, and one changed copy.
  put(devVault, '03/old999.png', 'stale');
  put(devVault, '01/art1.png', 'outdated');
  host = await connect(sshd, {}, log);
});

after(async () => {
  await host?.close();
  await Promise.all([sshd?.stop(), pg?.stop()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('vault-sync', () => {
  it('refuses vaults that are equal, nested, or /', () => {
    assert.throws(() => checkVaultPaths('/mnt/vault', '/mnt/vault/'), ConfigurationError);
    assert.throws(() => checkVaultPaths('/mnt/vault', '/mnt/vault/dev'), /one vault is inside the other/);
    assert.throws(() => checkVaultPaths('/mnt/vault-dev/x', '/mnt/vault-dev'), /inside the other/);
    assert.throws(() => checkVaultPaths('/', '/mnt/vault-dev'), /refuses to run on \//);
    assert.throws(() => checkVaultPaths('/mnt/vault', undefined), /needs environments\.prod\.vault/);
    assert.deepEqual(checkVaultPaths('/mnt/vault-1', '/mnt/vault-10'), { prod: '/mnt/vault-1', dev: '/mnt/vault-10' });
  });

  it('a dry run reports and changes nothing', async () => {
    const r = await vaultSync(ctx(), { dryRun: true });
    assert.equal(r.copied, 40 + 20);
    assert.equal(r.deleted, 1);
    assert.deepEqual(fs.readdirSync(devVault).sort(), ['01', '03']);
  });

  it('copies referenced files and their variants, removes what dev no longer references, reports missing ones', async () => {
    const r = await vaultSync(ctx(), { dryRun: false });
    assert.equal(r.referenced, 41);
    assert.equal(r.copied, 60, 'the 40 artworks and 20 upscaled variants (art1.png changed, so it is copied too)');
    assert.ok(r.bytesCopied > 0);
    assert.equal(r.deleted, 1);
    assert.equal(r.missing, 1);
    assert.deepEqual(r.missingExamples, ['ff/gone.png']);
    assert.equal(r.invalid, 1, 'the path with .. is refused');
    assert.equal(fs.readFileSync(path.join(devVault, '01/art1.png'), 'utf8'), 'pixels of 1');
    assert.ok(fs.existsSync(path.join(devVault, '02/art2_upscaled.webp')));
    assert.ok(!fs.existsSync(path.join(devVault, '01/art41.png')), 'a file of an unsampled post is not copied');
    assert.ok(!fs.existsSync(path.join(devVault, '03/old999.png')), 'the stale file is removed');
    assert.ok(!fs.existsSync(path.join(dir, 'vault-dev', '..', 'escape.png')) || !fs.existsSync(path.join(devVault, 'escape.png')));
    assert.ok(log.text.includes('1 file(s) referenced by dev are missing from the production vault'));
  });

  it('copies nothing on a second run with nothing changed', async () => {
    const r = await vaultSync(ctx(), { dryRun: false });
    assert.equal(r.copied, 0);
    assert.equal(r.bytesCopied, 0);
    assert.equal(r.deleted, 0);
  });

  it('never deletes outside the dev vault, whatever names code in a dev container creates there', async () => {
    // A directory named "x<newline>.." holding "vault-1/art4.png": listed one path a line, it became
    // "../vault-1/art4.png" and deleted production's file. Also: names with a tab, a backslash, a
    // leading dash, and a symlink out of the vault.
    const victim = path.join(prodVault, '00', 'art4.png');
    const prodBefore = fs.readFileSync(victim);
    put(devVault, 'x\n../vault-1/00/art4.png', 'bait');
    put(devVault, 'x\n../vault-1/00/art8_upscaled.webp', 'bait');
    put(devVault, 'tab\tname.png', 'odd');
    put(devVault, '-rf.png', 'dash');
    fs.mkdirSync(path.join(devVault, 'ln'), { recursive: true });
    fs.symlinkSync(path.join(prodVault, '00'), path.join(devVault, 'ln', 'prod00'));
    const prodFiles = () => fs.readdirSync(prodVault, { recursive: true }).map(String).sort();
    const before = prodFiles();
    const r = await vaultSync(ctx(), { dryRun: false });
    assert.deepEqual(prodFiles(), before, 'production vault unchanged');
    assert.deepEqual(fs.readFileSync(victim), prodBefore);
    assert.ok(fs.existsSync(path.join(prodVault, '00', 'art8_upscaled.webp')));
    // Unreferenced files inside the dev vault go, odd names and all; the symlink's target stays.
    assert.ok(!fs.existsSync(path.join(devVault, 'x\n..', 'vault-1', '00', 'art4.png')));
    assert.ok(!fs.existsSync(path.join(devVault, 'tab\tname.png')));
    assert.ok(!fs.existsSync(path.join(devVault, '-rf.png')));
    assert.ok(r.deleted >= 4, `deleted ${r.deleted}`);
  });

  it('takes its file list from the configured query and variant patterns', async () => {
    const c = config({ 'vault-sync': { query: "SELECT storage_shard || '/' || storage_key || '.' || format FROM posts WHERE id <= 2", variants: [] } });
    const r = await vaultSync(ctx(c), { dryRun: true });
    assert.equal(r.referenced, 2);
    assert.equal(r.deleted, 58, 'everything else in the dev vault is unreferenced now');
  });
});
