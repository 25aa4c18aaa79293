/**
 * Preflight against a real OpenSSH server: env files read from temporary checkouts with cat over SSH,
 * `docker-compose config` run for real on the host (it needs no Docker engine), and the HTTP checks
 * against small servers on 127.0.0.1. No env file value may reach the log, even at debug level.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runPreflight } from '../../src/actions/preflight/preflight';
import { parseConfig, type Config } from '../../src/domain/config';
import { MemoryLogger } from '../../src/infra/logger';
import type { Finding } from '../../src/safety/findings';
import type { SshHost } from '../../src/infra/ssh';
import { parseEnvFile } from '../../src/domain/env-file';
import { connect } from '../harness/connect';
import { HOSTILE, HOSTILE_FILE, hostileConfig, makeCheckouts } from '../unit/preflight-hostile-cases';
import { startSshd, type TestSshd } from '../harness/sshd';

const fixture = path.join(__dirname, '../fixtures/preflight/stack');
const composeMissing =
  spawnSync('docker-compose', ['version', '--short']).status === 0 ? undefined : 'docker-compose (v1) is not installed: apt-get install docker-compose';

let sshd: TestSshd;
let host: SshHost;
let root: string;
const log = new MemoryLogger();

/** The secret values of both fixture env files (passwords, secrets, keys, client ids): none may be logged. */
const values = ['.env.prod', '.env.dev'].flatMap((f) =>
  [...parseEnvFile(fs.readFileSync(path.join(fixture, f), 'utf8'))]
    .filter(([k, v]) => /PASSWORD|SECRET|_KEY|CLIENT_ID/.test(k) && v.length > 0)
    .map(([, v]) => v),
);

function checkout(name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(path.join(dir, 'deploy'), { recursive: true });
  fs.cpSync(fixture, path.join(dir, 'deploy/stack'), { recursive: true });
  return dir;
}

/** Makapix's worker reads the shared proxy's logs (/var/log/caddy, read-only): its config lists that path as dev's. */
const DEV_PATHS = '  dev-paths: [/var/log/caddy]\n';

function config(prod: string, dev: string, extra = '', urls = ['https://makapix.club', 'https://development.makapix.club']): Config {
  extra = extra.includes('preflight:\n') ? extra.replace('preflight:\n', `preflight:\n${DEV_PATHS}`) : `${extra}\npreflight:\n${DEV_PATHS}`;
  return parseConfig(
    `compose-command: docker-compose
environments:
  prod:
    checkout: ${prod}
    project: makapix-prod
    compose-files: [deploy/stack/docker-compose.yml, deploy/stack/docker-compose.prod.yml]
    env-file: deploy/stack/.env.prod
    url: ${urls[0]}
    database: {name: makapix, user: owner}
    vault: /mnt/vault-1
  dev:
    checkout: ${dev}
    project: makapix-dev
    compose-files: [deploy/stack/docker-compose.yml, deploy/stack/docker-compose.dev.yml]
    env-file: deploy/stack/.env.dev
    url: ${urls[1]}
    database: {name: makapix_dev, user: owner, port: 5433}
    vault: /mnt/vault-dev
${extra}`,
    'twinstack.yml',
  );
}

/**
 * The findings but db-init's: the Makapix-shaped fixture's db, like Makapix's, runs without an init,
 * so every run warns of it for both environments (asserted in the first test).
 */
const others = (r: { findings: Finding[] }) => r.findings.filter((f) => f.check !== 'db-init');

function assertNothingLeaked(text: string): void {
  assert.equal(values.length, 11, 'the leak check has the secrets to look for');
  for (const v of values) assert.ok(!text.includes(v), `an env file value reached the output: ${v}`);
}

before(async () => {
  sshd = await startSshd();
  host = await connect(sshd, {}, log);
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-preflight-'));
});
after(async () => {
  await host?.close();
  await sshd?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('preflight over SSH', { skip: composeMissing }, () => {
  it('passes the Makapix-style checkouts, reading env files and running compose config on the host', async () => {
    const c = config(checkout('ok-prod'), checkout('ok-dev'));
    const r = await runPreflight(host, c, log);
    // Its one complaint: each environment's db runs without an init (a warning, as for Makapix's own db).
    assert.deepEqual(
      r.findings.map((f) => [f.check, f.environment, f.severity, f.fix]),
      [
        ['db-init', 'dev', 'warning', 'add init: true to service db in deploy/stack/docker-compose.yml'],
        ['db-init', 'prod', 'warning', 'add init: true to service db in deploy/stack/docker-compose.yml'],
      ],
    );
    assert.equal(r.errors, 0);
    assert.deepEqual(r.ran, { envFiles: true, compose: true, http: false });
    assert.equal(r.devLimits?.services, 6);
    assert.ok(r.host && r.host.cpus >= 1 && r.host.memoryBytes > 0);
    assert.match(log.text, /prod: 7 services in the merged compose configuration/);
    assert.match(log.text, /dev: 6 services in the merged compose configuration \(caddy not started: inactive profile\)/);
    assertNothingLeaked(log.text + JSON.stringify(r));
    // Secret-looking values read from the env files are masked in whatever the run logs later.
    const jwt = parseEnvFile(fs.readFileSync(path.join(checkout('ok-prod'), 'deploy/stack/.env.prod'), 'utf8')).get('JWT_SECRET_KEY') as string;
    assert.ok(jwt && jwt.length >= 6);
    log.info(`a compose build printed ${jwt}`);
    assert.ok(!log.text.includes(jwt), 'an env secret printed later reached the log');
    assert.equal(log.redact(`x ${jwt} y`), 'x *** y');
  });

  it("catches a shared secret and a shared container name in dev's real files", async () => {
    const dev = checkout('bad-dev');
    const envFile = path.join(dev, 'deploy/stack/.env.dev');
    fs.writeFileSync(envFile, fs.readFileSync(envFile, 'utf8').replace(/^export JWT_SECRET_KEY=.*$/m, "JWT_SECRET_KEY='prod-jwt-2b9f6c0d41e87a35c9d1'"));
    const overlay = path.join(dev, 'deploy/stack/docker-compose.dev.yml');
    fs.writeFileSync(overlay, fs.readFileSync(overlay, 'utf8').replace('container_name: makapix-dev-db', 'container_name: makapix-prod-db'));
    const r = await runPreflight(host, config(checkout('bad-prod'), dev), log);
    assert.deepEqual(
      others(r).map((f) => [f.check, f.message]),
      [
        [
          'container-names',
          "container name makapix-prod-db is used by prod's db and dev's db: the second project to start replaces or fails on the first's container",
        ],
        ['must-differ', "JWT_SECRET_KEY has the same value in prod's and dev's env files"],
      ],
    );
    assert.equal(r.errors, 2);
    assertNothingLeaked(log.text + JSON.stringify(r));
  });

  it('explains, one line each, what the rolling services of promote.rolling must change in prod', async () => {
    const c = config(checkout('rolling-prod'), checkout('rolling-dev'), 'promote: { rolling: [api, web, frontend] }');
    const r = await runPreflight(host, c, log);
    assert.deepEqual(
      r.findings.filter((f) => f.check === 'rolling').map((f) => `${f.severity} ${f.environment}: ${f.message}. Fix: ${f.fix}`),
      [
        'error prod: rolling service api sets container_name makapix-prod-api: its new container cannot start beside the old one under the same name. Fix: remove container_name from api',
        'error prod: rolling service web sets container_name makapix-prod-web: its new container cannot start beside the old one under the same name. Fix: remove container_name from web',
        "error prod: promote.rolling names frontend, which prod's compose configuration does not define (services: api, cache, caddy, db, mqtt, web, worker). Fix: correct promote.rolling, or define frontend in prod's compose files",
        'warning prod: rolling service api has no healthcheck in the compose files: a rolling replacement refuses a new container whose image has none either. Fix: add a healthcheck to api in the compose file (or be sure its image has a HEALTHCHECK)',
        'warning prod: rolling service web has no healthcheck in the compose files: a rolling replacement refuses a new container whose image has none either. Fix: add a healthcheck to web in the compose file (or be sure its image has a HEALTHCHECK)',
      ],
    );
    assert.ok(
      others(r).every((f) => f.check === 'rolling'),
      JSON.stringify(r.findings),
    );
  });

  it('reports a missing env file and a compose file that does not load, without values', async () => {
    const prod = checkout('broken-prod');
    fs.rmSync(path.join(prod, 'deploy/stack/.env.prod'));
    const dev = checkout('broken-dev');
    fs.appendFileSync(path.join(dev, 'deploy/stack/docker-compose.dev.yml'), '\n  api:\n    ports: [\n');
    const r = await runPreflight(host, config(prod, dev), log);
    const byCheck = (c: string) => r.findings.filter((f) => f.check === c);
    assert.equal(byCheck('env-file').length, 1);
    assert.match(
      byCheck('env-file')[0].message,
      /^prod's env file \/.+\/broken-prod\/deploy\/stack\/\.env\.prod could not be read: No such file or directory$/,
    );
    const compose = byCheck('compose-config').filter((f) => f.severity === 'error');
    assert.deepEqual(
      compose.map((f) => f.environment),
      ['dev', 'prod'],
    );
    assert.match(compose[0].message, /^dev's compose configuration does not load \(exit 1\): /);
    // Isolation checks that need both sides are skipped, not guessed.
    assert.deepEqual(r.ran, { envFiles: false, compose: false, http: false });
    assertNothingLeaked(log.text + JSON.stringify(r));
  });
});

const composeV2Missing = spawnSync('docker', ['compose', 'version', '--short']).status === 0 ? undefined : 'the docker compose v2 plugin is not installed';

describe('hostile dev overlays, resolved on the host over SSH', { skip: composeV2Missing }, () => {
  it('passes the Makapix-style overlay (docker compose v2, env_file lists read, paths resolved)', async () => {
    const d = makeCheckouts(root, 'hostile-clean');
    fs.writeFileSync(path.join(d.dev, HOSTILE_FILE), 'services: {}\n');
    const before = log.text.length;
    const r = await runPreflight(host, hostileConfig(d), log);
    assert.deepEqual(others(r), []);
    const text = log.text.slice(before);
    // dev's env file came from config --no-interpolate (v2 drops env_file from config) and was resolved with the rest, in one call.
    assert.match(text, /\$ realpath -m -z -- .*\/makapix-dev\/deploy\/stack\/\.env\.dev /);
    assert.equal(text.match(/\$ realpath /g)?.length, 1);
  });

  HOSTILE.forEach((c, i) => {
    it(`refuses: ${c.name}`, async () => {
      const d = makeCheckouts(root, `hostile-${i}`);
      c.setup?.(d);
      fs.writeFileSync(path.join(d.dev, HOSTILE_FILE), c.overlay(d));
      const r = await runPreflight(host, hostileConfig(d), log);
      const want = c.expect(d);
      const show = r.findings.map((f) => `${f.severity} ${f.check}: ${f.message}`).join('\n');
      const hit = r.findings.find((f) => f.severity === 'error' && f.check === want.check && want.names.every((n) => f.message.includes(n)));
      assert.ok(hit, `expected a ${want.check} error naming ${want.names.join(' | ')}; got:\n${show}`);
      assertNothingLeaked(log.text + JSON.stringify(r));
    });
  });

  it('compares against the real path of a symlinked dev checkout, and refuses a symlink out of it', async () => {
    const d = makeCheckouts(root, 'hostile-linked');
    // dev's checkout reached through a symlink, as /opt/makapix-dev -> /srv/makapix-dev would be.
    const linked = path.join(root, 'hostile-linked', 'dev-link');
    fs.symlinkSync(d.dev, linked);
    fs.mkdirSync(path.join(d.dev, 'data'));
    fs.symlinkSync('/root', path.join(d.dev, 'deploy/stack/home'));
    fs.writeFileSync(path.join(d.dev, HOSTILE_FILE), 'services:\n  api:\n    volumes: [../../data:/data, ./home:/home-root]\n');
    const r = await runPreflight(host, hostileConfig({ prod: d.prod, dev: linked }), log);
    assert.deepEqual(
      others(r).map((f) => `${f.check}: ${f.message}`),
      [
        `dev-paths: dev service api: volumes[2] binds ${linked}/deploy/stack/home (resolved /root), outside dev's own paths (${linked}, /mnt/vault-dev, /var/log/caddy)`,
      ],
    );
  });
});

interface Site {
  url: string;
  close(): Promise<void>;
}

async function serve(handler: http.RequestListener): Promise<Site> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

const publicSite: http.RequestListener = (req, res) => {
  if (req.url === '/robots.txt') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('User-agent: *\nDisallow: /admin\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end('<!doctype html><title>Makapix Club</title>');
};

const privateSite: http.RequestListener = (_req, res) => {
  res.writeHead(401, { 'www-authenticate': 'Basic realm="dev"', 'x-robots-tag': 'noindex, nofollow' });
  res.end();
};

describe('HTTP checks from the host', { skip: composeMissing }, () => {
  it('passes a public prod and a private dev', async () => {
    const [prod, dev] = await Promise.all([serve(publicSite), serve(privateSite)]);
    try {
      const r = await runPreflight(
        host,
        config(checkout('http-ok-prod'), checkout('http-ok-dev'), 'preflight:\n  http: {enabled: true, prod-pages: [/, /about]}\n', [prod.url, dev.url]),
        log,
      );
      assert.deepEqual(others(r), []);
      assert.equal(r.ran.http, true);
    } finally {
      await Promise.all([prod.close(), dev.close()]);
    }
  });

  it('catches a prod that hides from search engines and a dev open to anyone', async () => {
    const hidden: http.RequestListener = (req, res) => {
      if (req.url === '/robots.txt') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('User-agent: *\nDisallow: /\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html', 'x-robots-tag': 'noindex' });
      res.end('<!doctype html><title>Makapix Club</title>');
    };
    const [prod, dev] = await Promise.all([serve(hidden), serve(publicSite)]);
    try {
      const r = await runPreflight(
        host,
        config(checkout('http-bad-prod'), checkout('http-bad-dev'), 'preflight:\n  http: {enabled: true}\n', [prod.url, dev.url]),
        log,
      );
      assert.deepEqual(
        others(r).map((f) => [f.environment, f.severity, f.message]),
        [
          ['dev', 'error', `${dev.url}/ answered 200 without credentials: dev is open to anyone`],
          ['dev', 'error', `${dev.url}/ carries no X-Robots-Tag: noindex`],
          ['prod', 'error', `${prod.url}/robots.txt tells every crawler "Disallow: /": prod vanishes from search engines`],
          ['prod', 'error', `${prod.url}/ answers with X-Robots-Tag: noindex`],
        ],
      );
    } finally {
      await Promise.all([prod.close(), dev.close()]);
    }
  });

  it('warns, without failing, when a site does not answer', async () => {
    const prod = await serve(publicSite);
    const gone = await serve(privateSite);
    await gone.close();
    try {
      const r = await runPreflight(
        host,
        config(checkout('http-gone-prod'), checkout('http-gone-dev'), 'preflight:\n  http: {enabled: true, timeout-seconds: 5}\n', [prod.url, gone.url]),
        log,
      );
      assert.equal(r.errors, 0);
      assert.deepEqual(
        others(r).map((f) => [f.environment, f.severity]),
        [['dev', 'warning']],
      );
      assert.match(others(r)[0].message, /could not be checked: curl: \(7\)/);
    } finally {
      await prod.close();
    }
  });
});
