/**
 * The suites' own guard, on the real Docker engine: a fixture host refuses to start beside a real
 * stack, and teardown removes only what carries both a test's name and its labels. Every container
 * here is made by this file, under names of its own, and removed at the end.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { BASE_IMAGE, dockerProblem, startFixtureHost } from './support/fixture-host';
import { RUN_LABEL, SLOT, SLOT_LABEL, TEST_PREFIX, realStackProblem, removeTestResources } from './support/test-resources';

const problem = dockerProblem();
const made: string[] = [];

function run(name: string, labels: Record<string, string>): string {
  const flags = Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const id = execFileSync('docker', ['run', '-d', '--name', name, ...flags, BASE_IMAGE, 'sleep', '300'], { encoding: 'utf8' }).trim();
  made.push(name);
  return id;
}

function exists(name: string): boolean {
  return execFileSync('docker', ['ps', '-aq', '--filter', `name=^${name}$`], { encoding: 'utf8' }).trim() !== '';
}

describe('the suites keep away from what is not theirs', { skip: problem }, () => {
  after(() => {
    if (made.length) execFileSync('docker', ['rm', '-f', ...made], { stdio: 'ignore' });
  });

  it('a fixture host refuses to start while a protected project has containers, and leaves them running', async () => {
    const project = `shop-${randomBytes(3).toString('hex')}-prod`;
    const id = run(`${project}-db`, { 'com.docker.compose.project': project });
    process.env.TWINSTACK_TEST_PROTECT = `other, ${project}`;
    try {
      await assert.rejects(startFixtureHost('docker compose'), new RegExp(`runs a real stack \\(compose project ${project}: 1 container`));
    } finally {
      delete process.env.TWINSTACK_TEST_PROTECT;
    }
    assert.equal(execFileSync('docker', ['inspect', '-f', '{{.Id}} {{.State.Running}}', `${project}-db`], { encoding: 'utf8' }).trim(), `${id} true`);
  });

  it('teardown removes only containers named as a test and labelled with its slot', () => {
    const other = randomBytes(4).toString('hex');
    const leftover = `${TEST_PREFIX}${other}-prod-db`;
    const unlabelled = `${TEST_PREFIX}${other}-prod-api`;
    const wrongName = `shop-${other}-worker`;
    const otherSlot = `${TEST_PREFIX}${other}-dev-db`;
    run(leftover, { [RUN_LABEL]: other, [SLOT_LABEL]: String(SLOT) });
    run(unlabelled, {});
    run(wrongName, { [RUN_LABEL]: other, [SLOT_LABEL]: String(SLOT) });
    run(otherSlot, { [RUN_LABEL]: other, [SLOT_LABEL]: String(SLOT + 100) });
    removeTestResources();
    assert.deepEqual(
      [leftover, unlabelled, wrongName, otherSlot].map((n) => [n, exists(n)]),
      [
        [leftover, false],
        [unlabelled, true],
        [wrongName, true],
        [otherSlot, true],
      ],
    );
  });
});

describe('what counts as a real stack', () => {
  const c = (name: string, project: string) => ({ name, project });
  it('a project with twinstack release images, or a protected one; never a test or the sandbox', () => {
    assert.equal(realStackProblem([c('makapix-prod-db', 'makapix-prod')], [], []), undefined);
    assert.match(
      realStackProblem([c('makapix-prod-db', 'makapix-prod')], ['twinstack/makapix-prod-db'], []) ?? '',
      /compose project makapix-prod: 1 container/,
    );
    assert.match(realStackProblem([c('shop-web', 'shop'), c('shop-db', 'shop')], [], ['shop']) ?? '', /compose project shop: 2 container/);
    assert.equal(realStackProblem([c('twinstack-test-ab12-prod-db', 'twinstack-test-ab12-prod')], ['twinstack/twinstack-test-ab12-prod-db'], []), undefined);
    assert.equal(realStackProblem([c('twinstack-sandbox-prod-db', 'twinstack-sandbox-prod')], ['twinstack/twinstack-sandbox-prod-db'], []), undefined);
    assert.equal(realStackProblem([c('caddy', '')], ['twinstack/makapix-prod-db'], ['']), undefined);
  });
});
