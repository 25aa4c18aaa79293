/**
 * Preflight's stack-merge check as a specification: `docker stack deploy` (CLI 20.10) appends
 * `command`, `entrypoint` and `healthcheck.test` across compose files where compose replaces them,
 * so for a swarm environment each may be set for a service in one of its files only. Read from
 * each file's own YAML; the fixture stacks pass; compose environments are not read at all.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PREFLIGHT_CHECKS } from '../../src/config/checks';
import { parseConfig } from '../../src/domain/config';
import { MemoryLogger } from '../../src/infra/logger';
import { checkStackMerge, stackMergeFindings, type ComposeFileText } from '../../src/safety/stack-merge';
import { FakeHost } from '../support/fake-host';

const FIXTURES = path.join(__dirname, '../fixtures');
const BASE_FILE = 'deploy/stack/docker-compose.yml';
const DEV_FILE = 'deploy/stack/docker-compose.dev.yml';

const BASE = `services:
  api:
    image: api
    command: ["serve", "--port", "8000"]
    entrypoint: /docker-entrypoint.sh
    healthcheck:
      test: ["CMD-SHELL", "curl -fsS http://127.0.0.1:8000/api/health"]
      interval: 1s
  db:
    image: postgres
`;

const files = (base: string, overlay: string): ComposeFileText[] => [
  { file: BASE_FILE, text: base },
  { file: DEV_FILE, text: overlay },
];

describe('stack-merge', () => {
  it('is a preflight check that warn-only may name', () => {
    assert.ok((PREFLIGHT_CHECKS as readonly string[]).includes('stack-merge'));
  });

  it("refuses an overlay's healthcheck test beside the base file's, in one line naming the service, both files and the fix", () => {
    const overlay = 'services:\n  api:\n    healthcheck:\n      test: ["CMD-SHELL", "exit 1"]\n';
    assert.deepEqual(checkStackMerge({ files: files(BASE, overlay), environment: 'dev' }), [
      {
        check: 'stack-merge',
        environment: 'dev',
        severity: 'error',
        message: `dev's swarm service api sets healthcheck.test in ${BASE_FILE} and ${DEV_FILE}: docker stack deploy appends the later list to the first instead of replacing it, so the task runs the first`,
        fix: "define api's healthcheck.test in one of those files only",
      },
    ]);
  });

  it('refuses command and entrypoint set twice, in list or string form', () => {
    const overlay = 'services:\n  api:\n    command: serve --port 9000\n    entrypoint: ["/other-entrypoint.sh"]\n';
    const f = checkStackMerge({ files: files(BASE, overlay), environment: 'prod' });
    assert.deepEqual(
      f.map((x) => [x.environment, x.fix]),
      [
        ['prod', "define api's command in one of those files only"],
        ['prod', "define api's entrypoint in one of those files only"],
      ],
    );
    assert.ok(f.every((x) => !x.message.includes('\n') && !x.fix.includes('\n')));
  });

  it('names every file that sets the key, in the order deploy reads them', () => {
    const third = { file: 'deploy/stack/docker-compose.zero-downtime.yml', text: 'services:\n  api:\n    healthcheck:\n      test: ["NONE"]\n' };
    const overlay = 'services:\n  api:\n    healthcheck:\n      test: ["CMD", "true"]\n';
    const [f] = checkStackMerge({ files: [...files(BASE, overlay), third], environment: 'dev' });
    assert.match(f.message, new RegExp(` in ${BASE_FILE} and ${DEV_FILE} and deploy/stack/docker-compose\\.zero-downtime\\.yml: `));
  });

  it('sees a key brought in through a YAML anchor and merge key', () => {
    const overlay = 'x-health: &health\n  test: ["CMD", "true"]\nservices:\n  api:\n    healthcheck:\n      <<: *health\n';
    assert.equal(checkStackMerge({ files: files(BASE, overlay), environment: 'dev' }).length, 1);
  });

  it('lets an overlay change the healthcheck timing, or set these keys for a service the base file leaves them out of', () => {
    const overlay =
      'services:\n  api:\n    healthcheck:\n      interval: 5s\n  db:\n    command: ["postgres", "-c", "fsync=off"]\n    healthcheck:\n      test: ["CMD", "pg_isready"]\n';
    assert.deepEqual(checkStackMerge({ files: files(BASE, overlay), environment: 'dev' }), []);
  });

  it('reports warn-only errors as warnings', () => {
    const overlay = 'services:\n  api:\n    command: ["serve"]\n';
    const [f] = checkStackMerge({ files: files(BASE, overlay), environment: 'dev', warnOnly: ['stack-merge'] });
    assert.equal(f.severity, 'warning');
    assert.match(f.message, / \(warn-only\)$/);
  });

  for (const stack of ['swarm/stack', 'app/deploy/stack', 'preflight/stack']) {
    for (const env of ['prod', 'dev'] as const) {
      it(`passes the fixture stack ${stack} for ${env}`, () => {
        const read = (f: string): ComposeFileText => ({ file: f, text: fs.readFileSync(path.join(FIXTURES, stack, f), 'utf8') });
        const stackFiles = [read('docker-compose.yml'), read(`docker-compose.${env}.yml`)];
        assert.deepEqual(checkStackMerge({ files: stackFiles, environment: env }), []);
      });
    }
  }
});

describe("stack-merge on the host's files", () => {
  const BASE_CONFIG = fs.readFileSync(path.join(FIXTURES, 'config/makapix.yml'), 'utf8');
  const devOnSwarm = `${BASE_CONFIG.replace('vault: /mnt/vault-dev', 'vault: /mnt/vault-dev\n    target: swarm')}\nswarm:\n  registry: 127.0.0.1:5000\n`;
  const twice = 'services:\n  api:\n    healthcheck:\n      test: ["CMD", "true"]\n';
  const hostWith = (checkout: string) => {
    const host = new FakeHost();
    host.files.set(`${checkout}/${BASE_FILE}`, Buffer.from(BASE));
    host.files.set(`${checkout}/${DEV_FILE}`, Buffer.from(twice));
    host.files.set(`${checkout}/deploy/stack/docker-compose.prod.yml`, Buffer.from(twice));
    return host;
  };

  it('reads nothing when both environments run on compose, where the last file replaces', async () => {
    const host = hostWith('/opt/makapix-dev');
    const f = await stackMergeFindings({ host, config: parseConfig(BASE_CONFIG, 'c'), log: new MemoryLogger() });
    assert.deepEqual(f, []);
    assert.equal(host.calls.length, 0);
  });

  it("checks a swarm environment's files from its checkout, and only that environment", async () => {
    const host = hostWith('/opt/makapix-dev');
    host.files.set(`/opt/makapix/${BASE_FILE}`, Buffer.from(BASE));
    host.files.set(`/opt/makapix/deploy/stack/docker-compose.prod.yml`, Buffer.from(twice));
    const f = await stackMergeFindings({ host, config: parseConfig(devOnSwarm, 'c'), log: new MemoryLogger() });
    assert.deepEqual(
      f.map((x) => [x.check, x.environment, x.fix]),
      [['stack-merge', 'dev', "define api's healthcheck.test in one of those files only"]],
    );
  });

  it('leaves a file it cannot read to the compose-config check, and logs why at debug', async () => {
    const host = new FakeHost();
    const log = new MemoryLogger();
    assert.deepEqual(await stackMergeFindings({ host, config: parseConfig(devOnSwarm, 'c'), log }, []), []);
    assert.match(log.text, /dev: reading each compose file for the stack-merge check failed \(ignored\): /);
  });
});
