import { strict as assert } from 'node:assert';
import { it } from 'node:test';
import { MemoryLogger, ignored } from '../../src/infra/logger';

it('an ignored failure resolves to undefined and leaves a debug line naming what was tried and why it failed', async () => {
  const log = new MemoryLogger();
  const value = await Promise.reject(new Error('connection reset')).catch(ignored(log, 'reading the busy file'));
  assert.equal(value, undefined);
  assert.match(log.text, /reading the busy file failed \(ignored\): connection reset/);
});
