/**
 * Stopping a docker exec on cancel, in a real container: the wrapped process is signalled, and a
 * pid file left by an exec that has ended never makes the stop signal the process that took its
 * number since (in prod's db container, a PostgreSQL backend).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { dockerExec, EXEC_PID_PREFIX } from '../../src/infra/docker';

const IMAGE = 'twinstack-fixture-base:latest';
const RUN = randomBytes(4).toString('hex');
const NAME = `twinstack-test-${RUN}-exec-stop`;
const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', timeout: 120_000 }).trim();
const inside = (script: string) => docker('exec', NAME, 'sh', '-c', script);
const alive = (pid: string) => {
  try {
    inside(`kill -0 ${pid}`);
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
  });
  after(() => {
    try {
      docker('rm', '-f', NAME);
    } catch {
      /* already gone */
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
});
