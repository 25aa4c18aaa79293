/**
 * `npm run sandbox`: twinstack doing its job on this machine. Starts a local host (an sshd on
 * loopback, with fresh keys), builds the bundles if needed, and runs the actions through their
 * bundles with the inputs GitHub would give them, printing each job summary.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, runBundle } from '../test/harness/bundle';
import { sshdAvailable, startSshd } from '../test/harness/sshd';

const work = path.join(ROOT, '.sandbox');

function fail(message: string): never {
  console.error(`sandbox: ${message}`);
  process.exit(1);
}

function bundlesFresh(): boolean {
  return fs.existsSync(path.join(ROOT, 'dist', 'status', 'index.js'));
}

function printSummary(title: string, markdown: string): void {
  const text = markdown
    .replace(/^#+ /gm, '')
    .replace(/^\| ?(-+ ?\| ?)+$/gm, '')
    .replace(/<\/?(details|summary)>/g, '');
  console.log(`\n=== ${title} ===\n${text.trim()}\n`);
}

async function main(): Promise<void> {
  const missing = sshdAvailable();
  if (missing) fail(missing);
  if (!bundlesFresh()) {
    console.log('sandbox: building the bundles (npm run bundle)…');
    execFileSync('bash', ['scripts/bundle.sh'], { cwd: ROOT, stdio: 'inherit' });
  }
  fs.mkdirSync(path.join(work, 'workspace', '.github'), { recursive: true });
  const stateDir = path.join(work, 'state');
  const config = fs
    .readFileSync(path.join(ROOT, 'test/fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${stateDir}`)
    .replace('compose-command: docker compose', 'compose-command: docker-compose');
  fs.writeFileSync(path.join(work, 'workspace', '.github', 'twinstack.yml'), config);

  const sshd = await startSshd();
  console.log(`sandbox: local host is sshd on 127.0.0.1:${sshd.port} (host keys pinned through known-hosts)`);
  try {
    const inputs = { host: '127.0.0.1', port: String(sshd.port), user: sshd.user, 'ssh-key': sshd.privateKey, 'known-hosts': sshd.knownHosts };
    const r = await runBundle('status', inputs, { workspace: path.join(work, 'workspace') });
    if (r.code !== 0) fail(`status failed:\n${r.visible}`);
    printSummary('status', r.summary);
  } finally {
    await sshd.stop();
  }
}

main().catch((e) => fail(e instanceof Error ? e.message : String(e)));
