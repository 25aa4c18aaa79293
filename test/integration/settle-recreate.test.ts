/**
 * A compose v2 recreate cut in the middle (a cancelled deploy, a lost connection). compose creates
 * the new container as `<first 12 of the old id>_<name>`, stops and removes the old one, then
 * renames the new one; a run cut between those steps leaves the pair, and the next `up` failed on
 * a name conflict (seen in the end-to-end cancel test). Here the pair is made on the real engine as
 * compose leaves it, and the deploy's compose step (composeBuildAndUp), over a real sshd, settles it
 * first and comes up. Asserted on the engine's containers.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { composeBuildAndUp } from '../../src/domain/release';
import { settleRecreate } from '../../src/infra/docker';
import { MemoryLogger } from '../../src/infra/logger';
import type { SshHost } from '../../src/infra/ssh';
import { connect } from '../harness/connect';
import { startSshd, type TestSshd } from '../harness/sshd';

const IMAGE = 'twinstack-fixture-base:latest';
const skip =
  spawnSync('docker', ['compose', 'version']).status !== 0
    ? 'docker compose is not installed'
    : spawnSync('docker', ['image', 'inspect', IMAGE]).status !== 0
      ? `${IMAGE} is missing (scripts/setup-machine.sh)`
      : false;

const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

describe('a compose recreate cut in the middle', { skip }, () => {
  let sshd: TestSshd;
  let host: SshHost;
  let root: string;
  const projects: string[] = [];

  before(async () => {
    sshd = await startSshd();
    host = await connect(sshd);
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-settle-'));
  });
  after(async () => {
    // By the project's label, whatever state a failed test left its containers in.
    for (const p of projects) for (const [id] of containers(p)) spawnSync('docker', ['rm', '-f', id]);
    for (const p of projects) spawnSync('docker', ['network', 'rm', `${p}_default`], { stdio: 'ignore' });
    await host?.close();
    await sshd?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  /** prod's Environment over a checkout of its own, one api service with a fixed container_name; V changes its config. */
  function project(): { env: Environment; name: string; project: string; setV: (v: string) => void } {
    const name = `twinstack-test-${randomBytes(4).toString('hex')}`;
    projects.push(`${name}-prod`);
    const dir = path.join(root, name);
    fs.mkdirSync(path.join(dir, 'deploy/stack'), { recursive: true });
    const base = `services:\n  api:\n    image: ${IMAGE}\n    command: ["sleep", "600"]\n    environment: { V: "\${V}" }\n`;
    fs.writeFileSync(path.join(dir, 'deploy/stack/docker-compose.yml'), base);
    fs.writeFileSync(path.join(dir, 'deploy/stack/docker-compose.prod.yml'), `services:\n  api:\n    container_name: ${name}-api\n`);
    const setV = (v: string) => fs.writeFileSync(path.join(dir, 'deploy/stack/.env.prod'), `V=${v}\n`);
    setV('1');
    const text = fs
      .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
      .replace('checkout: /opt/makapix\n', `checkout: ${dir}\n`)
      .replace('project: makapix-prod\n', `project: ${name}-prod\n`);
    return { env: new Environment('prod', parseConfig(text, 'twinstack.yml')), name: `${name}-api`, project: `${name}-prod`, setV };
  }

  const containers = (p: string) =>
    docker('ps', '-a', '--filter', `label=com.docker.compose.project=${p}`, '--format', '{{.ID}} {{.Names}} {{.State}}')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(' '));

  /** What a cut recreate leaves: the new container created under `<old id>_<name>` with compose's labels, beside the old one. */
  function halfMade(name: string, old: string): string {
    const own = JSON.parse(docker('container', 'inspect', '--format', '{{json .Config.Labels}}', old)) as Record<string, string>;
    const labels = Object.entries(own).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    return docker('create', '--name', `${old.slice(0, 12)}_${name}`, ...labels, IMAGE, 'sleep', '600').slice(0, 12);
  }

  it('removes the half-made new container while the old one still holds the name, then comes up with the new config', async () => {
    const { env, name, project: p, setV } = project();
    await composeBuildAndUp(host, env, false, new MemoryLogger());
    const old = docker('container', 'inspect', '--format', '{{.Id}}', name);
    const leftover = halfMade(name, old);
    setV('2');
    // The step itself, on the engine: the half-made container is gone, the old one untouched.
    await host.run(settleRecreate(p), { quiet: true });
    assert.deepEqual(containers(p), [[old.slice(0, 12), name, 'running']]);
    assert.equal(spawnSync('docker', ['container', 'inspect', leftover]).status, 1);

    await composeBuildAndUp(host, env, false, new MemoryLogger());
    const after = containers(p);
    assert.equal(after.length, 1, JSON.stringify(after));
    assert.deepEqual(after[0].slice(1), [name, 'running']);
    assert.equal(docker('container', 'inspect', '--format', '{{range .Config.Env}}{{println .}}{{end}}', name).split('\n').includes('V=2'), true);
  });

  it('gives the name to the new container when the old one is already gone', async () => {
    const { env, name, project: p } = project();
    await composeBuildAndUp(host, env, false, new MemoryLogger());
    const old = docker('container', 'inspect', '--format', '{{.Id}}', name);
    const leftover = halfMade(name, old);
    docker('rm', '-f', old);
    // The step itself, on the engine: the half-made container gets the name.
    await host.run(settleRecreate(p), { quiet: true });
    assert.deepEqual(containers(p), [[leftover, name, 'created']]);

    const log = new MemoryLogger();
    await composeBuildAndUp(host, env, false, log);
    const after = containers(p);
    assert.equal(after.length, 1, JSON.stringify(after));
    assert.deepEqual(after[0].slice(1), [name, 'running']);
    // The engine has no container left under the temporary name.
    assert.equal(spawnSync('docker', ['container', 'inspect', `${old.slice(0, 12)}_${name}`]).status, 1);
    assert.ok(leftover);
  });
});
