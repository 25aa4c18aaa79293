/**
 * Vault bench: a production vault of small files, a dev database referencing a tenth of them, then
 *   - vault-sync (rsync with --files-from, through SSH as the action runs it), first run and a
 *     second run with nothing changed,
 *   - the seed design's per-file `cp` loop over the same list.
 * Usage: npx tsx bench/vault.ts [--files 50000] [--fraction 0.1]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../src/domain/config';
import { MemoryLogger } from '../src/infra/logger';
import { sh } from '../src/infra/shell';
import { vaultSync } from '../src/resample/vault';
import { connect } from '../test/harness/connect';
import { startPostgres } from '../test/harness/postgres';
import { startSshd } from '../test/harness/sshd';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const FILES = arg('files', 50_000);
const FRACTION = arg('fraction', 0.1);

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-vault-bench-'));
  const prodVault = path.join(dir, 'vault-1');
  const devVault = path.join(dir, 'vault-dev');
  const cpVault = path.join(dir, 'vault-cp');
  const [sshd, pg] = await Promise.all([startSshd(), startPostgres()]);
  const log = new MemoryLogger();
  const host = await connect(sshd, {}, log);
  try {
    let t = Date.now();
    for (let g = 1; g <= FILES; g++) {
      const shard = path.join(prodVault, (g % 256).toString(16).padStart(2, '0'));
      if (g <= 256) fs.mkdirSync(shard, { recursive: true });
      fs.writeFileSync(path.join(shard, `art${g}.png`), Buffer.alloc(1024 + (g % 4096), g % 251));
      if (g % 2 === 0) fs.writeFileSync(path.join(shard, `art${g}_upscaled.webp`), Buffer.alloc(4096, g % 13));
    }
    pg.psql('CREATE DATABASE makapix_dev');
    pg.psql(
      `CREATE TABLE posts (id int PRIMARY KEY, storage_shard text, storage_key text, format text);
       INSERT INTO posts SELECT g, lpad(to_hex(g % 256), 2, '0'), 'art' || g, 'png' FROM generate_series(1, ${FILES}) g WHERE g % ${Math.round(1 / FRACTION)} = 0;`,
      'makapix_dev',
    );
    console.log(`generated a vault of ${FILES} files (+${FILES / 2} variants) in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const env = (name: string, port: number, vault: string) => ({
      checkout: path.join(dir, name),
      project: `v${name}`,
      'compose-files': ['c.yml'],
      'env-file': '.env',
      url: 'http://127.0.0.1:9',
      database: { name: 'makapix_dev', user: pg.user, host: '127.0.0.1', port, via: 'host' },
      vault,
    });
    const config = parseConfig(
      stringify({ 'state-dir': path.join(dir, 'state'), environments: { prod: env('prod', pg.port + 1, prodVault), dev: env('dev', pg.port, devVault) } }),
      'bench',
    );
    const ctx = { host, config, log, run: { url: 'bench', actor: 'bench', sha: '', workflow: 'bench' }, lockTimeoutSeconds: 60 };

    const first = await vaultSync(ctx, { dryRun: false });
    const second = await vaultSync(ctx, { dryRun: false });

    // The seed design's loop, over the same list, into an empty directory.
    const loop = sh`
psql -X -q -A -t -h 127.0.0.1 -p ${pg.port} -U ${pg.user} -d makapix_dev -c "SELECT storage_shard || '/' || storage_key || '.' || format FROM posts" > ${path.join(dir, 'list')}
while read -r filepath; do
  src=${prodVault}/$filepath; dst=${cpVault}/$filepath
  if [ -f "$src" ]; then
    mkdir -p "$(dirname "$dst")"; cp "$src" "$dst"
    upscaled="\${src%.*}_upscaled.webp"
    if [ -f "$upscaled" ]; then cp "$upscaled" "\${dst%.*}_upscaled.webp"; fi
  fi
done < ${path.join(dir, 'list')}
`;
    t = Date.now();
    await host.run(loop, { quiet: true, timeoutSeconds: 3600, label: 'per-file cp loop' });
    const loopSeconds = (Date.now() - t) / 1000;
    const copiedByLoop = Number((await host.run(sh`find ${cpVault} -type f | wc -l`, { quiet: true })).stdout.trim());

    console.log(
      [
        '',
        `Vault bench: ${FILES} files in production, ${first.referenced} referenced by dev`,
        `  vault-sync, first run:   ${first.seconds.toFixed(2)} s, ${first.copied} files, ${first.bytesCopied} bytes, ${first.sshBytes} bytes over SSH`,
        `  per-file cp loop:        ${loopSeconds.toFixed(2)} s, ${copiedByLoop} files -> cp loop / vault-sync = ${(loopSeconds / first.seconds).toFixed(2)}x`,
        `  vault-sync, second run:  ${second.seconds.toFixed(2)} s, ${second.copied} files copied, ${second.bytesCopied} bytes (nothing changed)`,
      ].join('\n'),
    );
    if (second.copied !== 0) throw new Error('the second run copied files although nothing changed');
  } finally {
    await host.close();
    await Promise.all([sshd.stop(), pg.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
