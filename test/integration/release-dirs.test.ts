/**
 * promote.release-dirs over the real sshd with real git: what lands in a release directory (and in
 * promote's scratch checkout) when the new commit tracks a directory as a symlink out of it.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig, type Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { ensureReleaseDir, releaseDir, releaseEnvironment, scratchCheckout } from '../../src/domain/git';
import { ConfigurationError } from '../../src/infra/errors';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let host: SshHost;
let root: string;
let config: Config;
let prod: Environment;
/** Commits of the app: a plain one, one tracking `secrets` as a symlink to dev's vault, one tracking `deploy` so. */
const sha = { plain: '', secretsLink: '', deployLink: '' };

const KEY = '{"type": "service_account", "private_key": "prod-only-2f9c41d7"}\n';
const ENV = 'DATABASE_URL=postgres://owner:prod-pass-81ac@db/makapix\n';

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.invalid', '-c', 'init.defaultBranch=main', ...args], {
    cwd,
    encoding: 'utf8',
  }).trim();
}

const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
const devVault = () => path.join(root, 'dev-vault');

before(async () => {
  sshd = await startSshd();
  host = await connect(sshd);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-release-dirs-'));
  const src = path.join(root, 'src');
  fs.mkdirSync(path.join(src, 'secrets'), { recursive: true });
  fs.mkdirSync(path.join(src, 'deploy'));
  fs.mkdirSync(devVault());
  git(src, 'init', '-q');
  fs.writeFileSync(path.join(src, 'secrets', '.gitkeep'), '');
  fs.writeFileSync(path.join(src, 'deploy', 'docker-compose.yml'), 'services: {}\n');
  git(src, 'add', '-A');
  git(src, 'commit', '-q', '-m', 'plain');
  sha.plain = git(src, 'rev-parse', 'HEAD');
  // A commit that tracks the release-files directory as a symlink to a directory dev's containers read.
  git(src, 'rm', '-q', '-r', 'secrets');
  fs.symlinkSync(devVault(), path.join(src, 'secrets'));
  git(src, 'add', '-A');
  git(src, 'commit', '-q', '-m', 'secrets is a link');
  sha.secretsLink = git(src, 'rev-parse', 'HEAD');
  // One that does the same with the env file's directory.
  git(src, 'checkout', '-q', sha.plain);
  git(src, 'rm', '-q', '-r', 'deploy');
  fs.symlinkSync(devVault(), path.join(src, 'deploy'));
  git(src, 'add', '-A');
  git(src, 'commit', '-q', '-m', 'deploy is a link');
  sha.deployLink = git(src, 'rev-parse', 'HEAD');

  // prod's checkout stays on the plain commit, with its files outside git.
  const checkout = path.join(root, 'prod');
  git(root, 'clone', '-q', src, checkout);
  git(checkout, 'fetch', '-q', 'origin', sha.secretsLink, sha.deployLink);
  git(checkout, 'checkout', '-q', '--detach', sha.plain);
  fs.writeFileSync(path.join(checkout, 'deploy', '.env.prod'), ENV, { mode: 0o644 });
  fs.writeFileSync(path.join(checkout, 'secrets', 'sa.json'), KEY, { mode: 0o644 });
  fs.mkdirSync(path.join(checkout, 'certs'));
  fs.writeFileSync(path.join(checkout, 'certs', 'tls.key'), 'tls-key\n', { mode: 0o644 });
  fs.mkdirSync(path.join(root, 'elsewhere'));
  fs.writeFileSync(path.join(root, 'elsewhere', 'key.pem'), 'not prod\n');
  fs.symlinkSync(path.join(root, 'elsewhere', 'key.pem'), path.join(checkout, 'linked.pem'));

  config = parseConfig(
    `state-dir: ${root}/state
promote: { release-dirs: true, release-files: [secrets/sa.json, certs] }
environments:
  prod: {checkout: ${checkout}, project: p, compose-files: [deploy/docker-compose.yml], env-file: deploy/.env.prod, url: http://127.0.0.1:1, database: {name: makapix, user: owner}}
  dev: {checkout: ${root}/dev, project: d, compose-files: [deploy/docker-compose.yml], env-file: deploy/.env.dev, url: http://127.0.0.1:2, database: {name: makapix_dev, user: owner}}
`,
    'test',
  );
  prod = new Environment('prod', config);
});
after(async () => {
  await host?.close();
  await sshd?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe('release directories', () => {
  it('hold private copies: releases and releases/prod 0700, the env file and release files 0600', async () => {
    const at = await releaseEnvironment(host, config, prod, sha.plain);
    const dir = releaseDir(`${root}/state`, prod, sha.plain);
    assert.equal(at.cfg.checkout, dir);
    assert.equal(mode(`${root}/state/releases`), '700');
    assert.equal(mode(`${root}/state/releases/prod`), '700');
    assert.equal(fs.readFileSync(`${dir}/secrets/sa.json`, 'utf8'), KEY);
    assert.equal(mode(`${dir}/secrets/sa.json`), '600');
    assert.equal(fs.readFileSync(`${dir}/deploy/.env.prod`, 'utf8'), ENV);
    assert.equal(mode(`${dir}/deploy/.env.prod`), '600');
    assert.equal(mode(`${dir}/certs`), '700');
    assert.equal(mode(`${dir}/certs/tls.key`), '600');
    // Made again at the same commit (a rollback to it): the directory is kept, the copies are fresh.
    fs.writeFileSync(`${dir}/secrets/sa.json`, 'stale\n');
    await releaseEnvironment(host, config, prod, sha.plain);
    assert.equal(fs.readFileSync(`${dir}/secrets/sa.json`, 'utf8'), KEY);
  });

  it('refuse a release file whose directory the commit tracks as a symlink, and copy nothing through it', async () => {
    await assert.rejects(releaseEnvironment(host, config, prod, sha.secretsLink), (e: Error) => {
      assert.ok(e instanceof ConfigurationError, String(e));
      const dir = releaseDir(`${root}/state`, prod, sha.secretsLink);
      assert.equal(
        e.message,
        `prod: promote.release-files entry secrets/sa.json was not copied into ${dir}: ${dir}/secrets is a symlink (to ${devVault()}) in commit ${sha.secretsLink.slice(0, 12)}, and files outside git never go through a link; make secrets a real directory in the commit (or drop the entry)`,
      );
      return true;
    });
    assert.deepEqual(fs.readdirSync(devVault()), []);
    // The refusal comes before any copy: not even the env file (whose path has no link) was copied.
    assert.equal(fs.existsSync(`${releaseDir(`${root}/state`, prod, sha.secretsLink)}/deploy/.env.prod`), false);
    assert.equal(fs.lstatSync(`${releaseDir(`${root}/state`, prod, sha.secretsLink)}/secrets`).isSymbolicLink(), true);
  });

  it("refuse the env file under a directory the commit tracks as a symlink, in promote's scratch checkout too", async () => {
    const dir = releaseDir(`${root}/state`, prod, sha.deployLink);
    await assert.rejects(
      ensureReleaseDir({ host, env: prod, sha: sha.deployLink, dir, files: [] }),
      /the env file deploy\/\.env\.prod was not copied into .*\/deploy is a symlink/,
    );
    const work = `${root}/state/prod/work/promote`;
    await assert.rejects(scratchCheckout(host, prod, sha.deployLink, work), (e: Error) => {
      assert.ok(e instanceof ConfigurationError, String(e));
      assert.match(
        e.message,
        new RegExp(`^prod: the env file deploy/\\.env\\.prod was not copied into ${work}: ${work}/deploy is a symlink \\(to ${devVault()}\\)`),
      );
      return true;
    });
    assert.deepEqual(fs.readdirSync(devVault()), []);
  });

  it('refuse a release file that is a symlink in the checkout instead of following it', async () => {
    const dir = releaseDir(`${root}/state`, prod, sha.plain);
    await assert.rejects(
      ensureReleaseDir({ host, env: prod, sha: sha.plain, dir, files: ['linked.pem'] }),
      new RegExp(`linked\\.pem is a symlink \\(to ${root}/elsewhere/key\\.pem\\), and files outside git are copied, never followed`),
    );
    assert.equal(fs.existsSync(`${dir}/linked.pem`), false);
  });

  it('refuse a releases directory that is itself a symlink', async () => {
    const state = path.join(root, 'state-linked');
    fs.mkdirSync(path.join(state), { recursive: true });
    fs.symlinkSync(devVault(), path.join(state, 'releases'));
    await assert.rejects(
      ensureReleaseDir({ host, env: prod, sha: sha.plain, dir: releaseDir(state, prod, sha.plain), files: [] }),
      /state-linked\/releases is a symlink/,
    );
    assert.deepEqual(fs.readdirSync(devVault()), []);
  });
});
