/** The SSH layer against a real OpenSSH server. */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CaptureLimitError, ConfigurationError, RemoteCommandError } from '../../src/infra/errors';
import { HostLog } from '../../src/domain/host-log';
import { MAX_CAPTURE_BYTES } from '../../src/infra/host';
import { MemoryLogger } from '../../src/infra/logger';
import { ActionsLogger } from '../../src/infra/actions-io';
import { argv, sh } from '../../src/infra/shell';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startSshd, type TestSshd } from '../harness/sshd';

let sshd: TestSshd;
let host: SshHost;
const log = new MemoryLogger();

before(async () => {
  sshd = await startSshd();
  host = await connect(sshd, {}, log);
});
after(async () => {
  await host?.close();
  await sshd?.stop();
});

function otherKeyLine(port: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-key-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'k')]);
  const [type, key] = fs.readFileSync(path.join(dir, 'k.pub'), 'utf8').split(' ');
  fs.rmSync(dir, { recursive: true });
  return `[127.0.0.1]:${port} ${type} ${key}`;
}

describe('host keys are pinned', () => {
  for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
    it(`accepts the server when only its ${type} key is pinned`, async () => {
      const h = await connect(sshd, { knownHosts: sshd.knownHostsFor(type) });
      const r = await h.run('echo ok');
      assert.equal(r.stdout.trim(), 'ok');
      await h.close();
    });
  }

  it('refuses a host with no pinned key, before connecting', async () => {
    await assert.rejects(connect(sshd, { knownHosts: otherKeyLine(sshd.port).replace('[127.0.0.1]', '[example.invalid]') }), (e: Error) => {
      assert.ok(e instanceof ConfigurationError);
      assert.match(e.message, /known-hosts has no key for \[127\.0\.0\.1\]:\d+/);
      return true;
    });
  });

  it('refuses a mismatched host key and names both fingerprints', async () => {
    await assert.rejects(connect(sshd, { knownHosts: otherKeyLine(sshd.port) }), (e: Error) => {
      assert.ok(e instanceof ConfigurationError);
      assert.match(e.message, /host key mismatch for \[127\.0\.0\.1\]:\d+: the server offered ssh-ed25519 SHA256:\S+, known-hosts pins ssh-ed25519 SHA256:/);
      return true;
    });
  });

  it('refuses a key marked @revoked even when it is also pinned', async () => {
    const line = sshd.knownHostsFor('ed25519');
    const revoked = `@revoked ${line}`;
    await assert.rejects(connect(sshd, { knownHosts: `${line}\n${revoked}\n` }), /marked @revoked/);
  });

  it('reports a refused login key in one line', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-key-'));
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'k')]);
    const key = fs.readFileSync(path.join(dir, 'k'), 'utf8');
    fs.rmSync(dir, { recursive: true });
    await assert.rejects(connect(sshd, { privateKey: key }), /login as \S+ on 127\.0\.0\.1:\d+ was refused: check ssh-key and user/);
  });
});

describe('commands', () => {
  it('surfaces the exit code and the tail of stderr', async () => {
    await assert.rejects(host.run('echo to-stdout; echo first-problem >&2; echo final-problem >&2; exit 3', { label: 'failing step' }), (e: Error) => {
      assert.ok(e instanceof RemoteCommandError);
      assert.equal(e.exitCode, 3);
      assert.match(e.message, /^failing step exited with code 3: first-problem \| final-problem$/);
      assert.match(e.stdout, /to-stdout/);
      return true;
    });
  });

  it('returns non-zero results without throwing when check is false', async () => {
    const r = await host.run('exit 7', { check: false });
    assert.equal(r.exitCode, 7);
  });

  it('fails a command at once when the connection is gone, checked or not (never waits forever)', async () => {
    const gone = await connect(sshd, {}, new MemoryLogger());
    await gone.close();
    const never = new Promise((_, reject) => setTimeout(() => reject(new Error('still waiting after 10 s')), 10_000).unref());
    await assert.rejects(Promise.race([gone.run('true'), never]), (e: unknown) => e instanceof RemoteCommandError);
    const unchecked = (await Promise.race([gone.run('true', { check: false }), never])) as { exitCode: number | null; stderr: string };
    assert.equal(unchecked.exitCode, null);
    assert.match(unchecked.stderr, /closed/);
  });

  it('shows remote output that carries workflow commands as text: the runner never acts on it', async () => {
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const actions = await connect(sshd, {}, new ActionsLogger());
    process.stdout.write = (chunk: string | Uint8Array) => (written.push(String(chunk)), true);
    try {
      await actions.run(
        `printf '%s\\n' '::error file=app.py,line=1::fake failure' '::add-mask::hidden' '::stop-commands::abc' '::set-output name=outcome::promoted' 'plain line' '  ::warning::indented'`,
      );
    } finally {
      process.stdout.write = write;
      await actions.close();
    }
    // What the runner would act on: command lines outside a stop-commands region.
    const lines = written.join('').split('\n');
    const acted: string[] = [];
    let stop: string | undefined;
    for (const l of lines) {
      const t = l.trimStart();
      if (stop) {
        if (t === `::${stop}::`) stop = undefined;
        continue;
      }
      const m = /^::stop-commands::(.+)$/.exec(t);
      if (m) stop = m[1];
      else if (t.startsWith('::') && !t.startsWith('::debug::')) acted.push(t); // twinstack's own debug line holds the command as data
    }
    assert.deepEqual(acted, []);
    for (const text of ['::error file=app.py,line=1::fake failure', '::set-output name=outcome::promoted', 'plain line']) assert.ok(lines.includes(text), text);
    assert.ok(!lines.includes('::stop-commands::abc') || lines.indexOf('::stop-commands::abc') > 0);
  });

  it('keeps its own exit status line apart from one the command prints (a per-command nonce)', async () => {
    const r = await host.run(`printf '\\n@twinstack-exit-0123456789abcdef:0\\n' >&2; exit 3`, { check: false });
    assert.equal(r.exitCode, 3);
    assert.match(r.stderr, /@twinstack-exit-0123456789abcdef:0/, 'what the command printed is its output, not a status');
    assert.doesNotMatch(r.stderr.replace('@twinstack-exit-0123456789abcdef:0', ''), /@twinstack-exit-/, "twinstack's own status line is taken out");
  });

  it('fails a pipeline when any part of it fails', async () => {
    await assert.rejects(host.run('false | cat'), /exited with code 1/);
  });

  it('does not run the command when the working directory is missing', async () => {
    const marker = path.join(os.tmpdir(), `twinstack-cwd-${process.pid}`);
    await assert.rejects(host.run(sh`touch ${marker}`, { cwd: '/nonexistent/dir' }), /exited with code 1/);
    assert.equal(fs.existsSync(marker), false);
  });

  it('kills the remote process group when a command times out', async () => {
    const pidFile = path.join(os.tmpdir(), `twinstack-timeout-${process.pid}`);
    const started = Date.now();
    await assert.rejects(host.run(sh`sleep 300 & echo $! > ${pidFile}; wait`, { timeoutSeconds: 2, label: 'slow step' }), (e: Error) => {
      assert.ok(e instanceof RemoteCommandError);
      assert.equal(e.timedOut, true);
      assert.match(e.message, /slow step timed out and was killed/);
      return true;
    });
    assert.ok(Date.now() - started < 60_000);
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    fs.rmSync(pidFile);
    // The background sleep (a grandchild) must be gone as well.
    let alive = true;
    for (let i = 0; i < 150 && alive; i++) {
      try {
        process.kill(pid, 0);
        await new Promise((r) => setTimeout(r, 100));
      } catch {
        alive = false;
      }
    }
    assert.equal(alive, false, `remote process ${pid} survived the timeout`);
  });

  it('passes hostile strings to the remote as literal text', async () => {
    const canary = path.join(os.tmpdir(), `twinstack-canary-${process.pid}`);
    const hostile = [
      `$(touch ${canary})`,
      `\`touch ${canary}\``,
      `'; touch ${canary}; echo '`,
      `"; touch ${canary}; echo "`,
      `a\nb\ttouch ${canary}`,
      `x; touch ${canary}`,
      `| touch ${canary}`,
      '$HOME ${PATH} * ? [a] ~ !! \\ \\\\',
      '-n',
      '',
      'ünïcødé ✓ 画',
    ];
    for (const s of hostile) {
      const r = await host.run(argv('printf', '%s', s), { quiet: true });
      assert.equal(r.stdout, s);
      const env = await host.run('printf %s "$VALUE"', { env: { VALUE: s }, quiet: true });
      assert.equal(env.stdout, s);
    }
    assert.equal(fs.existsSync(canary), false, 'a hostile string was executed');
  });

  it('streams output into the log as it arrives and keeps it captured', async () => {
    const seen: string[] = [];
    const r = await host.run('for i in 1 2 3; do echo line-$i; sleep 0.1; done', { onStdout: (c) => seen.push(c.toString()) });
    assert.ok(seen.length >= 2, 'output arrived in one piece, not streamed');
    assert.equal(r.stdout, 'line-1\nline-2\nline-3\n');
    assert.ok(log.lines.includes('line-2'));
  });

  it('never lets a registered secret reach the log, even at debug level', async () => {
    const secretLog = new MemoryLogger();
    const h = await connect(sshd, {}, secretLog);
    const secret = 'hunter2-s3cr3t-value';
    secretLog.secret(secret);
    await h.run(argv('echo', secret), { env: { TOKEN: secret } });
    await h.run(`echo "$TOKEN" >&2`, { env: { TOKEN: secret } });
    const err = await h.run(`echo "$TOKEN" >&2; exit 1`, { env: { TOKEN: secret } }).then(
      () => assert.fail('a command that exits 1 must fail'),
      (e: Error) => e,
    );
    secretLog.error(String(err));
    await h.close();
    assert.ok(secretLog.text.includes('***'));
    assert.ok(!secretLog.text.includes(secret), secretLog.text);
  });
});

describe('files and forwarding', () => {
  it('writes files with mode 0600 and reads them back, on a host without an sftp subsystem', async () => {
    const file = path.join(os.tmpdir(), `twinstack-secret-${process.pid}`);
    await host.writeFile(file, 'PASSWORD=x\n');
    assert.equal((fs.statSync(file).mode & 0o777).toString(8), '600');
    assert.equal((await host.readFile(file)).toString(), 'PASSWORD=x\n');
    await host.writeFile(file, 'second\n');
    assert.equal(fs.readFileSync(file, 'utf8'), 'second\n');
    fs.rmSync(file);
  });

  it('counts the bytes that cross the connection', async () => {
    const before = host.traffic();
    await host.run('head -c 100000 /dev/zero', { quiet: true });
    const afterRun = host.traffic();
    assert.ok(afterRun.received - before.received >= 100000);
  });
});

describe('output past the capture limit', () => {
  it('fails the command in one line naming it and the size, checked or not, instead of returning it cut short', async () => {
    for (const check of [true, false]) {
      await assert.rejects(host.run(`head -c ${MAX_CAPTURE_BYTES + 1} /dev/zero; echo done`, { label: 'a big read', quiet: true, check }), (e: Error) => {
        assert.ok(e instanceof CaptureLimitError, String(e));
        assert.equal(e.stream, 'stdout');
        assert.ok(e.bytes > MAX_CAPTURE_BYTES);
        assert.match(e.message, /^a big read printed more than 32\.0 MiB on stdout \(32\.\d MiB read when it was stopped\), .*: make what it prints smaller/);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
    }
    await assert.rejects(host.run(`head -c ${MAX_CAPTURE_BYTES + 1} /dev/zero >&2`, { quiet: true }), /printed more than 32\.0 MiB on stderr/);
    // Exactly at the limit is whole, and the connection still serves.
    const r = await host.run(`head -c ${MAX_CAPTURE_BYTES} /dev/zero`, { quiet: true });
    assert.equal(r.stdout.length, MAX_CAPTURE_BYTES);
    assert.equal((await host.run('echo ok')).stdout, 'ok\n');
  });

  it('refuses a host log bigger than the limit, naming the file and its size, and reads a smaller one whole', async () => {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-big-log-'));
    try {
      fs.mkdirSync(path.join(stateDir, 'prod'));
      const file = path.join(stateDir, 'prod', 'log.jsonl');
      const line = (i: number) =>
        JSON.stringify({ v: 1, time: '2026-01-01T00:00:00Z', env: 'prod', action: 'monitor', op: `op-${i}`, event: 'started', pad: 'x'.repeat(200) }) + '\n';
      const newest =
        JSON.stringify({ v: 1, time: '2026-01-02T00:00:00Z', env: 'prod', action: 'deploy', op: 'last', event: 'finished', outcome: 'success' }) + '\n';
      const fd = fs.openSync(file, 'w');
      let size = 0;
      for (let i = 0; size <= MAX_CAPTURE_BYTES; i++) size += fs.writeSync(fd, line(i));
      size += fs.writeSync(fd, newest);
      fs.closeSync(fd);
      await assert.rejects(new HostLog(host, stateDir, 'prod').read(), (e: Error) => {
        assert.ok(e instanceof ConfigurationError, String(e));
        assert.ok(
          e.message.startsWith(`the prod host log ${file} is 32.0 MiB (${size} bytes), more than the 32.0 MiB twinstack reads whole: archive it on the host`),
          e.message,
        );
        return true;
      });
      fs.truncateSync(file, 0);
      fs.appendFileSync(file, line(1) + newest);
      const records = await new HostLog(host, stateDir, 'prod').read();
      assert.deepEqual(
        records.map((r) => r.op),
        ['op-1', 'last'],
      );
    } finally {
      fs.rmSync(stateDir, { recursive: true, force: true });
    }
  });
});
