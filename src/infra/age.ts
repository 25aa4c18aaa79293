/**
 * age (Debian's `age` package), the file encryption tool: the one builder of its command lines.
 * Only recipients (public keys) are ever given to it: what it writes on the VPS can be read
 * only where the private key is, and that is never the VPS.
 */
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
