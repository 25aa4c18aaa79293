/**
 * Rolling services as specifications: the config section (promote.rolling, promote.drain-seconds)
 * and preflight's findings on what a rolling service may not have. Makapix's real merged compose
 * configuration (captured from docker-compose 1.29) gives one finding per problem, each saying what to
 * change; a service set up for rolling (no container_name, no published ports, a Docker network, a
 * healthcheck) gives none.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { stringify, parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/domain/config';
import { ConfigurationError } from '../../src/infra/errors';
import { parseComposeConfig } from '../../src/safety/compose-model';
import { checkRolling } from '../../src/safety/rolling';
import { Environment } from '../../src/domain/environment';
import { namesContainer, parseContainerNames, rollingOptions, routeProof } from '../../src/domain/rolling';

const makapix = fs.readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8');
const PROD_CONFIG = fs.readFileSync(path.join(__dirname, '../fixtures/preflight/config/prod.v1.yml'), 'utf8');

function withPromote(promote: unknown): string {
  const doc = parseYaml(makapix) as Record<string, unknown>;
  doc.promote = promote;
  return stringify(doc);
}

/** Makapix's prod configuration with the api and web changed as the README says a rolling service must be. */
function rollingReady(): string {
  const doc = parseYaml(PROD_CONFIG) as { services: Record<string, Record<string, unknown>> };
  for (const name of ['api', 'web']) {
    const s = doc.services[name];
    delete s.container_name;
    delete s.ports;
    s.healthcheck = { test: ['CMD', 'curl', '-f', 'http://127.0.0.1:8000/api/health'], interval: '5s' };
  }
  return stringify(doc);
}

describe('promote.rolling in the config file', () => {
  it('defaults to no rolling service and a 10 s drain', () => {
    const c = parseConfig(makapix, 'makapix.yml');
    assert.deepEqual(c.promote.rolling, []);
    assert.equal(c.promote['drain-seconds'], 10);
  });

  it('reads the services and the drain time', () => {
    const c = parseConfig(withPromote({ rolling: ['api', 'web'], 'drain-seconds': 30 }), 'twinstack.yml');
    assert.deepEqual(c.promote.rolling, ['api', 'web']);
    assert.equal(c.promote['drain-seconds'], 30);
  });

  it("builds the route probe from prod's url and health path, or the path given", () => {
    const c = parseConfig(withPromote({ rolling: ['api'], 'route-probe': { header: 'X-Upstream' } }), 'twinstack.yml');
    const prod = new Environment('prod', c);
    assert.deepEqual(rollingOptions(c, prod), {
      drainSeconds: 10,
      routeProbe: { url: `${prod.cfg.url.replace(/\/+$/, '')}${prod.cfg.healthPath}`, header: 'X-Upstream', timeoutSeconds: 30 },
    });
    const other = parseConfig(
      withPromote({ rolling: ['api'], 'route-probe': { header: 'X-Upstream', path: '/api/health', 'timeout-seconds': 5 } }),
      'twinstack.yml',
    );
    assert.equal(rollingOptions(other, prod).routeProbe?.url, `${prod.cfg.url.replace(/\/+$/, '')}/api/health`);
    assert.equal(rollingOptions(parseConfig(makapix, 'makapix.yml'), prod).routeProbe, undefined);
  });

  for (const [what, promote, message] of [
    ['a name that is no compose service name', { rolling: ['Api Server'] }, /^twinstack\.yml: promote\.rolling\[0\]: must be a compose service name$/],
    ['a service named twice', { rolling: ['api', 'api'] }, /^twinstack\.yml: promote\.rolling: names a service twice$/],
    ['a negative drain time', { 'drain-seconds': -1 }, /^twinstack\.yml: promote\.drain-seconds: /],
    ['a misspelt key', { roling: ['api'] }, /^twinstack\.yml: promote: unknown key "roling"$/],
    [
      'a route probe header that is no header name',
      { 'route-probe': { header: 'X Served' } },
      /^twinstack\.yml: promote\.route-probe\.header: must be an HTTP header name$/,
    ],
    [
      'a route probe path without its leading slash',
      { 'route-probe': { header: 'X-Upstream', path: 'health' } },
      /^twinstack\.yml: promote\.route-probe\.path: must be a path starting with \/$/,
    ],
  ] as const) {
    it(`refuses ${what} in one line`, () => {
      assert.throws(
        () => parseConfig(withPromote(promote), 'twinstack.yml'),
        (e: Error) => e instanceof ConfigurationError && !e.message.includes('\n') && message.test(e.message),
      );
    });
  }
});

describe("preflight's rolling check", () => {
  it('has nothing to say when no service rolls', () => {
    assert.deepEqual(checkRolling({ compose: parseComposeConfig(PROD_CONFIG, 'makapix-prod'), rolling: [], environment: 'prod' }), []);
  });

  it("names each constraint Makapix's api and web break today, with what to change", () => {
    const findings = checkRolling({ compose: parseComposeConfig(PROD_CONFIG, 'makapix-prod'), rolling: ['api', 'web'], environment: 'prod' });
    const lines = findings.map((f) => `${f.severity}: ${f.message}. Fix: ${f.fix}`);
    assert.deepEqual(lines, [
      'error: rolling service api sets container_name makapix-prod-api: its new container cannot start beside the old one under the same name. Fix: remove container_name from api',
      'warning: rolling service api has no healthcheck in the compose files: a rolling replacement refuses a new container whose image has none either. Fix: add a healthcheck to api in the compose file (or be sure its image has a HEALTHCHECK)',
      'error: rolling service web sets container_name makapix-prod-web: its new container cannot start beside the old one under the same name. Fix: remove container_name from web',
      'warning: rolling service web has no healthcheck in the compose files: a rolling replacement refuses a new container whose image has none either. Fix: add a healthcheck to web in the compose file (or be sure its image has a HEALTHCHECK)',
    ]);
    assert.ok(findings.every((f) => f.check === 'rolling' && f.environment === 'prod'));
  });

  it('refuses published host ports, naming them', () => {
    const [f] = checkRolling({ compose: parseComposeConfig(PROD_CONFIG, 'makapix-prod'), rolling: ['mqtt'], environment: 'prod' }).filter((x) =>
      /port/.test(x.message),
    );
    assert.equal(f.severity, 'error');
    assert.equal(f.message, 'rolling service mqtt publishes host port 127.0.0.1:1883, 8883: its new container cannot bind it while the old one holds it');
    assert.match(f.fix, /^remove ports from mqtt /);
  });

  it('warns that a fixed hostname makes the old and new container indistinguishable by name', () => {
    const doc = parseYaml(rollingReady()) as { services: Record<string, Record<string, unknown>> };
    assert.deepEqual(checkRolling({ compose: parseComposeConfig(stringify(doc), 'makapix-prod'), rolling: ['api'], environment: 'prod' }), []);
    doc.services.api.hostname = 'api';
    const findings = checkRolling({ compose: parseComposeConfig(stringify(doc), 'makapix-prod'), rolling: ['api'], environment: 'prod' });
    assert.deepEqual(
      findings.map((f) => [f.severity, f.message]),
      [
        [
          'warning',
          'rolling service api sets hostname api: the old and the new container answer to the same name, so a route probe cannot tell them apart by it (only by short id or ip:port)',
        ],
      ],
    );
  });

  it('refuses the host network', () => {
    const doc = parseYaml(rollingReady()) as { services: Record<string, Record<string, unknown>> };
    delete doc.services.api.networks;
    doc.services.api.network_mode = 'host';
    const findings = checkRolling({ compose: parseComposeConfig(stringify(doc), 'makapix-prod'), rolling: ['api'], environment: 'prod' });
    assert.deepEqual(
      findings.map((f) => [f.severity, f.message, f.fix]),
      [
        [
          'error',
          'rolling service api uses network_mode: host: its new container cannot listen on the port the old one holds',
          'give api a Docker network the proxy is on instead of network_mode: host',
        ],
      ],
    );
  });

  it('refuses a disabled healthcheck', () => {
    const doc = parseYaml(rollingReady()) as { services: Record<string, Record<string, unknown>> };
    doc.services.web.healthcheck = { disable: true };
    const findings = checkRolling({ compose: parseComposeConfig(stringify(doc), 'makapix-prod'), rolling: ['web'], environment: 'prod' });
    assert.deepEqual(
      findings.map((f) => [f.severity, f.message]),
      [['error', 'rolling service web has its healthcheck disabled: the switch cannot tell when the new container may take traffic']],
    );
  });

  it('names a rolling service the compose configuration does not define, in one line', () => {
    const findings = checkRolling({ compose: parseComposeConfig(rollingReady(), 'makapix-prod'), rolling: ['api', 'frontend'], environment: 'prod' });
    assert.equal(findings.length, 1);
    assert.equal(findings[0].severity, 'error');
    assert.equal(
      findings[0].message,
      "promote.rolling names frontend, which prod's compose configuration does not define (services: api, cache, caddy, db, mqtt, web, worker)",
    );
    assert.ok(!findings[0].message.includes('\n'));
  });

  it('passes a stack set up for rolling', () => {
    assert.deepEqual(checkRolling({ compose: parseComposeConfig(rollingReady(), 'makapix-prod'), rolling: ['api', 'web'], environment: 'prod' }), []);
  });

  it('warns when a rolling service mounts code from the checkout and release directories are off', () => {
    const doc = parseYaml(rollingReady()) as { services: Record<string, { volumes?: string[] }> };
    doc.services.api.volumes = [...(doc.services.api.volumes ?? []), '/opt/makapix/api:/workspace/api:rw'];
    const compose = parseComposeConfig(stringify(doc), 'makapix-prod');
    const findings = checkRolling({
      compose,
      rolling: ['api', 'web'],
      environment: 'prod',
      warnOnly: [],
      code: { checkout: '/opt/makapix', releaseDirs: false },
    });
    assert.equal(findings.length, 1, JSON.stringify(findings));
    assert.equal(findings[0].severity, 'warning');
    assert.match(findings[0].message, /rolling service api bind-mounts \/opt\/makapix\/api:\/workspace\/api from prod's checkout/);
    assert.match(findings[0].fix, /promote\.release-dirs: true/);
    assert.deepEqual(
      checkRolling({ compose, rolling: ['api', 'web'], environment: 'prod', warnOnly: [], code: { checkout: '/opt/makapix', releaseDirs: true } }),
      [],
    );
    // The vault is mounted from outside the checkout: nothing to say about it.
    assert.deepEqual(
      checkRolling({ compose, rolling: ['api', 'web'], environment: 'prod', warnOnly: [], code: { checkout: '/opt/other', releaseDirs: false } }),
      [],
    );
  });

  it('reports warn-only errors as warnings', () => {
    const findings = checkRolling({ compose: parseComposeConfig(PROD_CONFIG, 'makapix-prod'), rolling: ['api'], environment: 'prod', warnOnly: ['rolling'] });
    assert.ok(findings.every((f) => f.severity === 'warning'));
    assert.match(findings[0].message, /\(warn-only\)$/);
  });
});

describe('the route probe: which header value proves the new container answered', () => {
  // docker inspect --format '{{.Id}} {{.Config.Hostname}} {{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' new old
  const inspect = (newHost: string, oldHost: string) =>
    `${'a'.repeat(12)}${'0'.repeat(52)} ${newHost} 172.18.0.7 \n${'b'.repeat(12)}${'0'.repeat(52)} ${oldHost} 172.18.0.5 \n`;

  it('counts the hostname when each container has its own (the default: its short id)', () => {
    const [next, ...old] = parseContainerNames(inspect('aaaaaaaaaaaa', 'bbbbbbbbbbbb'));
    const { names, sharedHostname } = routeProof(next, old);
    assert.equal(sharedHostname, false);
    assert.ok(namesContainer('aaaaaaaaaaaa', names));
    assert.ok(namesContainer('172.18.0.7:8000', names));
    assert.ok(!namesContainer('bbbbbbbbbbbb', names));
    assert.ok(!namesContainer('172.18.0.5:8000', names));
  });

  it('does not count a hostname the old container has too (a fixed hostname: in the compose file); the short id and address still do', () => {
    const [next, ...old] = parseContainerNames(inspect('api', 'api'));
    const { names, sharedHostname } = routeProof(next, old);
    assert.equal(sharedHostname, true);
    // The old container answering under the shared name proves nothing, in any case or with a port.
    for (const header of ['api', 'API', 'api:8000']) assert.ok(!namesContainer(header, names), header);
    assert.ok(namesContainer('aaaaaaaaaaaa', names));
    assert.ok(namesContainer('172.18.0.7:8000', names));
    // A hostname of its own still counts.
    const [other, ...rest] = parseContainerNames(inspect('api-next', 'api'));
    assert.ok(namesContainer('api-next:8000', routeProof(other, rest).names));
  });

  it('never counts a name that fits an old container, whatever the new hostname is set to', () => {
    const [next, ...old] = parseContainerNames(inspect('bbbbbbbbbbbb', 'api'));
    const { names } = routeProof(next, old);
    assert.ok(!namesContainer('bbbbbbbbbbbb', names));
    assert.ok(namesContainer('aaaaaaaaaaaa', names));
  });
});
