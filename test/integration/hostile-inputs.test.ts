/**
 * Hostile inputs through every bundled action, run as the runner runs them: shell metacharacters,
 * option injection, path traversal, control characters, look-alike unicode and very long values.
 * Each must be refused in one clear error line before anything reaches the host: the canary file
 * those values would create stays absent, sshd records no login, and the host log is untouched.
 *
 * The sshd's authorized key carries a forced command that counts logins before running the
 * original command, so a run that connects at all is seen.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, bundleNames, runBundle, type BundleRun } from '../harness/bundle';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let workspace: string;
let canary: string;
let logins: string;
let stateDir: string;

const touch = () => `touch ${canary}`;

/** Values an attacker (or a careless workflow) could put into any input that names something. */
function hostileValues(): Array<[label: string, value: string]> {
  return [
    ['a command after ;', `dev;${touch()}`],
    ['a command substitution', `$(${touch()})`],
    ['a newline', `dev\n${touch()}`],
    ['an option', `--upload-pack=${touch()}`],
    ['a path traversal', `../../../../${canary}`],
    ['a quote and a redirection', `dev' > ${canary} '`],
    ['look-alike unicode (Cyrillic е)', 'dеv'],
    ['a right-to-left override', '\u202edev'],
    ['a zero-width space', 'de\u200bv'],
    ['10 000 characters', 'd'.repeat(10_000)],
  ];
}

/**
 * The connection inputs are read by the one wrapper every action runs through: the whole set goes
 * through status, and a few values through every other action to show each uses that wrapper.
 */
const SPOT_CHECKS = ['a command after ;', 'a right-to-left override', '10 000 characters'];

/** Every input of every action that names something on the host, with the name its error line uses. */
const NAMED_INPUTS: Record<string, string[]> = {
  deploy: ['environment', 'ref', 'build'],
  rollback: ['environment', 'release-id', 'backup-id', 'restore-database'],
  backup: ['environment', 'verify'],
  promote: ['backup-id', 'backup-max-age-minutes', 'require-gate'],
  gate: ['sha'],
  status: ['environments'],
  resample: ['fraction', 'dry-run'],
  'vault-sync': ['dry-run'],
};

/** The connection inputs every action reads before anything else (key material is checked apart). */
const CONNECTION_INPUTS = ['host', 'port', 'user', 'config', 'lock-timeout'];

/** Inputs an action needs to get as far as reading the one under test. */
const REQUIRED: Record<string, Record<string, string>> = {
  deploy: { environment: 'dev', ref: 'main' },
  rollback: { 'release-id': 'r20260101T120000Z-1a2b3c4' },
};

function connection(): Record<string, string> {
  return { host: '127.0.0.1', port: String(sshd.port), user: sshd.user, 'ssh-key': sshd.privateKey, 'known-hosts': sshd.knownHosts, 'lock-timeout': '5' };
}

function errorLines(r: BundleRun): string[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('::error'));
}

function loginCount(): number {
  return fs.existsSync(logins) ? fs.readFileSync(logins, 'utf8').split('\n').filter(Boolean).length : 0;
}

/** Everything under the state directory (host logs, locks), as path → content. */
function stateSnapshot(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out[p] = fs.readFileSync(p, 'utf8');
    }
  };
  walk(stateDir);
  return out;
}

/** Runs at most `n` promises at once. */
async function pool<T>(jobs: Array<() => Promise<T>>, n: number): Promise<T[]> {
  const results = new Array<T>(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < jobs.length) {
        const i = next++;
        results[i] = await jobs[i]();
      }
    }),
  );
  return results;
}

before(async () => {
  sshd = await startSshd();
  workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-hostile-'));
  canary = path.join(workspace, 'canary');
  logins = path.join(workspace, 'logins');
  stateDir = path.join(workspace, 'state');
  fs.mkdirSync(path.join(workspace, '.github'), { recursive: true });
  const config = fs
    .readFileSync(path.join(ROOT, 'test/fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${stateDir}`)
    .replace('compose-command: docker compose', 'compose-command: docker-compose');
  fs.writeFileSync(path.join(workspace, '.github', 'twinstack.yml'), config);
  // Count every login, then run what the client asked for.
  const key = fs.readFileSync(path.join(sshd.dir, 'authorized_keys'), 'utf8').trim();
  fs.writeFileSync(path.join(sshd.dir, 'authorized_keys'), `command="echo login >> ${logins}; eval \\"$SSH_ORIGINAL_COMMAND\\"" ${key}\n`);
});
after(async () => {
  await sshd?.stop();
  fs.rmSync(workspace, { recursive: true, force: true });
});

interface Case {
  action: string;
  input: string;
  label: string;
  value: string;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const action of bundleNames()) {
    for (const input of CONNECTION_INPUTS) {
      for (const [label, value] of hostileValues()) if (action === 'status' || SPOT_CHECKS.includes(label)) out.push({ action, input, label, value });
    }
    for (const input of NAMED_INPUTS[action] ?? []) for (const [label, value] of hostileValues()) out.push({ action, input, label, value });
  }
  return out;
}

async function refusedBeforeConnecting(c: Case): Promise<string | undefined> {
  const r = await runBundle(c.action, { ...connection(), ...(REQUIRED[c.action] ?? {}), [c.input]: c.value }, { workspace, timeoutMs: 60_000 });
  const lines = errorLines(r);
  const where = `${c.action} ${c.input}=${c.label}`;
  if (r.code !== 1) return `${where}: exit code ${r.code}\n${r.visible}`;
  if (lines.length !== 1) return `${where}: ${lines.length} error lines:\n${lines.join('\n')}`;
  if (r.stderr !== '') return `${where}: wrote to stderr (a stack trace?):\n${r.stderr}`;
  const line = lines[0];
  if (!line.includes(c.input)) return `${where}: the error line does not name the input: ${line}`;
  if (line.length > 400) return `${where}: the error line is ${line.length} characters long: ${line.slice(0, 200)}…`;
  if (/[\u202e\u200b]/.test(line)) return `${where}: the error line carries an invisible control character unescaped: ${JSON.stringify(line)}`;
  return undefined;
}

describe('hostile inputs', () => {
  it('a well-formed run does log in, so the login count can see a run that connects', async () => {
    const before = loginCount();
    const r = await runBundle('status', connection(), { workspace });
    assert.equal(r.code, 0, r.why);
    assert.ok(loginCount() > before, 'no login was recorded');
  });

  for (const action of bundleNames()) {
    it(`${action}: every named input refuses every hostile value in one line, before connecting`, async () => {
      const mine = cases().filter((c) => c.action === action);
      assert.ok(mine.length >= CONNECTION_INPUTS.length * SPOT_CHECKS.length);
      const loginsBefore = loginCount();
      const stateBefore = stateSnapshot();
      const problems = (
        await pool(
          mine.map((c) => () => refusedBeforeConnecting(c)),
          4,
        )
      ).filter((p): p is string => !!p);
      assert.deepEqual(problems, []);
      assert.equal(fs.existsSync(canary), false, 'a hostile value ran a command: the canary exists');
      assert.equal(loginCount(), loginsBefore, 'a run with a hostile input logged in to the host');
      assert.deepEqual(stateSnapshot(), stateBefore, 'the state directory (host logs, locks) changed');
    });
  }

  it('a hostile ssh-key or known-hosts is refused in one line, before any login', async () => {
    const before = loginCount();
    for (const [input, value, expected] of [
      ['ssh-key', `$(${touch()})`, /ssh-key is not a usable private key/],
      ['ssh-key', 'k'.repeat(10_000), /ssh-key is not a usable private key/],
      ['known-hosts', `[127.0.0.1]:${sshd.port} ssh-ed25519 $(${touch()})`, /known-hosts line 1: /],
      ['known-hosts', `@revoked;${touch()} x y`, /known-hosts line 1: /],
    ] as const) {
      const r = await runBundle('status', { ...connection(), [input]: value }, { workspace });
      assert.equal(r.code, 1, r.why);
      assert.equal(errorLines(r).length, 1, errorLines(r).join('\n'));
      assert.match(errorLines(r)[0], expected);
      assert.ok(errorLines(r)[0].length <= 400, errorLines(r)[0].slice(0, 200));
    }
    assert.equal(loginCount(), before);
    assert.equal(fs.existsSync(canary), false);
  });

  it("resample's seed is free text (a hash seed, only ever a SQL literal) but is still refused when over-long or multi-line", async () => {
    const before = loginCount();
    for (const seed of ['s'.repeat(10_000), `a\n${touch()}`]) {
      const r = await runBundle('resample', { ...connection(), seed }, { workspace });
      assert.equal(r.code, 1, r.why);
      assert.deepEqual(errorLines(r), ['::error::input seed must be one line of at most 200 characters']);
    }
    assert.equal(loginCount(), before);
  });
});
