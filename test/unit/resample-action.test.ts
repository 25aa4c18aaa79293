/** The resample action's inputs, and the sample config section's defaults. */
import { strict as assert } from 'node:assert';
import { afterEach, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { schemaThenRows } from '../../src/resample/engine';
import type { ResampleInputs, ResampleOutputs } from '../../action-types';
import { readParams } from '../../src/actions/resample/resample';
import { ActionIO } from '../../src/infra/actions-io';
import { parseConfig } from '../../src/domain/config';
import { ConfigurationError } from '../../src/infra/errors';
import { MemoryLogger } from '../../src/infra/logger';
import { withDefaults } from '../harness/action-defaults';

const ENV = { checkout: '/srv/x', project: 'x', 'compose-files': ['a.yml'], 'env-file': '.env', url: 'https://x.example', database: { name: 'x', user: 'x' } };
const base = `environments:\n  prod: ${JSON.stringify(ENV)}\n  dev: ${JSON.stringify({ ...ENV, checkout: '/srv/y', project: 'y', database: { name: 'y', user: 'y' } })}\n`;

function prepared(inputs: Record<string, string>) {
  for (const [k, v] of Object.entries(withDefaults('resample', inputs))) process.env[`INPUT_${k.replace(/ /g, '_').toUpperCase()}`] = v;
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

describe('the schema beside the production session (schemaThenRows)', () => {
  const run = (schema: string, send: string, receive: string) =>
    spawnSync('bash', ['-c', `set -o pipefail\n${schemaThenRows(schema, send, receive)}`], { encoding: 'utf8' });

  it('starts the rows only once the schema is in, while the sender has already begun', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-str-'));
    const r = run(`sleep 0.3; touch ${dir}/schema`, `touch ${dir}/sent; echo row`, `[ -e ${dir}/schema ] && cat && echo received`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'row\nreceived\n');
    // The sender started before the schema was done: its file is older.
    assert.ok(fs.statSync(`${dir}/sent`).mtimeMs < fs.statSync(`${dir}/schema`).mtimeMs);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("ends with exit 3 and the schema's own error when the schema fails; the receiver never runs", () => {
    const r = run('echo "ERROR: type ltree does not exist" >&2; exit 1', 'yes row | head -n 100000', 'echo received');
    assert.equal(r.status, 3);
    assert.match(r.stderr, /ERROR: type ltree does not exist\nthe schema \(pre-data\) could not be restored into staging/);
    assert.doesNotMatch(r.stdout, /received/);
  });

  it("fails with the sender's status when the production session fails", () => {
    const r = run('true', 'echo partial; exit 5', 'cat >/dev/null');
    assert.equal(r.status, 5);
  });
});
