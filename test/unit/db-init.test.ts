/**
 * Preflight's db-init check as a specification: each environment's database service (the config's
 * database.service) must run under an init, because PostgreSQL as the first process of its container
 * reaps its orphans and crash-restarts when one exits with code 2. Read from both printers' merged
 * configurations: the captured Makapix-shaped fixture (docker-compose 1.29), the v2 format, and
 * what the installed `docker compose` and `docker-compose` print for a file with and without init.
 */
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify, parse as parseYaml } from 'yaml';
import { PREFLIGHT_CHECKS } from '../../src/config/checks';
import { parseComposeConfig } from '../../src/safety/compose-model';
import { dbInitFindings } from '../../src/safety/db-init';

const fixture = (f: string) => fs.readFileSync(path.join(__dirname, '../fixtures/preflight/config', f), 'utf8');
const PROD_V1 = fixture('prod.v1.yml');
const DEV_V2 = fixture('dev.v2-format.yml');
const PROD_FILES = ['deploy/stack/docker-compose.yml', 'deploy/stack/docker-compose.prod.yml'];
const DEV_FILES = ['deploy/stack/docker-compose.yml', 'deploy/stack/docker-compose.dev.yml'];

/** The merged configuration with `init` of one service set (or removed with undefined). */
function withInit(text: string, service: string, init: unknown): string {
  const doc = parseYaml(text) as { services: Record<string, Record<string, unknown>> };
  if (init === undefined) delete doc.services[service].init;
  else doc.services[service].init = init;
  return stringify(doc);
}

describe('the compose model reads init', () => {
  it('as true, false, or left out', () => {
    const text = 'services:\n  a: {image: x, init: true}\n  b: {image: x, init: false}\n  c: {image: x}\n';
    const m = parseComposeConfig(text, 'p');
    assert.deepEqual(
      m.services.map((s) => [s.name, s.init]),
      [
        ['a', true],
        ['b', false],
        ['c', undefined],
      ],
    );
  });
  it('a path to an init binary (the old 2.x file format) runs one too', () => {
    assert.equal(parseComposeConfig('services:\n  a: {image: x, init: /usr/bin/tini}\n', 'p').services[0].init, true);
  });
});

describe('db-init', () => {
  it('is a preflight check (warn-only accepts it)', () => {
    assert.ok((PREFLIGHT_CHECKS as readonly string[]).includes('db-init'));
  });

  it("warns once for Makapix's prod db, which has no init (docker-compose v1's merged configuration)", () => {
    const compose = parseComposeConfig(PROD_V1, 'makapix-prod');
    // Only the database counts: the other services have no init either.
    assert.ok(compose.services.filter((s) => s.name !== 'db').every((s) => s.init === undefined));
    const f = dbInitFindings({ compose, environment: 'prod', service: 'db', composeFiles: PROD_FILES });
    assert.equal(f.length, 1, JSON.stringify(f));
    assert.equal(f[0].check, 'db-init');
    assert.equal(f[0].environment, 'prod');
    assert.equal(f[0].severity, 'warning');
    assert.match(f[0].message, /^prod's database service db runs without an init: /);
    assert.match(f[0].message, /exits with code 2 .* crash-restart and drop every session$/);
    assert.ok(!f[0].message.includes('\n'));
    assert.equal(f[0].fix, 'add init: true to service db in deploy/stack/docker-compose.yml');
  });

  it("warns for dev's db in docker compose v2's format", () => {
    const compose = parseComposeConfig(DEV_V2, 'makapix-dev');
    const f = dbInitFindings({ compose, environment: 'dev', service: 'db', composeFiles: DEV_FILES });
    assert.deepEqual(
      f.map((x) => [x.environment, x.severity, x.fix]),
      [['dev', 'warning', 'add init: true to service db in deploy/stack/docker-compose.yml']],
    );
  });

  it('is satisfied by init: true, in either format', () => {
    for (const [text, env, files] of [
      [PROD_V1, 'prod', PROD_FILES],
      [DEV_V2, 'dev', DEV_FILES],
    ] as const) {
      const compose = parseComposeConfig(withInit(text, 'db', true), `makapix-${env}`);
      assert.deepEqual(dbInitFindings({ compose, environment: env, service: 'db', composeFiles: files }), []);
    }
  });

  it('names the overlay when the merged configuration turns init off', () => {
    const compose = parseComposeConfig(withInit(PROD_V1, 'db', false), 'makapix-prod');
    const f = dbInitFindings({ compose, environment: 'prod', service: 'db', composeFiles: PROD_FILES });
    assert.equal(f.length, 1);
    assert.match(f[0].message, /runs without an init \(init: false\): /);
    assert.equal(f[0].fix, 'add init: true to service db in deploy/stack/docker-compose.prod.yml');
  });

  it('checks the service database.service names, not every service or one called db', () => {
    const text = 'services:\n  db: {image: redis}\n  postgres: {image: "postgres:17"}\n  api: {image: api}\n';
    const f = dbInitFindings({ compose: parseComposeConfig(text, 'p'), environment: 'prod', service: 'postgres', composeFiles: PROD_FILES });
    assert.deepEqual(
      f.map((x) => x.fix),
      ['add init: true to service postgres in deploy/stack/docker-compose.yml'],
    );
    const fixed = parseComposeConfig(withInit(text, 'postgres', true), 'p');
    assert.deepEqual(dbInitFindings({ compose: fixed, environment: 'prod', service: 'postgres', composeFiles: PROD_FILES }), []);
  });

  it('says nothing when the db service is not in the compose configuration (a database outside compose)', () => {
    const compose = parseComposeConfig('services:\n  api: {image: api}\n', 'p');
    assert.deepEqual(dbInitFindings({ compose, environment: 'dev', service: 'db', composeFiles: DEV_FILES }), []);
  });
});

const printers: Array<{ name: string; cmd: string[] }> = [
  { name: 'docker compose (v2)', cmd: ['docker', 'compose'] },
  { name: 'docker-compose (v1)', cmd: ['docker-compose'] },
];
const dir = fs.mkdtempSync(path.join(os.tmpdir(), `twinstack-test-${randomBytes(4).toString('hex')}-db-init-`));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** What a real compose prints for a file; it needs no Docker engine. */
function composeConfig(cmd: string[], file: string): string {
  const r = spawnSync(cmd[0], [...cmd.slice(1), '-f', file, '-p', 'twinstack-test-db-init', 'config'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `${cmd.join(' ')} config: ${r.stderr}`);
  return r.stdout;
}

for (const p of printers) {
  const missing = spawnSync(p.cmd[0], [...p.cmd.slice(1), 'version', '--short']).status === 0 ? undefined : `${p.name} is not installed`;
  describe(`db-init on what ${p.name} prints`, { skip: missing }, () => {
    const base = 'services:\n  db:\n    image: postgres:17-alpine\n    healthcheck:\n      test: ["CMD-SHELL", "pg_isready -U postgres"]\n';
    for (const [label, extra, want] of [
      ['without init', '', 1],
      ['with init: true', '    init: true\n', 0],
    ] as const) {
      it(`a db ${label}: ${want} finding${want === 1 ? '' : 's'}`, () => {
        const file = path.join(dir, `${p.cmd.join('-')}-${want}.yml`);
        fs.writeFileSync(file, base + extra);
        const compose = parseComposeConfig(composeConfig(p.cmd, file), 'twinstack-test-db-init');
        assert.equal(compose.services[0].init, want === 0 ? true : undefined);
        assert.equal(dbInitFindings({ compose, environment: 'prod', service: 'db', composeFiles: [file] }).length, want);
      });
    }
  });
}
