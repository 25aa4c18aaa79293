/**
 * A run cancelled (SIGTERM, as the runner sends it) while it holds a lock but before its work has
 * begun: during an operation's opening checks, and while promote reads dev under dev's lock. Real
 * processes, a real signal, a real OpenSSH server; what is checked is on the host: the holder file
 * is gone (the next run would otherwise report a stale lock) and the host log says cancelled.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { withDefaults } from '../harness/action-defaults';
import { ROOT, startBundle } from '../harness/bundle';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let workspace: string;
let stateDir: string;

before(async () => {
  sshd = await startSshd();
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-cancel-'));
  stateDir = path.join(workspace, 'state');
  fs.mkdirSync(path.join(workspace, '.github'), { recursive: true });
  const text = fs.readFileSync(path.join(ROOT, 'test/fixtures/config/makapix.yml'), 'utf8').replace('state-dir: /var/lib/twinstack', `state-dir: ${stateDir}`);
  fs.writeFileSync(path.join(workspace, '.github', 'twinstack.yml'), text);
});
after(async () => {
  await sshd?.stop();
  fs.rmSync(workspace, { recursive: true, force: true });
});

const inputs = () => ({ host: '127.0.0.1', port: String(sshd.port), user: sshd.user, 'ssh-key': sshd.privateKey, 'known-hosts': sshd.knownHosts });

async function appears(file: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} never appeared`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const records = (env: string) =>
  fs.existsSync(path.join(stateDir, env, 'log.jsonl'))
    ? fs
        .readFileSync(path.join(stateDir, env, 'log.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

describe('a run cancelled before its work begins', () => {
  it('during the opening checks of an operation (a cut change being undone): no lock holder is left, and the log says cancelled', async () => {
    const marker = path.join(workspace, 'undo-started');
    fs.mkdirSync(path.join(stateDir, 'prod', 'pending'), { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(stateDir, 'prod', 'pending', 'restore-test.sh'), `# a restore cut halfway (test)\ntouch ${marker}\nsleep 300\n`);
    const run = startBundle('backup', { ...inputs(), environment: 'prod' }, { workspace });
    await appears(marker);
    run.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 1, r.stdout);
    assert.equal(fs.existsSync(path.join(stateDir, 'prod', 'lock-holder.json')), false, 'the lock holder file was left behind');
    const mine = records('prod').filter((x) => x.action === 'backup');
    assert.equal(mine.at(-1)?.event, 'finished', JSON.stringify(mine));
    assert.equal(mine.at(-1)?.outcome, 'cancelled');
  });

  it("while dev's lock is held only to read it (promote's first step): no lock holder is left", async () => {
    const marker = path.join(workspace, 'reading-dev');
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'cancel-opening-child.ts')], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        GITHUB_WORKSPACE: workspace,
        GITHUB_REPOSITORY: 'makapix/makapix',
        GITHUB_RUN_ID: '4242',
        GITHUB_SERVER_URL: 'https://github.com',
        GITHUB_ACTOR: 'octocat',
        GITHUB_SHA: '0'.repeat(40),
        TWINSTACK_TEST_MARKER: marker,
        ...Object.fromEntries(Object.entries(withDefaults('status', inputs())).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((res) => child.on('close', res));
    await appears(marker);
    assert.equal(fs.existsSync(path.join(stateDir, 'dev', 'lock-holder.json')), true, 'the read lock was not taken');
    child.kill('SIGTERM');
    assert.equal(await exited, 1, out);
    assert.equal(fs.existsSync(path.join(stateDir, 'dev', 'lock-holder.json')), false, `the lock holder file was left behind\n${out}`);
  });
});
