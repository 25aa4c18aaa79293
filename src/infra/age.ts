/**
 * age (Debian's `age` package), the file encryption tool: the one builder of its command lines.
 * Only recipients (public keys) are ever given to it: what it writes on the VPS can be read
 * only where the private key is, and that is never the VPS.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { argv } from './shell';

/** An age X25519 public key: "age1" and 58 bech32 characters, as `age-keygen -y` prints it. */
export const AGE_RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
/** An age private key, refused wherever a recipient is expected. */
export const AGE_SECRET_KEY = /^AGE-SECRET-KEY-1/i;

/** `age --encrypt` of one file to every recipient, written to `output`. */
export function ageEncrypt(recipients: readonly string[], input: string, output: string): string {
  if (recipients.length === 0) throw new Error('age needs at least one recipient');
  for (const r of recipients) if (!AGE_RECIPIENT.test(r)) throw new Error(`not an age recipient: ${r.slice(0, 12)}…`);
  return argv(
    'age',
    '--encrypt',
    recipients.flatMap((r) => ['-r', r]),
    '-o',
    output,
    '--',
    input,
  );
}

/** An age private key file's content: at least one AGE-SECRET-KEY-1 line (comments allowed). */
export function isAgeIdentity(text: string): boolean {
  return text.split(/\r?\n/).some((l) => /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/.test(l.trim()));
}

/** The public keys (recipients) of an identity, by `age-keygen -y` on the runner, the key on its standard input. */
export function agePublicKeys(identity: string): string[] {
  const r = spawnSync('age-keygen', ['-y'], { input: identity, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`age-keygen could not run on the runner (${r.error.message}): install age (apt-get install age)`);
  if (r.status !== 0) return [];
  return r.stdout.split('\n').filter((l) => AGE_RECIPIENT.test(l.trim()));
}

/**
 * Runs `use` with the identity in a 0600 file inside a private (0700) temporary directory on the
 * runner, removed afterwards whatever happened: age reads identities from a file only, and a key
 * never goes on a command line.
 */
export async function withIdentityFile<T>(identity: string, use: (file: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'twinstack-age-'));
  try {
    const file = path.join(dir, 'identity');
    fs.writeFileSync(file, identity.endsWith('\n') ? identity : `${identity}\n`, { mode: 0o600 });
    return await use(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `age --decrypt` on the runner: the sealed file on its standard input, the plain one on its standard output. */
export function ageDecrypt(identityFile: string): ChildProcessWithoutNullStreams {
  return spawn('age', ['--decrypt', '-i', identityFile], { stdio: ['pipe', 'pipe', 'pipe'] });
}
