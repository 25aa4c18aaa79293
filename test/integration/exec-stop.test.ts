/**
 * Stopping a docker exec on cancel, in a real container: the wrapped process is signalled, and a
 * pid file left by an exec that has ended never makes the stop signal the process that took its
 * number since (in prod's db container, a PostgreSQL backend).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { COMPOSE_LABELS, dockerExec, EXEC_PID_PREFIX } from '../../src/infra/docker';
import { EnvironmentLock } from '../../src/domain/lock';
import { MemoryLogger } from '../../src/infra/logger';
import { connect } from '../harness/connect';
import { startSshd } from '../harness/sshd';

const IMAGE = 'twinstack-fixture-base:latest';
const RUN = randomBytes(4).toString('hex');
const NAME = `twinstack-test-${RUN}-exec-stop`;
const PROJECT = `twinstack-test-${RUN}-stop`;
const IN_PROJECT = `${PROJECT}-api`;
const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 120_000 }).trim();
const inside = (script: string, container = NAME) => docker('exec', container, 'sh', '-c', script);
const alive = (pid: string, container = NAME) => {
  try {
    inside(`kill -0 ${pid}`, container);
    return true;
  } catch {
    return false;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let skip: string | false = false;
try {
  docker('image', 'inspect', IMAGE);
} catch {
  skip = `the fixture base image ${IMAGE} is missing (bash test/e2e/support/base-image.sh)`;
}

describe('docker exec stopped on cancel', { skip }, () => {
  before(() => {
    docker('run', '-d', '--name', NAME, '--network', 'none', '--label', `twinstack.test-run=${RUN}`, IMAGE, 'sleep', '600');
    // A container of a compose project, as stopWork finds them: by the project's label.
    docker(
      'run',
      '-d',
      '--name',
      IN_PROJECT,
      '--network',
      'none',
      '--label',
      `twinstack.test-run=${RUN}`,
      '--label',
      `${COMPOSE_LABELS.project}=${PROJECT}`,
      IMAGE,
      'sleep',
      '600',
    );
  });
  after(() => {
    for (const name of [NAME, IN_PROJECT]) {
      try {
        docker('rm', '-f', name);
      } catch {
        /* already gone */
      }
    }
  });

  it('signals the wrapped process, and not a process that took the pid of an exec that had ended', async () => {
    const op = `op-${RUN}`;
    // Another process of the container, and two pid files of this operation naming it, as an
    // ended exec leaves them once its number is reused: one with another start time, one in the
    // old form (the pid alone).
    docker('exec', '-d', NAME, 'sh', '-c', 'echo $$ > /tmp/victim; exec sleep 500');
    let victim = '';
    for (let i = 0; i < 50 && !victim; i++, await sleep(100)) victim = inside('cat /tmp/victim 2>/dev/null || true');
    assert.match(victim, /^\d+$/);
    inside(`echo "${victim} 1" > ${EXEC_PID_PREFIX}${op}-1; echo "${victim}" > ${EXEC_PID_PREFIX}${op}-2`);

    // The wrapped command, as twinstack runs it on the host, then the TERM a cancel sends it.
    const child = spawn('bash', ['-c', dockerExec(NAME, ['sleep', '400'])], { env: { ...process.env, TWINSTACK_OP: op }, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    let wrapped = '';
    for (let i = 0; i < 100 && !wrapped; i++, await sleep(100)) {
      wrapped = inside(`for f in ${EXEC_PID_PREFIX}${op}-*; do read -r p _ < "$f"; [ "$p" != ${victim} ] && echo "$p"; done; true`);
    }
    assert.match(wrapped, /^\d+$/, 'the wrapped process wrote no pid file');
    assert.ok(alive(wrapped));
    child.kill('SIGTERM');
    await exited;

    for (let i = 0; i < 50 && alive(wrapped); i++) await sleep(100);
    assert.equal(alive(wrapped), false, 'the wrapped process still runs');
    assert.equal(alive(victim), true, 'the stop signalled a process that had taken the pid of an ended exec');
    assert.equal(inside(`ls ${EXEC_PID_PREFIX}${op}-* 2>/dev/null || true`), '', 'pid files were left');
  });

  it("stopWork ends an operation's live docker exec in its project's containers, and leaves another operation's", async () => {
    const op = `op-${RUN}-stopped`;
    const other = `op-${RUN}-other`;
    const started: Array<{ op: string; exited: Promise<void> }> = [];
    for (const o of [op, other]) {
      const child = spawn('bash', ['-c', dockerExec(IN_PROJECT, ['sleep', '400'])], { env: { ...process.env, TWINSTACK_OP: o }, stdio: 'ignore' });
      started.push({ op: o, exited: new Promise<void>((resolve) => child.on('exit', () => resolve())) });
    }
    const pidOf = async (o: string) => {
      let pid = '';
      for (let i = 0; i < 100 && !pid; i++, await sleep(100)) pid = inside(`cat ${EXEC_PID_PREFIX}${o}-* 2>/dev/null | cut -d' ' -f1 || true`, IN_PROJECT);
      assert.match(pid, /^\d+$/, `the exec of ${o} wrote no pid file`);
      return pid;
    };
    const stopped = await pidOf(op);
    const kept = await pidOf(other);
    assert.ok(alive(stopped, IN_PROJECT) && alive(kept, IN_PROJECT));

    const sshd = await startSshd();
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-stop-'));
    const host = await connect(sshd, {}, new MemoryLogger());
    try {
      fs.mkdirSync(EnvironmentLock.paths(stateDir, 'dev').entriesDir, { recursive: true });
      await EnvironmentLock.stopWork({ host, stateDir, env: 'dev', op, project: PROJECT, graceSeconds: 1 });
    } finally {
      await host.close();
      await sshd.stop();
      fs.rmSync(stateDir, { recursive: true, force: true });
    }

    for (let i = 0; i < 50 && alive(stopped, IN_PROJECT); i++) await sleep(100);
    assert.equal(alive(stopped, IN_PROJECT), false, "the operation's exec still runs in the project's container");
    await started[0].exited;
    assert.equal(alive(kept, IN_PROJECT), true, "another operation's exec was signalled");
    assert.equal(inside(`ls ${EXEC_PID_PREFIX}${op}-* 2>/dev/null || true`, IN_PROJECT), '', "the stopped exec's pid file was left");
    inside(`kill ${kept}`, IN_PROJECT);
    await started[1].exited;
  });
});
