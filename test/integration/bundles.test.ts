/** The bundles in dist/ themselves, run as the runner runs them (ssh2's optional native parts are not bundled). */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import type { EnvironmentStatus } from '../../src/actions/status/status';
import { ROOT, bundleNames, runBundle } from '../harness/bundle';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let workspace: string;

function writeConfig(dir: string, stateDir: string): void {
  fs.mkdirSync(path.join(dir, '.github'), { recursive: true });
  const text = fs
    .readFileSync(path.join(ROOT, 'test/fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${stateDir}`)
    .replace('compose-command: docker compose', 'compose-command: docker-compose');
  fs.writeFileSync(path.join(dir, '.github', 'twinstack.yml'), text);
}

before(async () => {
  sshd = await startSshd();
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-ws-'));
  writeConfig(workspace, path.join(workspace, 'state'));
});
after(async () => {
  await sshd?.stop();
  fs.rmSync(workspace, { recursive: true, force: true });
});

function errorLines(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l.startsWith('::error::'));
}

describe('every bundle', () => {
  for (const name of bundleNames()) {
    it(`${name}: action.yml runs its own bundle on node24`, () => {
      const yml = parse(fs.readFileSync(path.join(ROOT, 'actions', name, 'action.yml'), 'utf8')) as {
        runs: { using: string; main: string };
        branding?: { icon?: string; color?: string };
      };
      assert.equal(yml.runs.using, 'node24');
      assert.equal(yml.runs.main, `../../dist/${name}/index.js`);
      assert.ok(fs.existsSync(path.join(ROOT, 'actions', name, yml.runs.main)), `dist/${name}/index.js is missing: run npm run bundle`);
      assert.ok(yml.branding?.icon && yml.branding?.color, 'branding is missing');
    });

    it(`${name}: a missing required input fails with one clear line, before connecting`, async () => {
      const r = await runBundle(name, { 'ssh-key': 'x', 'known-hosts': 'x' }, { workspace });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.deepEqual(errorLines(r.stdout), ['::error::input host is required: the VPS address, e.g. from a repository secret']);
      assert.equal(r.stderr, '');
    });

    it(`${name}: a missing config file says what to add`, async () => {
      const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-empty-'));
      const r = await runBundle(name, { host: '127.0.0.1' }, { workspace: empty });
      fs.rmSync(empty, { recursive: true });
      assert.equal(r.code, 1);
      assert.equal(errorLines(r.stdout).length, 1);
      assert.match(errorLines(r.stdout)[0], /config file \.github\/twinstack\.yml not found/);
    });
  }
});

describe("PostgreSQL's parser inside the bundles", () => {
  it('every bundle carries the parser: a quoted server function in a column rule is refused in one line, before connecting', async () => {
    const hostile = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-sql-'));
    writeConfig(hostile, path.join(hostile, 'state'));
    const file = path.join(hostile, '.github', 'twinstack.yml');
    fs.appendFileSync(file, `sample:\n  columns:\n    users.email: { sql: '"pg_read_file"(''/etc/passwd'')' }\n`);
    try {
      for (const name of bundleNames()) {
        assert.ok(fs.existsSync(path.join(ROOT, 'dist', name, 'libpg-query.wasm')), `dist/${name}/libpg-query.wasm is missing: run npm run bundle`);
        const r = await runBundle(name, { host: '127.0.0.1', port: String(sshd.port) }, { workspace: hostile });
        assert.equal(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
        assert.equal(errorLines(r.stdout).length, 1, `${name}: ${r.stdout}`);
        assert.match(errorLines(r.stdout)[0], /sample\.columns\.users\.email\.sql: holds a call of pg_read_file\(\) at character 1/, name);
        assert.ok(!/connecting to|connected to/.test(r.stdout), `${name} connected to the host`);
      }
    } finally {
      fs.rmSync(hostile, { recursive: true, force: true });
    }
  });
});

describe('the status bundle against a real host', () => {
  const inputs = () => ({ host: '127.0.0.1', port: String(sshd.port), user: sshd.user, 'ssh-key': sshd.privateKey, 'known-hosts': sshd.knownHosts });

  it('connects, reports both environments and masks the key', async () => {
    const r = await runBundle('status', inputs(), { workspace });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const state = JSON.parse(r.outputs.json) as EnvironmentStatus[];
    assert.deepEqual(
      state.map((e) => e.environment),
      ['prod', 'dev'],
    );
    assert.match(r.summary, /## twinstack status/);
    assert.match(r.summary, /\| prod \| none recorded \|/);
    const keyBody = sshd.privateKey.split('\n')[1];
    assert.ok(r.stdout.includes(`::add-mask::${keyBody}`), 'the key was not masked');
    assert.ok(!r.visible.includes(keyBody), 'the key reached the log');
  });

  it('refuses a hostile host input in one line, running nothing', async () => {
    const canary = path.join(workspace, 'canary');
    const r = await runBundle('status', { ...inputs(), host: `127.0.0.1;touch ${canary}` }, { workspace });
    assert.equal(r.code, 1);
    assert.deepEqual(errorLines(r.stdout).length, 1);
    assert.match(errorLines(r.stdout)[0], /input host "127\.0\.0\.1;touch .*" is not a host name or IP address/);
    assert.equal(fs.existsSync(canary), false);
  });

  it('refuses a changed host key', async () => {
    const other = sshd.knownHostsFor('ed25519').replace(/ssh-ed25519 \S+/, 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ');
    const r = await runBundle('status', { ...inputs(), 'known-hosts': other }, { workspace });
    assert.equal(r.code, 1);
    assert.match(errorLines(r.stdout)[0], /SSH refused: host key mismatch for \[127\.0\.0\.1\]:\d+/);
  });

  it('deploy refuses prod unless the config allows it, before connecting', async () => {
    const stateDir = path.join(workspace, 'state');
    const tree = () =>
      fs.existsSync(stateDir)
        ? fs
            .readdirSync(stateDir, { recursive: true, encoding: 'utf8' })
            .map((f) => `${f} ${fs.statSync(path.join(stateDir, f)).mtimeMs}`)
            .sort()
        : [];
    const before = tree();
    const r = await runBundle('deploy', { ...inputs(), environment: 'prod', ref: 'main' }, { workspace });
    assert.equal(r.code, 1);
    assert.deepEqual(errorLines(r.stdout), [
      '::error::deploy refuses environment prod: prod changes through the flip-the-switch workflow (promote), which ships what passed on dev; for a first install or a repair set deploy.allow-prod: true in the config',
    ]);
    assert.ok(!/connecting to|connected to/.test(r.stdout), 'it connected to the host');
    assert.deepEqual(tree(), before, 'it touched the state directory');
  });

  it('rejects an invalid environments input', async () => {
    const r = await runBundle('status', { ...inputs(), environments: 'prod,$(id)' }, { workspace });
    assert.equal(r.code, 1);
    assert.match(errorLines(r.stdout)[0], /input environments: "\$\(id\)" is not an environment/);
  });
});
