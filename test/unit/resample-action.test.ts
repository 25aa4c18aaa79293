/** The resample action's inputs, and the sample config section's defaults. */
import { strict as assert } from 'node:assert';
import { afterEach, describe, it } from 'node:test';
import type { ResampleInputs, ResampleOutputs } from '../../action-types';
import { readParams } from '../../src/actions/resample/resample';
import { ActionIO } from '../../src/infra/actions-io';
import { parseConfig } from '../../src/domain/config';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';

const ENV = { checkout: '/srv/x', project: 'x', 'compose-files': ['a.yml'], 'env-file': '.env', url: 'https://x.example', database: { name: 'x', user: 'x' } };
const base = `environments:\n  prod: ${JSON.stringify(ENV)}\n  dev: ${JSON.stringify({ ...ENV, checkout: '/srv/y', project: 'y', database: { name: 'y', user: 'y' } })}\n`;

function prepared(inputs: Record<string, string>) {
  for (const [k, v] of Object.entries(inputs)) process.env[`INPUT_${k.replace(/ /g, '_').toUpperCase()}`] = v;
  const log = new MemoryLogger();
  return {
    io: new ActionIO<ResampleInputs, ResampleOutputs>(log),
    log,
    config: parseConfig(base, 't'),
    run: { url: '', actor: '', sha: '', workflow: '' },
    lockTimeoutSeconds: 60,
  };
}

afterEach(() => {
  for (const k of Object.keys(process.env)) if (k.startsWith('INPUT_')) delete process.env[k];
});

describe('resample inputs', () => {
  it('override fraction and seed for one run, and mask the dev password', () => {
    const ctx = prepared({ fraction: '0.25', seed: 'tuesday', 'dry-run': 'true', 'dev-password': 'sekret-pass', 'mask-key': 'masking-sekret', init: 'true' });
    assert.deepEqual(readParams(ctx), { dryRun: true, init: true, fraction: 0.25, seed: 'tuesday', devPassword: 'sekret-pass', maskKey: 'masking-sekret' });
    ctx.log.info('the password is sekret-pass, the key masking-sekret');
    assert.ok(!ctx.log.text.includes('sekret-pass') && !ctx.log.text.includes('masking-sekret'));
  });

  it('fall back to the config when not given', () => {
    assert.deepEqual(readParams(prepared({})), { dryRun: false });
  });

  it('refuse a fraction outside 0..1 in one line', () => {
    assert.throws(
      () => readParams(prepared({ fraction: '10%' })),
      (e: Error) => e instanceof ConfigurationError && /input fraction "10%" must be a number from 0 to 1/.test(e.message),
    );
    assert.throws(() => readParams(prepared({ fraction: '1.5' })), ConfigurationError);
  });
});

describe('the sample config section', () => {
  it('has defaults, so a config without it still validates', () => {
    const c = parseConfig(base, 't');
    assert.equal(c.sample.root, 'users');
    assert.equal(c.sample.fraction, 0.1);
    assert.ok(c.sample['sensitive-names'].includes('email'));
    assert.equal(c['vault-sync'].variants[0], '{stem}_upscaled.webp');
  });

  it('reads YAML null as the null rule and policy, and rejects unknown keys', () => {
    const c = parseConfig(`${base}sample:\n  columns:\n    players.cert_pem: null\n  foreign-keys:\n    comments(author_id): null\n`, 't');
    assert.equal(c.sample.columns['players.cert_pem'], 'null');
    assert.equal(c.sample['foreign-keys']['comments(author_id)'], 'null');
    assert.throws(() => parseConfig(`${base}sample:\n  fractoin: 0.2\n`, 't'), /sample: unknown key "fractoin"/);
    assert.throws(() => parseConfig(`${base}sample:\n  columns:\n    users.email: scramble\n`, 't'), ConfigurationError);
  });
});
