/** The environment lock and the host log, on a real OpenSSH server. */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { RunInfo } from '../../src/infra/actions-io';
import { LockTimeoutError } from '../../src/infra/errors';
import { HostLog, unfinishedOperations } from '../../src/domain/host-log';
import { EnvironmentLock, type LockHolder } from '../../src/domain/lock';
import { MemoryLogger } from '../../src/infra/logger';
import { underLock } from '../../src/domain/operation';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let stateDir: string;
const open: SshHost[] = [];

async function newHost(log = new MemoryLogger()): Promise<SshHost> {
  const h = await connect(sshd, {}, log);
  open.push(h);
  return h;
}

function holder(run: string): LockHolder {
  return { run, actor: 'octocat', sha: 'a'.repeat(40), action: 'deploy', op: `op-${run}`, since: new Date().toISOString() };
}

function runInfo(url: string): RunInfo {
  return { url, actor: 'octocat', sha: 'b'.repeat(40), workflow: 'test' };
}

before(async () => {
  sshd = await startSshd();
  stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-state-'));
});
after(async () => {
  for (const h of open) await h.close();
  await sshd?.stop();
  fs.rmSync(stateDir, { recursive: true, force: true });
});

describe('the environment lock', () => {
  it('lets one holder in at a time; the second waits, then fails naming the holder', async () => {
    const a = await newHost();
    const b = await newHost();
    const lockA = await EnvironmentLock.acquire({ host: a, stateDir, env: 'dev', holder: holder('run-A'), waitSeconds: 5, log: new MemoryLogger() });
    const started = Date.now();
    await assert.rejects(
      EnvironmentLock.acquire({ host: b, stateDir, env: 'dev', holder: holder('run-B'), waitSeconds: 1, log: new MemoryLogger() }),
      (e: Error) => {
        assert.ok(e instanceof LockTimeoutError);
        assert.match(e.message, /the dev environment is locked by deploy run run-A \(actor octocat/);
        return true;
      },
    );
    assert.ok(Date.now() - started >= 900, 'the second holder did not wait');
    await lockA.release();
    const lockB = await EnvironmentLock.acquire({ host: b, stateDir, env: 'dev', holder: holder('run-B'), waitSeconds: 5, log: new MemoryLogger() });
    assert.equal(lockB.stale, undefined);
    await lockB.release();
  });

  it('a waiting holder gets the lock as soon as it is released', async () => {
    const a = await newHost();
    const b = await newHost();
    const lockA = await EnvironmentLock.acquire({ host: a, stateDir, env: 'prod', holder: holder('run-A'), waitSeconds: 5, log: new MemoryLogger() });
    const waiting = EnvironmentLock.acquire({ host: b, stateDir, env: 'prod', holder: holder('run-B'), waitSeconds: 30, log: new MemoryLogger() });
    await new Promise((r) => setTimeout(r, 500));
    await lockA.release();
    const lockB = await waiting;
    assert.equal(lockB.stale, undefined);
    await lockB.release();
  });

  it('is freed when its run dies, and the next run reports the stale holder', async () => {
    const a = await newHost();
    await EnvironmentLock.acquire({ host: a, stateDir, env: 'dev', holder: holder('run-dead'), waitSeconds: 5, log: new MemoryLogger() });
    await a.close(); // the connection drops without releasing
    const b = await newHost();
    const log = new MemoryLogger();
    const lockB = await EnvironmentLock.acquire({ host: b, stateDir, env: 'dev', holder: holder('run-next'), waitSeconds: 20, log });
    assert.equal(lockB.stale?.run, 'run-dead');
    assert.match(log.text, /Stale dev lock: deploy run run-dead .* died while holding it/);
    await lockB.release();
    const again = await EnvironmentLock.acquire({ host: b, stateDir, env: 'dev', holder: holder('run-later'), waitSeconds: 5, log: new MemoryLogger() });
    assert.equal(again.stale, undefined, 'a cleanly released lock was reported stale');
    await again.release();
  });
});

describe('a cancel', () => {
  const exists = (pgid: number) => {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  };
  /** Whether the group still has a process a moment later (sshd reaps a killed session's shell shortly after). */
  const alive = (pgid: number) => {
    const until = Date.now() + 3000;
    while (exists(pgid) && Date.now() < until) spawnSync('sleep', ['0.05']);
    return exists(pgid);
  };
  /** Starts `sleep` on the host under a fence of operation `op`; returns its process group (the host is this machine). */
  async function fencedSleep(env: string, op: string): Promise<{ pgid: number; done: Promise<unknown> }> {
    const h = await newHost();
    const lock = await EnvironmentLock.acquire({ host: h, stateDir, env, holder: holder(op), waitSeconds: 5, log: new MemoryLogger() });
    h.addFence(lock.fence(op, `run-${op}`));
    const done = h.run('sleep 300', { check: false, quiet: true, label: `sleeping for ${op}`, timeoutSeconds: 0 }).catch((e: unknown) => e);
    const dir = path.join(stateDir, env, 'busy.d');
    const deadline = Date.now() + 20_000;
    for (;;) {
      const mine = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => fs.readFileSync(path.join(dir, f), 'utf8').includes(`"op":"${op}"`)) : [];
      if (mine.length) return { pgid: Number(mine[0].replace(/\.json$/, '')), done };
      if (Date.now() > deadline) throw new Error(`no busy entry of ${op} appeared in ${dir}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("stops exactly its own operation's process groups on the host, and no other's", async () => {
    const mine = await fencedSleep('cancel-a', 'op-mine');
    const other = await fencedSleep('cancel-b', 'op-other');
    assert.ok(exists(mine.pgid) && exists(other.pgid));
    const h = await newHost();
    const out = await EnvironmentLock.stopWork({ host: h, stateDir, env: 'cancel-a', op: 'op-mine', project: 'twinstack-test-no-such-project' });
    assert.match(out, /stopped 1 process group/);
    assert.ok(!alive(mine.pgid), `process group ${mine.pgid} of the cancelled operation is still running`);
    assert.ok(exists(other.pgid), "another operation's work was stopped");
    // Its entry goes with it (at once, or, when sshd reaps the session's shell late, at the next look).
    assert.deepEqual((await EnvironmentLock.busyWork(h, stateDir, 'cancel-a')).entries, []);
    assert.deepEqual(fs.readdirSync(path.join(stateDir, 'cancel-a', 'busy.d')), [], "the stopped group's entry is left");
    assert.equal(
      await EnvironmentLock.stopWork({ host: h, stateDir, env: 'cancel-b', op: 'op-other', project: 'twinstack-test-no-such-project' }),
      'stopped 1 process group(s)',
    );
    assert.ok(!alive(other.pgid));
  });
});

describe('operations and the host log', () => {
  it('compacts a 100,000-line host log: everything archived, the release stack, gates and unfinished operations kept', async () => {
    const env = 'big';
    const dir = path.join(stateDir, env);
    fs.mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    const rec = (i: number, fields: Record<string, unknown>) =>
      JSON.stringify({ v: 1, time: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString(), env, action: 'deploy', op: `op${i}`, ...fields });
    const sha = (n: number) => n.toString(16).padStart(40, '0');
    for (let i = 0; lines.length < 100_000; i++) {
      lines.push(rec(i, { event: 'started' }));
      if (i % 10 === 0)
        lines.push(rec(i, { event: 'release', release: `r${i}`, sha: sha(i), kind: 'deploy', images: {}, previous: i ? `r${i - 10}` : undefined }));
      if (i % 10 === 0) lines.push(rec(i, { event: 'gate', sha: sha(i), passed: i % 20 === 0 }));
      if (i !== 7) lines.push(rec(i, { event: 'finished', outcome: 'success' }));
    }
    const original = lines.join('\n') + '\n';
    fs.writeFileSync(path.join(dir, 'log.jsonl'), original);
    const h = await newHost();
    const hostLog = new HostLog(h, stateDir, env);
    const before = await hostLog.read();
    const log = new MemoryLogger();
    await underLock({ host: h, stateDir, env, project: 'twinstack-test-big', action: 'status', run: runInfo('run-big'), log, lockTimeoutSeconds: 5 }, () =>
      Promise.resolve(),
    );
    const after = await hostLog.read();
    assert.ok(after.length < 20_000, `the live log still has ${after.length} records`);
    // Every release and the stack they form, each commit's gate, and the never-finished op7 survive.
    const releases = (rs: typeof before) => rs.filter((r) => r.event === 'release').map((r) => JSON.stringify(r));
    assert.deepEqual(releases(after), releases(before));
    const gates = (rs: typeof before) => rs.filter((r) => r.event === 'gate').map((r) => (r.event === 'gate' ? `${r.sha} ${r.passed}` : ''));
    assert.deepEqual(gates(after), gates(before));
    assert.deepEqual(
      unfinishedOperations(before).map((r) => r.op),
      ['op7'],
    );
    assert.ok(
      after.some((r) => r.event === 'started' && r.op === 'op7'),
      "the never-finished operation's start is kept",
    );
    assert.ok(
      after.some((r) => r.event === 'interrupted' && r.op === 'op7'),
      'and reported by this run',
    );
    assert.deepEqual(unfinishedOperations(after), []);
    // The archive holds the whole log as it was, byte for byte.
    const archives = fs.readdirSync(dir).filter((f) => /^log-\d{8}T\d{6}Z\.jsonl\.gz$/.test(f));
    assert.equal(archives.length, 1);
    assert.equal(zlib.gunzipSync(fs.readFileSync(path.join(dir, archives[0]))).toString('utf8'), original);
    assert.match(log.text, /host log had \d+ records: archived whole/);
  });

  it('records started and finished with the outcome, and reads back as JSON lines', async () => {
    const h = await newHost();
    const opts = {
      host: h,
      stateDir,
      env: 'prod',
      project: 'twinstack-test-prod',
      action: 'deploy',
      sha: 'c'.repeat(40),
      run: runInfo('run-1'),
      log: new MemoryLogger(),
      lockTimeoutSeconds: 5,
    };
    await underLock(opts, async (op) => {
      await op.record('release', { release: 'r20260101T000000Z-ccccccc', sha: 'c'.repeat(40), kind: 'deploy', images: {} });
    });
    await assert.rejects(
      underLock({ ...opts, run: runInfo('run-2') }, () => Promise.reject(new Error('compose up failed'))),
      /compose up failed/,
    );
    const records = await new HostLog(h, stateDir, 'prod').read();
    assert.deepEqual(
      records.map((r) => [r.run, r.event, r.outcome ?? '']),
      [
        ['run-1', 'started', ''],
        ['run-1', 'release', ''],
        ['run-1', 'finished', 'success'],
        ['run-2', 'started', ''],
        ['run-2', 'finished', 'failure'],
      ],
    );
    assert.equal(records[4].error, 'compose up failed');
    for (const line of fs
      .readFileSync(path.join(stateDir, 'prod', 'log.jsonl'), 'utf8')
      .trim()
      .split('\n'))
      JSON.parse(line);
  });

  it('reports an operation whose run died, and marks it interrupted once', async () => {
    const a = await newHost();
    const opts = {
      host: a,
      stateDir,
      env: 'staging',
      project: 'twinstack-test-staging',
      action: 'promote',
      sha: 'd'.repeat(40),
      run: runInfo('run-cut'),
      log: new MemoryLogger(),
      lockTimeoutSeconds: 5,
    };
    let reached!: () => void;
    const inside = new Promise<void>((r) => (reached = r));
    const dying = underLock(opts, async () => {
      reached();
      await new Promise(() => undefined); // never finishes: the connection is cut under it
    });
    dying.catch(() => undefined);
    await inside;
    await a.close();

    const b = await newHost();
    const log = new MemoryLogger();
    const seen = await underLock({ ...opts, host: b, run: runInfo('run-next'), log }, (op) => Promise.resolve(op.interrupted.map((r) => r.run)));
    assert.deepEqual(seen, ['run-cut']);
    assert.match(log.text, /Unfinished operation on staging: promote \S+ by run-cut .* never finished/);
    const records = await new HostLog(b, stateDir, 'staging').read();
    assert.equal(unfinishedOperations(records).length, 0);
    assert.equal(records.filter((r) => r.event === 'interrupted').length, 1);
  });

  it('skips lines that are not records instead of failing', async () => {
    const h = await newHost();
    fs.mkdirSync(path.join(stateDir, 'broken'), { recursive: true });
    fs.writeFileSync(
      path.join(stateDir, 'broken', 'log.jsonl'),
      '{"v":1,"event":"started","op":"x","time":"t","env":"broken","action":"a"}\nnot json\n{"v":1,"event":"fini',
    );
    const log = new MemoryLogger();
    const records = await new HostLog(h, stateDir, 'broken').read(log);
    assert.equal(records.length, 1);
    assert.match(log.text, /2 line\(s\) are not twinstack records/);
  });
});
