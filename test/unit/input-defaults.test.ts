/** Input defaults are written once, in action.yml: the code reads what the runner passes and refuses an empty value. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { ActionIO } from '../../src/infra/actions-io';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { actionDefaults } from '../harness/action-defaults';

afterEach(() => {
  delete process.env.INPUT_PORT;
});

describe('input defaults', () => {
  it('are read from action.yml, as the runner passes them', () => {
    const d = actionDefaults('promote');
    assert.equal(d.port, '22');
    assert.equal(d['lock-timeout'], '600');
    assert.equal(d['require-gate'], 'true');
    assert.equal(actionDefaults('rollback').environment, 'prod');
  });

  it('an input with a default that arrives empty is refused in one line saying what to change', () => {
    const io = new ActionIO<{ port: string }, unknown>(new MemoryLogger());
    process.env.INPUT_PORT = '2222';
    assert.equal(io.defaulted('port'), '2222');
    process.env.INPUT_PORT = '  ';
    assert.throws(
      () => io.defaulted('port'),
      (e: unknown) =>
        e instanceof ConfigurationError &&
        /^input port is empty: give it a value, or leave it out of the step's with: to use its default \(action\.yml\)$/.test(e.message),
    );
  });

  it('are not written again in src/actions (no `input(...) || default`)', () => {
    const grep = spawnSync('grep', ['-rnE', String.raw`input\('[a-z-]+'\) \|\| '`, 'src/actions'], { cwd: path.resolve(__dirname, '../..'), encoding: 'utf8' });
    assert.equal(grep.stdout.trim(), '');
  });
});
