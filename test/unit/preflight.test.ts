/**
 * Preflight's isolation checks as specifications: Makapix-style env files and merged compose
 * configurations (captured from docker-compose 1.29) pass, and one broken variant per check is
 * caught with a message that names the key or service and never shows an env file value.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { stringify, parse as parseYaml } from 'yaml';
import { preflightSummary, unsetVariables, type PreflightReport } from '../../src/actions/preflight/preflight';
import { parseConfig, type Config } from '../../src/domain/config';
import { caddyDomains, hasBasicAuthLabel, hasNoindexLabel, parseComposeConfig, parseMount, parsePort } from '../../src/safety/compose-model';
import { DEFAULT_MUST_DIFFER } from '../../src/config/checks';
import { EnvFileError, digestEnv, hostOf, parseEnvFile, scrub, sha256 } from '../../src/domain/env-file';
import { counts, type Finding } from '../../src/safety/findings';
import { disallowsEverything, judgeProbe, noindexOf, parseCurlResponse } from '../../src/safety/http-probe';
import { checkIsolation, parseHostTotals, type HostTotals, type IsolationResult } from '../../src/safety/isolation';
import { parseBytes, parseCpus } from '../../src/infra/units';

const dir = path.join(__dirname, '../fixtures/preflight');
const read = (p: string) => fs.readFileSync(path.join(dir, p), 'utf8');
const PROD_ENV = read('stack/.env.prod');
const DEV_ENV = read('stack/.env.dev');
const PROD_CONFIG = read('config/prod.v1.yml');
const DEV_CONFIG = read('config/dev.v1.yml');
const BASE_CONFIG = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');
const HOST: HostTotals = { cpus: 8, memoryBytes: 16 * 1024 ** 3 };

/** Every value in both fixture env files that is a secret: none may appear in any output. */
const SECRETS = [
  'prod-admin-pw-Qm7#x2',
  'prod-worker-pw-f81c',
  'prod-jwt-2b9f6c0d41e87a35c9d1',
  'Ov23liPRODfixture01',
  'prod-gh-secret-a4e0c7d2b19f',
  're_prod_fixture_7c2d91',
  'dev-admin-pw-#not-a-comment',
  'dev-worker-pw-93ab',
  'dev-jwt-"e5a1f09c7b3d62"',
  'e5a1f09c7b3d62',
  'Ov23liDEVfixture02',
  'dev-gh-secret-0f3b9a6e2c51',
  '$2a$14$HuDhfHqjGJJ3Mm9pamHDwum90R',
];

/**
 * The parts of a merged compose configuration (as `docker-compose config` prints it) that the
 * variants below read or edit, typed as the fixtures have them.
 */
interface ComposePort {
  published?: number | string;
  target?: number;
  protocol?: string;
}
interface ComposeService {
  container_name?: string;
  network_mode?: string;
  environment: Record<string, string | number | boolean>;
  ports: Array<ComposePort | string>;
  volumes: string[];
  labels: Record<string, string>;
  deploy?: { resources: { limits: { cpus?: number | string; memory?: number | string } } };
  build?: { context: string };
  privileged?: boolean;
  pid?: string;
  cap_add?: string[];
  devices?: string[];
}
interface ComposeDoc {
  services: Record<string, ComposeService>;
  volumes: Record<string, { name?: string }>;
  networks: Record<string, { name?: string }>;
}

type Edit = (doc: ComposeDoc) => void;

interface Variant {
  prodEnv?: string;
  devEnv?: string;
  prodCompose?: Edit;
  devCompose?: Edit;
  config?: string;
  host?: HostTotals;
}

function editYaml(text: string, edit?: Edit): string {
  if (!edit) return text;
  const doc = parseYaml(text) as ComposeDoc;
  edit(doc);
  return stringify(doc);
}

/** Makapix's worker reads the shared proxy's logs (/var/log/caddy, read-only): its config lists that path as dev's. */
const MAKAPIX_DEV_PATHS = '  dev-paths: [/var/log/caddy]\n';

function configWith(extra = ''): Config {
  const withPaths = extra.includes('preflight:\n')
    ? extra.replace('preflight:\n', `preflight:\n${MAKAPIX_DEV_PATHS}`)
    : `${extra}\npreflight:\n${MAKAPIX_DEV_PATHS}`;
  return parseConfig(BASE_CONFIG + withPaths, 'makapix.yml');
}

function check(v: Variant = {}): IsolationResult & { config: Config } {
  const config = configWith(v.config);
  const s = config.preflight;
  const hostKeys = [...s['redirect-uri-keys'], ...s['domain-keys']];
  const prodDigest = digestEnv(parseEnvFile(v.prodEnv ?? PROD_ENV), hostKeys);
  const devDigest = digestEnv(parseEnvFile(v.devEnv ?? DEV_ENV), hostKeys);
  const result = checkIsolation({
    prod: {
      name: 'prod',
      config: config.environments.prod,
      env: prodDigest,
      compose: parseComposeConfig(editYaml(PROD_CONFIG, v.prodCompose), 'makapix-prod', prodDigest.profiles),
    },
    dev: {
      name: 'dev',
      config: config.environments.dev,
      env: devDigest,
      compose: parseComposeConfig(editYaml(DEV_CONFIG, v.devCompose), 'makapix-dev', devDigest.profiles),
    },
    settings: s,
    host: v.host ?? HOST,
    paths: { stateDir: '/var/lib/twinstack', backupDir: '/var/backups/twinstack' },
  });
  return { ...result, config };
}

function report(r: IsolationResult): PreflightReport {
  const dev = parseComposeConfig(DEV_CONFIG, 'makapix-dev').services;
  const devLimits = { cpus: dev.reduce((a, x) => a + (x.cpus ?? 0), 0), memoryBytes: dev.reduce((a, x) => a + (x.memoryBytes ?? 0), 0), services: dev.length };
  return { findings: r.findings, notes: r.notes, ...counts(r.findings), host: HOST, devLimits, ran: { envFiles: true, compose: true, http: false } };
}

/** Asserts exactly one finding of `check` with a message matching `re`, and no secret anywhere in what is reported. */
function caught(r: IsolationResult & { config: Config }, checkName: string, re: RegExp, severity: Finding['severity'] = 'error'): Finding {
  const hits = r.findings.filter((f) => f.check === checkName && f.severity === severity);
  assert.equal(hits.length, 1, `expected one ${severity} from ${checkName}, got: ${JSON.stringify(r.findings, null, 1)}`);
  assert.match(hits[0].message, re);
  assert.ok(hits[0].fix.length > 0);
  assertNoSecrets(JSON.stringify(r.findings) + preflightSummary(report(r), r.config).toMarkdown());
  return hits[0];
}

function assertNoSecrets(text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `a secret value appears in the output: ${s}`);
}

const replaceLine = (text: string, key: string, line: string) => {
  const re = new RegExp(`^(export )?${key}=.*$`, 'm');
  assert.match(text, re, `fixture has no ${key} line`);
  return text.replace(re, line);
};

describe('env files are read the way docker compose reads them', () => {
  it('gives every value of the Makapix-style env files exactly as docker-compose printed it', () => {
    // The captured `config` output holds each service's environment as compose parsed the env file.
    for (const [envText, configText, service] of [
      [PROD_ENV, PROD_CONFIG, 'api'],
      [DEV_ENV, DEV_CONFIG, 'api'],
    ] as const) {
      const ours = parseEnvFile(envText);
      const theirs = (parseYaml(configText) as ComposeDoc).services[service].environment;
      for (const [k, v] of ours) assert.equal(String(theirs[k]), v, `${k} differs from compose's reading`);
      assert.ok(ours.size >= 20);
    }
  });

  it('handles comments, export, quotes, escapes, expansion and empty values', () => {
    const env = parseEnvFile(
      [
        '\uFEFF# a comment',
        '   # an indented comment',
        'export A=1',
        'B = two words  # comment',
        'C="quoted # not a comment"',
        "D='single $A \\n literal'",
        'E="line\\nbreak \\"q\\" \\$A $$A"',
        'F=${A}-$A-${MISSING:-fallback}-${A:+set}-${EMPTY:-x}',
        'EMPTY=',
        'G=""',
        'H="multi',
        'line"',
        'I: yaml-style',
        'INHERITED',
        'J=a#b',
        '1BAD=ignored',
      ].join('\r\n'),
    );
    assert.equal(env.get('A'), '1');
    assert.equal(env.get('B'), 'two words');
    assert.equal(env.get('C'), 'quoted # not a comment');
    assert.equal(env.get('D'), 'single $A \\n literal');
    assert.equal(env.get('E'), 'line\nbreak "q" $A $A');
    assert.equal(env.get('F'), '1-1-fallback-set-x');
    assert.equal(env.get('EMPTY'), '');
    assert.equal(env.get('G'), '');
    assert.equal(env.get('H'), 'multi\nline');
    assert.equal(env.get('I'), 'yaml-style');
    assert.equal(env.has('INHERITED'), false);
    assert.equal(env.get('J'), 'a#b');
    assert.equal(env.has('1BAD'), false);
  });

  it('reports a broken line by number and never by value', () => {
    assert.throws(
      () => parseEnvFile('OK=1\nTOKEN="s3cr3t-unclosed\n'),
      (e: Error) => {
        assert.ok(e instanceof EnvFileError);
        assert.match(e.message, /^line 2: a quoted value is not closed$/);
        return true;
      },
    );
    assert.throws(
      () => parseEnvFile('bad key=s3cr3t'),
      (e: Error) => !e.message.includes('s3cr3t'),
    );
    // A secret pasted on a line of its own, and one holding "${": the error names the line only.
    for (const text of ['OK=1\nghp_pasted/Token+With spaces\n', 'OK=1\nP=${ab&cd}\n']) {
      assert.throws(
        () => parseEnvFile(text),
        (e: Error) => {
          assert.ok(e instanceof EnvFileError);
          assert.match(e.message, /^line 2: /);
          assert.ok(!/ghp_|pasted|ab&cd/.test(e.message), e.message);
          return true;
        },
      );
    }
    assert.throws(() => parseEnvFile('X=${NOPE:?needs it}'), /line 1: NOPE is required/);
  });

  it('keeps only hashes of the values', () => {
    const d = digestEnv(parseEnvFile(DEV_ENV), ['GITHUB_REDIRECT_URI', 'WEB_DOMAIN']);
    assert.equal(d.hashes.get('JWT_SECRET_KEY'), sha256('dev-jwt-"e5a1f09c7b3d62"'));
    assert.equal(d.hosts.get('GITHUB_REDIRECT_URI'), sha256('development.makapix.club'));
    assert.equal(d.hosts.get('WEB_DOMAIN'), sha256('development.makapix.club'));
    assertNoSecrets(JSON.stringify([...d.hashes, ...d.hosts]));
  });

  it('finds the host a value names', () => {
    assert.equal(hostOf('https://Development.Makapix.club/api/cb?x=1'), 'development.makapix.club');
    assert.equal(hostOf('makapix.club'), 'makapix.club');
    assert.equal(hostOf('noreply@notification.makapix.club'), 'notification.makapix.club');
    assert.equal(hostOf('not a host'), undefined);
  });

  it('scrubs env values out of text that came back from the host', () => {
    assert.equal(scrub('error near prod-jwt-2b9f6c0d41e87a35c9d1 in file', ['prod-jwt-2b9f6c0d41e87a35c9d1', 'db']), 'error near *** in file');
  });
});

describe('merged compose configurations', () => {
  it('reads the v1 printout: services, inactive profiles, names, ports, mounts, limits', () => {
    const dev = parseComposeConfig(DEV_CONFIG, 'makapix-dev');
    assert.deepEqual(dev.inactive, ['caddy']);
    assert.deepEqual(
      dev.services.map((s) => s.name),
      ['api', 'cache', 'db', 'mqtt', 'web', 'worker'],
    );
    const db = dev.services.find((s) => s.name === 'db')!;
    assert.equal(db.containerName, 'makapix-dev-db');
    assert.deepEqual(db.ports, [{ hostIp: '127.0.0.1', port: 5433, protocol: 'tcp' }]);
    assert.deepEqual(db.mounts, [{ type: 'volume', source: 'pg_data_dev', target: '/var/lib/postgresql/data', readOnly: false }]);
    assert.equal(db.cpus, 0.5);
    assert.equal(db.memoryBytes, 512 * 1024 ** 2);
    const worker = dev.services.find((s) => s.name === 'worker')!;
    assert.equal(worker.cpus, 0.3);
    assert.equal(worker.memoryBytes, 384 * 1024 ** 2);
    assert.deepEqual(dev.services.find((s) => s.name === 'mqtt')!.ports, [
      { hostIp: '127.0.0.1', port: 1884, protocol: 'tcp' },
      { hostIp: '', port: 8884, protocol: 'tcp' },
    ]);
    assert.equal(dev.volumeNames.get('pg_data_dev'), 'makapix-dev_pg_data');
    assert.equal(dev.volumeNames.get('cache_data'), 'makapix-dev_cache_data');
    assert.equal(dev.volumeNames.get('caddy_data'), 'makapix-stack_caddy_data');
  });

  it('reads the v2 format: long-form ports and volumes, sizes in bytes', () => {
    const dev = parseComposeConfig(read('config/dev.v2-format.yml'), 'makapix-dev');
    const db = dev.services.find((s) => s.name === 'db')!;
    assert.deepEqual(db.ports, [{ hostIp: '127.0.0.1', port: 5433, protocol: 'tcp' }]);
    assert.equal(db.memoryBytes, 536870912);
    const worker = dev.services.find((s) => s.name === 'worker')!;
    assert.equal(worker.memoryBytes, 402653184);
    assert.deepEqual(worker.mounts[1], { type: 'bind', source: '/var/log/caddy', target: '/var/log/caddy', readOnly: true });
    assert.deepEqual(dev.services.find((s) => s.name === 'mqtt')!.ports, [{ hostIp: '', port: 8884, protocol: 'tcp' }]);
    const web = dev.services.find((s) => s.name === 'web')!;
    assert.ok(hasNoindexLabel(web.labels));
    assert.ok(hasBasicAuthLabel(web.labels), "Caddy 2.8's basic_auth counts");
  });

  it('parses every port and mount notation', () => {
    assert.deepEqual(parsePort('8080:80'), [{ hostIp: '', port: 8080, protocol: 'tcp' }]);
    assert.deepEqual(parsePort('[::1]:53:53/udp'), [{ hostIp: '::1', port: 53, protocol: 'udp' }]);
    assert.deepEqual(
      parsePort('9000-9001:9000-9001').map((p) => p.port),
      [9000, 9001],
    );
    assert.deepEqual(parsePort('3000'), []);
    assert.deepEqual(parsePort({ target: 80 }), []);
    assert.deepEqual(parseMount('/srv/a:/a:ro,z'), { type: 'bind', source: '/srv/a', target: '/a', readOnly: true });
    assert.equal(parseMount('/anonymous'), undefined);
    assert.equal(parseBytes('1.5g'), 1.5 * 1024 ** 3);
    assert.equal(parseBytes('2G'), 2 * 1024 ** 3);
    assert.equal(parseBytes('lots'), undefined);
    assert.equal(parseCpus('1.0'), 1);
  });

  it('reads the domains a service claims through caddy labels', () => {
    assert.deepEqual(
      caddyDomains({ caddy: 'makapix.club, www.makapix.club', caddy_1: 'https://vault.makapix.club:443', 'caddy.reverse_proxy': '{{upstreams 3000}}' }),
      ['makapix.club', 'vault.makapix.club', 'www.makapix.club'],
    );
    assert.ok(hasNoindexLabel({ 'caddy.header': 'X-Robots-Tag "noindex, nofollow"' }));
    assert.ok(!hasNoindexLabel({ 'caddy.header.X-Robots-Tag': 'all' }));
  });
});

describe('the Makapix-style fixture passes every check', () => {
  it('has no errors and no warnings', () => {
    const r = check();
    assert.deepEqual(r.findings, []);
    assertNoSecrets(preflightSummary(report(r), r.config).toMarkdown());
  });

  it('allows the shared proxy in prod to read both vaults', () => {
    const prod = parseComposeConfig(PROD_CONFIG, 'makapix-prod');
    const caddy = prod.services.find((s) => s.name === 'caddy')!;
    assert.ok(caddy.mounts.some((m) => m.source === '/mnt/vault-dev' && m.readOnly));
    assert.equal(check().findings.filter((f) => f.check === 'vault-mounts').length, 0);
  });

  it('uses the design defaults when the config has no preflight section', () => {
    const s = configWith().preflight;
    assert.deepEqual(s['must-differ'], DEFAULT_MUST_DIFFER);
    assert.equal(s['dev-cpus'], 2);
    assert.equal(s['dev-memory'], 2 * 1024 ** 3);
    assert.equal(s.http.enabled, false);
  });
});

describe('each broken variant is caught, naming the key or service', () => {
  it('must-differ: a secret shared by both env files', () => {
    const r = check({ devEnv: replaceLine(DEV_ENV, 'JWT_SECRET_KEY', "JWT_SECRET_KEY='prod-jwt-2b9f6c0d41e87a35c9d1'") });
    const f = caught(r, 'must-differ', /^JWT_SECRET_KEY has the same value in prod's and dev's env files$/);
    assert.match(f.fix, /deploy\/stack\/\.env\.dev/);
  });

  it('must-differ: the same database name, host and port', () => {
    const r = check({ devEnv: replaceLine(DEV_ENV, 'DB_DATABASE', 'DB_DATABASE=makapix') });
    caught(r, 'must-differ', /^DB_DATABASE, DB_HOST and DB_PORT are the same in prod's and dev's env files, so both point at one database/);
  });

  it('must-differ: a key set in one file only is a warning', () => {
    const r = check({ devEnv: replaceLine(DEV_ENV, 'VAULT_DOMAIN', '') });
    caught(r, 'must-differ', /^VAULT_DOMAIN is set in prod's env file but not in dev's/, 'warning');
    assert.equal(counts(r.findings).errors, 0);
  });

  it('environment-flag: dev without ENVIRONMENT=development', () => {
    caught(
      check({ devEnv: replaceLine(DEV_ENV, 'ENVIRONMENT', 'ENVIRONMENT=staging') }),
      'environment-flag',
      /dev's env file does not set ENVIRONMENT=development/,
    );
    caught(
      check({ prodEnv: replaceLine(PROD_ENV, 'ENVIRONMENT', 'ENVIRONMENT=development') }),
      'environment-flag',
      /prod's env file sets ENVIRONMENT=development/,
    );
  });

  it("oauth-redirect: dev's callback on prod's domain", () => {
    const r = check({ devEnv: replaceLine(DEV_ENV, 'GITHUB_REDIRECT_URI', 'GITHUB_REDIRECT_URI=https://makapix.club/api/auth/github/dev-callback') });
    caught(r, 'oauth-redirect', /^dev's GITHUB_REDIRECT_URI sends users back to prod's domain$/);
  });

  it("oauth-redirect: prod's callback on a foreign host", () => {
    const r = check({ prodEnv: replaceLine(PROD_ENV, 'GITHUB_REDIRECT_URI', 'GITHUB_REDIRECT_URI=https://staging.example.org/cb') });
    caught(r, 'oauth-redirect', /prod's GITHUB_REDIRECT_URI points at a host that is not prod's domain \(expected makapix\.club/);
  });

  it('port-variables: the same port key while sharing the host network', () => {
    const hostNet: Edit = (d) => (d.services.api.network_mode = 'host');
    const r = check({ prodEnv: `${PROD_ENV}API_PORT=18410\n`, devEnv: `${DEV_ENV}API_PORT=18410\n`, devCompose: hostNet });
    caught(r, 'port-variables', /^API_PORT is the same/, 'warning');
    assert.ok(r.notes.some((n) => /network_mode: host/.test(n)));
  });

  it('container-names: a container name used by both projects', () => {
    const r = check({ devCompose: (d) => (d.services.db.container_name = 'makapix-prod-db') });
    caught(r, 'container-names', /^container name makapix-prod-db is used by prod's db and dev's db/);
  });

  it("volume-names: dev's database volume named like prod's", () => {
    const r = check({ devCompose: (d) => (d.volumes.pg_data_dev.name = 'makapix_pg_data') });
    caught(r, 'volume-names', /^volume makapix_pg_data is mounted by prod's db and dev's db/);
  });

  it('volume-names: an unnamed volume is told apart by its project', () => {
    // cache_data has no name: each project gets <project>_cache_data.
    assert.equal(check().findings.filter((f) => f.check === 'volume-names').length, 0);
  });

  it('host-ports: the same public port published by both', () => {
    const r = check({ devCompose: (d) => ((d.services.mqtt.ports[1] as ComposePort).published = 8883) });
    caught(r, 'host-ports', /^host port 8883\/tcp is published by prod's mqtt and dev's mqtt/);
  });

  it('host-ports: the same port on different loopback addresses is no conflict', () => {
    const r = check({ devCompose: (d) => (d.services.db.ports = ['127.0.0.2:5432:5432/tcp']) });
    assert.equal(r.findings.filter((f) => f.check === 'host-ports').length, 0);
  });

  it('dev-limits: a dev service without limits', () => {
    const r = check({ devCompose: (d) => delete d.services.web.deploy });
    caught(r, 'dev-limits', /^dev service web has no CPU and no memory limit/);
  });

  it("dev-share: limits that add up to more than dev's share", () => {
    const r = check({ devCompose: (d) => (d.services.api.deploy!.resources.limits.cpus = 1.5) });
    caught(r, 'dev-share', /^dev's CPU limits add up to 2\.8 CPUs, more than its share \(2 CPUs\)/);
  });

  it('dev-share: limits larger than the host itself', () => {
    const r = check({ config: 'preflight:\n  dev-cpus: 64\n  dev-memory: 64G\n', host: { cpus: 1, memoryBytes: 1024 ** 3 } });
    assert.deepEqual(
      r.findings.map((f) => [f.check, f.message]),
      [
        ['dev-share', "dev's CPU limits add up to 1.8 CPUs, more than the whole host (1 CPU)"],
        ['dev-share', "dev's memory limits add up to 1.75 GiB, more than the whole host (1 GiB)"],
      ],
    );
  });

  it('dev-share: a configured percentage of the host', () => {
    const r = check({ config: 'preflight:\n  dev-host-share: 40\n', host: { cpus: 4, memoryBytes: 8 * 1024 ** 3 } });
    caught(r, 'dev-share', /CPU limits add up to 1\.8 CPUs, more than 40 % of the host \(1\.6 CPUs\)/);
  });

  it("vault-mounts: a dev service that writes prod's vault", () => {
    const r = check({ devCompose: (d) => (d.services.worker.volumes = ['/mnt/vault-1:/vault:rw']) });
    caught(r, 'vault-mounts', /^dev service worker mounts prod's vault \(environments\.prod\.vault\) at \/vault read-write/);
  });

  it("vault-mounts: the shared proxy may not write dev's vault", () => {
    const r = check({
      prodCompose: (d) =>
        (d.services.caddy.volumes = d.services.caddy.volumes.map((v) => v.replace('/mnt/vault-dev:/srv/vault-dev:ro', '/mnt/vault-dev:/srv/vault-dev:rw'))),
    });
    caught(r, 'vault-mounts', /^prod service caddy mounts dev's vault .* read-write/);
  });

  for (const [what, edit, message] of [
    ['privileged', (d: ComposeDoc) => (d.services.worker.privileged = true), /^dev service worker: privileged: true gives it every capability/],
    [
      'the Docker socket',
      (d: ComposeDoc) => d.services.worker.volumes.push('/var/run/docker.sock:/var/run/docker.sock'),
      /^dev service worker: volumes\[\d\] binds \/var\/run\/docker\.sock \(resolved \/var\/run\/docker\.sock\): the Docker socket/,
    ],
    [
      "the host's root",
      (d: ComposeDoc) => d.services.worker.volumes.push('/:/host:ro'),
      /^dev service worker: volumes\[\d\] binds \(read-only\) the host's root directory/,
    ],
    ['pid: host', (d: ComposeDoc) => (d.services.worker.pid = 'host'), /^dev service worker: pid: host shares the host's PID namespace with prod$/],
    ['cap_add', (d: ComposeDoc) => (d.services.worker.cap_add = ['SYS_ADMIN']), /^dev service worker: cap_add adds capabilities SYS_ADMIN$/],
    [
      'devices',
      (d: ComposeDoc) => (d.services.worker.devices = ['/dev/sda:/dev/sda']),
      /^dev service worker: devices\[0\] maps host device \/dev\/sda \(resolved \/dev\/sda\), which preflight\.dev-devices does not list$/,
    ],
    [
      "a prod container's network",
      (d: ComposeDoc) => (d.services.worker.network_mode = 'container:makapix-prod-db'),
      /^dev service worker: network_mode: container:makapix-prod-db joins the network namespace of makapix-prod-db, which is prod's$/,
    ],
  ] as const) {
    it(`dev-escape: a dev service with ${what}`, () => {
      const r = check({ devCompose: edit });
      caught(r, 'dev-escape', message);
    });
  }

  it("dev-mounts: prod's checkout, the state directory, the backups, in any mode", () => {
    caught(
      check({ devCompose: (d) => d.services.worker.volumes.push('/opt/makapix/api:/workspace/api:ro') }),
      'dev-mounts',
      /^dev service worker: volumes\[2\] binds \(read-only\) \/opt\/makapix\/api \(resolved \/opt\/makapix\/api\), which reaches prod's checkout$/,
    );
    caught(check({ devCompose: (d) => d.services.worker.volumes.push('/var/lib/twinstack:/state') }), 'dev-mounts', /reaches twinstack's state directory/);
    caught(check({ devCompose: (d) => d.services.worker.volumes.push('/var/backups:/b') }), 'dev-mounts', /reaches the backup directory/);
    assert.deepEqual(
      check({ devCompose: (d) => d.services.worker.volumes.push('/opt/makapix-dev/api:/workspace/api') }).findings,
      [],
      "dev's own checkout is fine (a path that only starts like prod's)",
    );
  });

  it('shared-images: dev builds an image under the name prod runs', () => {
    const r = check({ devCompose: (d) => (d.services.api.build = { context: '/opt/makapix-dev/api' }) });
    caught(r, 'shared-images', /^dev service api builds or runs image makapix-api:local, which prod's api also uses/);
  });

  it("dev-networks: dev joins prod's own network", () => {
    const r = check({ devCompose: (d) => (d.networks.internal = { name: 'makapix-prod_internal' }) });
    const hits = r.findings.filter((f) => f.check === 'dev-networks');
    assert.ok(hits.length >= 1, JSON.stringify(r.findings));
    assert.match(hits[0].message, /joins network makapix-prod_internal, which is prod's own/);
  });

  it('domains: a domain claimed by both', () => {
    const r = check({ devCompose: (d) => (d.services.web.labels.caddy = 'makapix.club') });
    caught(r, 'domains', /^makapix\.club is claimed by the caddy labels of prod's web and dev's web/);
  });

  it("noindex: dev's site without the X-Robots-Tag header", () => {
    const r = check({ devCompose: (d) => delete d.services.web.labels['caddy.header.X-Robots-Tag'] });
    caught(r, 'noindex', /^dev's site service web \(development\.makapix\.club\) sends no X-Robots-Tag: noindex/);
  });

  it("noindex: prod's site with the X-Robots-Tag header", () => {
    const r = check({ prodCompose: (d) => (d.services.web.labels['caddy.header.X-Robots-Tag'] = 'noindex, nofollow') });
    caught(r, 'noindex', /^prod's site service web \(makapix\.club\) sends X-Robots-Tag: noindex/);
  });

  it("basic-auth: dev's site open to anyone", () => {
    const r = check({
      devCompose: (d) => {
        for (const k of Object.keys(d.services.web.labels)) if (k.includes('basicauth')) delete d.services.web.labels[k];
      },
    });
    caught(r, 'basic-auth', /^dev's site service web \(development\.makapix\.club\) has no basic auth/);
  });

  it("basic-auth: prod's site behind a password", () => {
    const r = check({ prodCompose: (d) => (d.services.web.labels['caddy.basicauth.admin'] = 'hash') });
    caught(r, 'basic-auth', /^prod's site service web \(makapix\.club\) asks for basic auth/);
  });

  it('warn-only turns a check into warnings', () => {
    const r = check({ config: 'preflight:\n  warn-only: [dev-limits]\n', devCompose: (d) => delete d.services.web.deploy });
    caught(r, 'dev-limits', /web has no CPU and no memory limit.*\(warn-only\)$/, 'warning');
  });

  it('refuses an unknown check name in warn-only', () => {
    assert.throws(() => configWith('preflight:\n  warn-only: [everything]\n'), /preflight\.warn-only\[0\]: Invalid enum value/);
  });
});

describe('what compose says on the side', () => {
  it('names variables compose could not find, from both versions', () => {
    assert.deepEqual(unsetVariables('WARNING: The VAULT_HOST_PATH variable is not set. Defaulting to a blank string.\n'), ['VAULT_HOST_PATH']);
    assert.deepEqual(
      unsetVariables('time="2026-01-01T00:00:00Z" level=warning msg="The \\"JWT_SECRET_KEY\\" variable is not set. Defaulting to a blank string."'),
      ['JWT_SECRET_KEY'],
    );
  });

  it("reads the host's size from nproc and /proc/meminfo", () => {
    assert.deepEqual(parseHostTotals('2\nMemTotal:       24684096 kB\nMemFree:        23645460 kB\n'), { cpus: 2, memoryBytes: 24684096 * 1024 });
    assert.equal(parseHostTotals('garbage'), undefined);
  });
});

describe('HTTP checks (judged on curl output captured from a local server)', () => {
  const redirect = parseCurlResponse(read('samples/curl-redirect-meta-noindex.txt'))!;
  const unauthorized = parseCurlResponse(read('samples/curl-401.txt'))!;
  const robots = parseCurlResponse(read('samples/curl-robots.txt'))!;

  it('reads the final response after redirects', () => {
    assert.equal(redirect.status, 200);
    assert.equal(redirect.headers.get('content-type'), 'text/html');
    assert.match(redirect.body, /<title>x<\/title>/);
    assert.deepEqual(noindexOf(redirect), { header: false, meta: true });
    assert.equal(unauthorized.status, 401);
    assert.deepEqual(noindexOf(unauthorized), { header: true, meta: false });
  });

  it('flags a prod robots.txt that shuts out every crawler, and nothing narrower', () => {
    assert.ok(disallowsEverything(robots.body));
    assert.ok(!disallowsEverything('User-agent: *\nDisallow: /admin\n'));
    assert.ok(!disallowsEverything('User-agent: BadBot\nDisallow: /\n\nUser-agent: *\nAllow: /\n'));
    assert.ok(!disallowsEverything('User-agent: *\nDisallow: /\nAllow: /public\n'));
    const f = judgeProbe({ environment: 'prod', url: 'https://makapix.club/robots.txt', kind: 'robots', response: robots });
    assert.equal(f.length, 1);
    assert.match(f[0].message, /robots\.txt tells every crawler "Disallow: \/"/);
  });

  it('flags noindex on a prod page', () => {
    const f = judgeProbe({ environment: 'prod', url: 'https://makapix.club/', kind: 'page', response: redirect });
    assert.deepEqual(
      f.map((x) => x.message),
      ['https://makapix.club/ carries a robots noindex meta tag'],
    );
  });

  it('passes a dev page that asks for credentials and says noindex', () => {
    assert.deepEqual(judgeProbe({ environment: 'dev', url: 'https://development.makapix.club/', kind: 'page', response: unauthorized }), []);
  });

  it('flags a dev page open to strangers', () => {
    const open = { ...redirect, body: '<html></html>' };
    const f = judgeProbe({ environment: 'dev', url: 'https://development.makapix.club/', kind: 'page', response: open });
    assert.deepEqual(
      f.map((x) => [x.severity, x.message]),
      [
        ['error', 'https://development.makapix.club/ answered 200 without credentials: dev is open to anyone'],
        ['error', 'https://development.makapix.club/ carries no X-Robots-Tag: noindex'],
      ],
    );
  });

  it('reports an unreachable site as a warning', () => {
    const f = judgeProbe({ environment: 'dev', url: 'https://development.makapix.club/', kind: 'page', error: 'curl: (7) Failed to connect' });
    assert.equal(f[0].severity, 'warning');
  });
});

describe('the summary', () => {
  it('shows a findings table a person can act on', () => {
    const r = check({ devCompose: (d) => (d.services.db.container_name = 'makapix-prod-db') });
    const md = preflightSummary(report(r), r.config).toMarkdown();
    assert.match(md, /❌ \*\*1 error\*\*/);
    assert.match(md, /\| container-names \| both \| ❌ error \| container name makapix-prod-db is used by prod's db and dev's db/);
    assert.match(md, /dev's limits: 1\.8 CPUs and 1\.75 GiB over 6 services/);
    assert.ok(!md.includes('${'));
  });
});
