import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { argv, quote, raw, sh } from '../../src/infra/shell';

/** What a real sh makes of a quoted word: the proof that quoting round-trips. */
function throughSh(script: string): string {
  return execFileSync('sh', ['-c', script], { encoding: 'utf8' });
}

describe('quoting for the remote shell', () => {
  const samples = ["it's", '$(id)', '`id`', 'a\nb', 'a;b', '"q"', '\\', '*', '', ' lead', '-rf', 'ünï ✓', "''", '!x'];
  for (const s of samples) {
    it(`passes ${JSON.stringify(s)} through sh unchanged`, () => {
      assert.equal(throughSh(`printf %s ${quote(s)}`), s);
    });
  }

  it('leaves plain words unquoted, for readable logs', () => {
    assert.equal(
      argv('docker', 'compose', '-f', 'deploy/stack/docker-compose.yml', '-p', 'makapix-dev'),
      'docker compose -f deploy/stack/docker-compose.yml -p makapix-dev',
    );
  });

  it('refuses NUL, which no shell can carry', () => {
    assert.throws(() => quote('a\0b'), /NUL/);
  });

  it('quotes interpolations in sh`` but pastes raw fragments', () => {
    const dir = "/tmp/it's here";
    assert.equal(sh`cd ${dir} && ls ${['a b', 'c']} ${raw('| wc -l')}`, `cd '/tmp/it'\\''s here' && ls 'a b' c | wc -l`);
  });
});
