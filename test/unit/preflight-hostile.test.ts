/**
 * The isolation gate refuses hostile dev overlays, as compose itself merges them: each case of
 * preflight-hostile-cases.ts goes through real `docker compose config` (v2; it needs no engine) on
 * this machine, then through the pure checks with paths normalized but not resolved. The cases that
 * only a host can see through (symlinks) are run over SSH in test/integration/preflight.test.ts;
 * here they show why: without the host, such a path looks like dev's own.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Config } from '../../src/domain/config';
import { Environment } from '../../src/domain/environment';
import { addEnvFiles, parseComposeConfig } from '../../src/safety/compose-model';
import { digestEnv, parseEnvFile } from '../../src/domain/env-file';
import type { Finding } from '../../src/safety/findings';
import { checkIsolation, type EnvironmentFacts } from '../../src/safety/isolation';
import { BACKUP_DIR, HOSTILE, HOSTILE_FILE, STATE_DIR, hostileConfig, makeCheckouts, type Dirs } from './preflight-hostile-cases';

const composeMissing = spawnSync('docker', ['compose', 'version', '--short']).status === 0 ? undefined : 'the docker compose v2 plugin is not installed';
let root: string;

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-hostile-'));
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** `<compose> config` (and, for dev, `config --no-interpolate`) run here, in the checkout, as preflight runs them on the host. */
function facts(config: Config, name: 'prod' | 'dev'): EnvironmentFacts {
  const env = new Environment(name, config);
  const run = (...args: string[]) => {
    const r = spawnSync('bash', ['-c', env.compose(...args)], {
      cwd: env.cfg.checkout,
      encoding: 'utf8',
      env: { ...process.env, COMPOSE_PROJECT_NAME: env.project },
    });
    assert.equal(r.status, 0, `${name}: compose ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  };
  const values = parseEnvFile(fs.readFileSync(path.join(env.cfg.checkout, env.cfg.envFile), 'utf8'));
  const digest = digestEnv(values, [...config.preflight['redirect-uri-keys'], ...config.preflight['domain-keys']]);
  const compose = parseComposeConfig(run('config'), env.project, digest.profiles);
  if (name === 'dev') addEnvFiles(compose, run('config', '--no-interpolate'));
  return { name, config: env.cfg, env: digest, compose };
}

function preflight(d: Dirs, overlay: string, extra = '', devPaths?: string[]): Finding[] {
  fs.writeFileSync(path.join(d.dev, HOSTILE_FILE), overlay);
  const config = hostileConfig(d, extra, devPaths);
  return checkIsolation({
    prod: facts(config, 'prod'),
    dev: facts(config, 'dev'),
    settings: config.preflight,
    paths: { stateDir: STATE_DIR, backupDir: BACKUP_DIR },
  }).findings;
}

const show = (fs_: Finding[]) => fs_.map((f) => `${f.severity} ${f.check}: ${f.message}`).join('\n') || '(no findings)';

describe('hostile dev overlays through real docker compose config', { skip: composeMissing }, () => {
  it('passes the Makapix-style overlay with an empty hostile file', () => {
    const d = makeCheckouts(root, 'clean');
    assert.deepEqual(preflight(d, 'services: {}\n'), []);
  });

  it('has enough cases: at least 25 run here', () => {
    assert.ok(HOSTILE.filter((c) => !c.host).length >= 25);
  });

  HOSTILE.forEach((c, i) => {
    it(`${c.host ? 'cannot see without a host' : 'refuses'}: ${c.name}`, () => {
      const d = makeCheckouts(root, `case-${i}`);
      c.setup?.(d);
      const findings = preflight(d, c.overlay(d));
      const want = c.expect(d);
      const hit = findings.find((f) => f.severity === 'error' && f.check === want.check && want.names.every((n) => f.message.includes(n)));
      if (c.host) {
        // Compose prints the symlink's own path, inside dev's checkout: normalized only, it passes.
        assert.equal(hit, undefined, show(findings));
        return;
      }
      assert.ok(hit, `expected a ${want.check} error naming ${want.names.join(' | ')}; got:\n${show(findings)}`);
      assert.ok(hit.fix.length > 0 && !hit.fix.includes('\n'));
      // Compose's output holds every env value: none may reach a finding.
      for (const secret of ['prod-jwt-2b9f6c0d41e87a35c9d1', 'prod-admin-pw-Qm7#x2', 'dev-admin-pw-#not-a-comment'])
        assert.ok(!JSON.stringify(findings).includes(secret), `a secret reached a finding: ${show(findings)}`);
    });
  });

  it('allows what the config lists: host networking, a device, a GPU, a URL context, a path of dev', () => {
    const d = makeCheckouts(root, 'allowed');
    const overlay = [
      'services:',
      '  worker:',
      '    network_mode: host',
      '    networks: !reset []',
      '    devices: ["/dev/dri/renderD128:/dev/dri/renderD128"]',
      '    device_cgroup_rules: ["c 226:* rmw"]',
      '    gpus: all',
      '    build: https://github.com/example/tool.git#main',
      '    image: makapix-dev-worker:local',
      '    volumes: ["/srv/makapix-dev-cache:/cache"]',
    ].join('\n');
    const refused = preflight(d, overlay).filter((f) => f.severity === 'error');
    assert.equal(refused.length, 6, show(refused));
    const allowed = preflight(d, overlay, '  dev-host-network: true\n  dev-devices: [/dev/dri, "c 226:* rmw", gpu]\n  dev-build-urls: true\n', [
      '/var/log/caddy',
      '/srv/makapix-dev-cache',
    ]);
    assert.deepEqual(allowed, []);
  });

  it("refuses a dev-paths entry that holds prod's checkout, and what it would let through", () => {
    const d = makeCheckouts(root, 'wide');
    const parent = path.dirname(d.prod);
    const findings = preflight(d, `services:\n  api:\n    volumes: ["${parent}/makapix-dev/data:/data"]\n`, '', ['/var/log/caddy', parent]);
    assert.deepEqual(
      findings.map((f) => `${f.check}: ${f.message}`),
      [`dev-paths: preflight.dev-paths[1] (${parent}) reaches prod's checkout (${d.prod}), so it cannot count as dev's own`],
    );
  });
});
