/** Shell that runs on the host lives in .sh files; every shell file of the project passes shellcheck. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

const root = path.join(__dirname, '..', '..');
/** Every shell file of the project: host scripts under src/, the build and test scripts, CI's. */
const scripts = ['src', 'scripts', '.ci', 'test']
  .flatMap((d) => fs.readdirSync(path.join(root, d), { recursive: true }).map((f) => path.join(d, String(f))))
  .filter((f) => f.endsWith('.sh') || f === path.join('.ci', 'run'))
  .filter((f) => !f.includes('node_modules'))
  .sort();

describe('shell scripts', () => {
  it('are found (the vault sync is one)', () => {
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
