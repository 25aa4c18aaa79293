/**
 * The restore action's input: `latest` or a UTC time, checked before the host is touched; anything
 * else, a time in the future, or a config without the WAL archive is refused in one line.
 */
import { strict as assert } from 'node:assert';
import { afterEach, describe, it } from 'node:test';
import type { RestoreInputs, RestoreOutputs } from '../../action-types';
import { parseTarget, restoreAction } from '../../src/actions/restore/restore';
import { parseConfig } from '../../src/domain/config';
import { ActionIO } from '../../src/infra/actions-io';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { withDefaults } from '../harness/action-defaults';

const ENV = { checkout: '/srv/x', project: 'x', 'compose-files': ['a.yml'], 'env-file': '.env', url: 'https://x.example', database: { name: 'x', user: 'x' } };
const envs = `environments:\n  prod: ${JSON.stringify(ENV)}\n  dev: ${JSON.stringify({ ...ENV, checkout: '/srv/y', project: 'y', database: { name: 'y', user: 'y' } })}\n`;

function prepare(inputs: Record<string, string>, wal: boolean) {
  for (const [k, v] of Object.entries(withDefaults('restore', inputs))) process.env[`INPUT_${k.replace(/ /g, '_').toUpperCase()}`] = v;
  const log = new MemoryLogger();
  const config = parseConfig(`${envs}backup: { dir: /var/backups/t, wal: { enabled: ${wal} } }\n`, 't');
  return restoreAction.prepare({
    io: new ActionIO<RestoreInputs, RestoreOutputs>(log),
    log,
    config,
    run: { url: '', actor: '', sha: '', workflow: '' },
    lockTimeoutSeconds: 60,
  });
}

function refused(f: () => unknown, message: RegExp): void {
  assert.throws(f, (e: Error) => {
    assert.ok(e instanceof ConfigurationError, String(e));
    assert.ok(!e.message.includes('\n'), 'more than one line');
    assert.match(e.message, message);
    return true;
  });
}

afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('INPUT_')) delete process.env[k];
});

describe('restore: the target input', () => {
  const now = new Date('2026-12-04T19:00:00Z');
  it('takes latest and a UTC time, to the millisecond', () => {
    assert.equal(parseTarget('latest', now), 'latest');
    assert.equal((parseTarget('2026-12-04T18:58:00Z', now) as Date).toISOString(), '2026-12-04T18:58:00.000Z');
    assert.equal((parseTarget('2026-12-04T18:58:00.25Z', now) as Date).toISOString(), '2026-12-04T18:58:00.250Z');
  });
  it('refuses a local time, an offset, a date alone, an impossible date and words', () => {
    for (const bad of ['2026-12-04T18:58:00', '2026-12-04T18:58:00+01:00', '2026-12-04', '2026-02-30T10:00:00Z', 'yesterday', 'LATEST', '']) {
      refused(() => parseTarget(bad, now), /must be latest or a UTC time such as 2026-12-04T18:58:00Z/);
    }
  });
  it('refuses a time in the future', () => {
    refused(() => parseTarget('2026-12-04T19:00:01Z', now), /is in the future .*use latest/);
  });
  it('prepare refuses without backup.wal, and reads the target with it', async () => {
    assert.throws(() => prepare({ target: 'latest' }, false), /backup.wal is not enabled/);
    assert.deepEqual(await prepare({ target: 'latest' }, true), { target: 'latest', drill: false });
    assert.throws(() => prepare({ target: 'soon' }, true), ConfigurationError);
  });
});
