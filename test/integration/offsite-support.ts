/**
 * What the suites that restore from the off-host copies share: the VPS a real sshd, the backup host
 * a second one whose authorized_keys confines the VPS's key with rrsync (the README's line), an age
 * key pair, and prod's config with backup.wal and backup.offsite pointing at that host.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseConfig, type Config } from '../../src/domain/config';
import { writeOnlyAuthorizedKey } from '../../src/domain/offsite';
import { sshdAvailable, startSshd, type TestSshd } from '../harness/sshd';

/** Why these suites cannot run here (false: they can): sshd, the fixture base image and age are needed. */
export function offsiteSkipReason(): string | false {
  const sshd = sshdAvailable();
  if (sshd) return sshd;
  if (spawnSync('docker', ['image', 'inspect', 'twinstack-fixture-base:latest']).status !== 0)
    return 'the fixture base image is missing (bash test/e2e/support/base-image.sh)';
  if (spawnSync('age', ['--version']).status !== 0) return 'age is not installed';
  return false;
}

export interface OffsiteHosts {
  vps: TestSshd;
  backupHost: TestSshd;
  /** The backup host's directory (backup.offsite.path). */
  store: string;
  /** offsite-ssh-key: the VPS's write-only key on the backup host. */
  writeKey: string;
  /** The age private key (offsite-identity); the config holds only its public key. */
  identity: string;
  /** backup.offsite as the config gives it. */
  offsite: Record<string, unknown>;
}

/** Keys under `root`/keys, the backup host's directory `root`/store, and the two sshds. */
export async function startOffsiteHosts(root: string): Promise<OffsiteHosts> {
  fs.mkdirSync(path.join(root, 'keys'), { mode: 0o700 });
  const keyFile = path.join(root, 'keys', 'offsite');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'twinstack-test', '-f', keyFile], { stdio: 'ignore' });
  execFileSync('age-keygen', ['-o', path.join(root, 'keys', 'age.txt')], { stdio: 'ignore' });
  const identity = fs.readFileSync(path.join(root, 'keys', 'age.txt'), 'utf8');
  const store = path.join(root, 'store');
  fs.mkdirSync(store);
  const [vps, backupHost] = await Promise.all([
    startSshd(),
    startSshd({ authorizedKeys: [writeOnlyAuthorizedKey(store, fs.readFileSync(`${keyFile}.pub`, 'utf8'))] }),
  ]);
  const offsite = {
    host: '127.0.0.1',
    port: backupHost.port,
    user: backupHost.user,
    path: store,
    'known-hosts': backupHost.knownHosts.trim().split('\n'),
    recipients: [execFileSync('age-keygen', ['-y'], { input: identity, encoding: 'utf8' }).trim()],
  };
  return { vps, backupHost, store, writeKey: fs.readFileSync(keyFile, 'utf8'), identity, offsite };
}

/** The fixture's config for compose project `project`, its state and backups under `dir`, WAL archiving on and `offsite` as backup.offsite. */
export function offsiteConfig(dir: string, project: string, offsite: object): Config {
  const text = fs
    .readFileSync(path.join(__dirname, '../fixtures/config/makapix.yml'), 'utf8')
    .replace('state-dir: /var/lib/twinstack', `state-dir: ${dir}/state`)
    .replace('project: makapix-prod', `project: ${project}`)
    .replace('{ service: db, name: makapix, user: owner,', '{ service: db, name: app, user: owner,');
  const backup = `backup:\n  dir: ${dir}/backups\n  verify: restore\n  offsite: ${JSON.stringify(offsite)}\n  wal: { enabled: true, admin-user: postgres }\n`;
  return parseConfig(`${text}\n${backup}`, 'twinstack.yml');
}
