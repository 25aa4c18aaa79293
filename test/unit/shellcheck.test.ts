/** Shell that runs on the host lives in .sh files, and every one of them passes shellcheck. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const root = path.join(__dirname, '..', '..');
const scripts = fs
  .readdirSync(path.join(root, 'src'), { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.sh'))
  .map((f) => path.join('src', f));

describe('host shell scripts', () => {
  it('exist (the vault sync is one)', () => {
    assert.ok(scripts.includes(path.join('src', 'resample', 'vault-sync.sh')), scripts.join(', '));
  });
  for (const f of scripts) {
    it(`${f} passes shellcheck`, () => {
      const r = spawnSync('shellcheck', ['--shell=bash', '--severity=style', f], { cwd: root, encoding: 'utf8' });
      assert.ok(!r.error, `shellcheck is not installed: run bash .ci/install.sh (${r.error?.message})`);
      assert.equal(r.status, 0, r.stdout + r.stderr);
    });
  }
});
