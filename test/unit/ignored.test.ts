import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { it } from 'node:test';
import { MemoryLogger, ignored } from '../../src/infra/logger';

it('an ignored failure resolves to undefined and leaves a debug line naming what was tried and why it failed', async () => {
  const log = new MemoryLogger();
  const value = await Promise.reject(new Error('connection reset')).catch(ignored(log, 'reading the busy file'));
  assert.equal(value, undefined);
  assert.match(log.text, /reading the busy file failed \(ignored\): connection reset/);
});

it('an ignored failure with a fallback resolves to it, and is logged the same way', async () => {
  const log = new MemoryLogger();
  const value = await Promise.reject(new Error('no such container')).catch(ignored(log, 'listing containers', [] as string[]));
  assert.deepEqual(value, []);
  assert.match(log.text, /listing containers failed \(ignored\): no such container/);
});

it('no promise in src/ swallows its failure without a trace: .catch(() => ...) is written as ignored()', () => {
  const grep = spawnSync('grep', ['-rnE', String.raw`\.catch\(\(\) =>`, 'src'], { cwd: path.resolve(__dirname, '../..'), encoding: 'utf8' });
  assert.equal(grep.stdout.trim(), '');
  assert.equal(grep.status, 1, grep.stderr);
});
