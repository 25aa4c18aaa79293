/**
 * What several actions share at their edge: reading the environment input, the off-host keys
 * and the off-host copy's part of a job summary, and drawing the services table of a job
 * summary, and the lines of a swarm engine's report. Actions import this, never each other.
 */
import type { Config, EnvironmentName } from '../domain/config';
import type { ContainerState } from '../domain/environment';
import { offsiteDir, offsiteLocation, type OffsiteCopy, type OffsiteKeys } from '../domain/offsite';
import type { ServiceReport } from '../domain/swarm-release';
import type { WalCopies } from '../domain/wal-offsite';
import type { ActionIO } from '../infra/actions-io';
import { ConfigurationError } from '../infra/errors';
import { unencryptedPrivateKey } from '../infra/ssh';
import type { Summary } from '../infra/summary';
import * as validate from '../infra/validate';

export function environmentInput(value: string): EnvironmentName {
  if (value !== 'prod' && value !== 'dev') {
    throw new ConfigurationError(`input environment "${validate.printable(value)}" must be prod or dev`);
  }
  return value;
}

export function servicesTable(s: Summary, containers: ContainerState[]): Summary {
  return s.table(
    ['service', 'container', 'state', 'health', 'image'],
    containers.map((c) => [c.service, c.name, c.status + (c.status === 'exited' ? ` (${c.exitCode})` : ''), c.health, c.image]),
  );
}

/** One line per service of what the engine did: its update, its replicas, the image it runs, the tasks that ended. */
export function engineReportLines(services: readonly ServiceReport[]): string[] {
  return services.map((s) => {
    const update = s.update ? `update ${s.update.state}` : 'no update';
    const ended = s.failed.map((t) => `task ${t.task} on ${t.node} ${t.state}${t.error ? ` (${t.error})` : ''}`).join(', ');
    return `\`${s.service}\`: ${update}, ${s.replicas.running}/${s.replicas.wanted} running, runs \`${s.image}\`${ended ? `; ${ended}` : ''}`;
  });
}

/** The inputs of an action that takes backups and copies them off the host. */
export interface OffsiteInputs {
  'ssh-key': string;
  'offsite-ssh-key': string;
  'offsite-admin-key': string;
}

/**
 * Reads offsite-ssh-key and offsite-admin-key (masked the moment they are read) and checks them
 * against the config before anything runs on the host: both or neither of backup.offsite and
 * offsite-ssh-key, unencrypted private keys, and three different keys (the VPS's login, the
 * backup host's write-only key, the runner's admin key), so each can be revoked alone.
 */
export function offsiteKeysInput<I extends OffsiteInputs, O>(io: ActionIO<I, O>, config: Config): OffsiteKeys | undefined {
  const write = io.secret('offsite-ssh-key');
  const admin = io.secret('offsite-admin-key');
  const o = config.backup.offsite;
  if (!o) {
    if (write.trim() || admin.trim()) {
      throw new ConfigurationError(
        `input ${write.trim() ? 'offsite-ssh-key' : 'offsite-admin-key'} is given but the config has no backup.offsite: add that section (host, user, path, known-hosts, recipients) or drop the input`,
      );
    }
    return undefined;
  }
  if (!write.trim()) {
    throw new ConfigurationError(
      `input offsite-ssh-key is required: backup.offsite sends copies to ${o.host}; pass the backup host's write-only key from a secret (README, Off-host copies)`,
    );
  }
  const w = unencryptedPrivateKey(write, 'offsite-ssh-key');
  const a = admin.trim() ? unencryptedPrivateKey(admin, 'offsite-admin-key') : undefined;
  const login = io.secret('ssh-key');
  const loginPublic = login.trim() ? publicOrUndefined(login) : undefined;
  if (loginPublic && loginPublic === w.publicKey) {
    throw new ConfigurationError(
      "input offsite-ssh-key is the same key as ssh-key: give the backup host a key of its own, so neither host can be reached with the other's",
    );
  }
  if (a && a.publicKey === w.publicKey) {
    throw new ConfigurationError(
      'input offsite-admin-key is the same key as offsite-ssh-key: the admin key (which may delete copies) must be another key, kept off the VPS',
    );
  }
  if (a && loginPublic && a.publicKey === loginPublic) {
    throw new ConfigurationError(
      'input offsite-admin-key is the same key as ssh-key: the key that may delete off-host copies must never be one the VPS accepts',
    );
  }
  return { write: w.key, admin: a?.key };
}

function publicOrUndefined(key: string): string | undefined {
  try {
    return unencryptedPrivateKey(key, 'ssh-key').publicKey;
  } catch {
    return undefined; // an encrypted login key (with ssh-passphrase) cannot be the write-only key, which may not be encrypted
  }
}

/** The off-host copy's part of a job summary: what happened, where the copies are, what to do next. */
export function offsiteSummary(
  s: Summary,
  { config, env, localPath, copy }: { config: Config; env: EnvironmentName; localPath: string; copy: OffsiteCopy },
): Summary {
  const o = config.backup.offsite;
  if (!o) return s;
  const required = o.required
    ? 'required (backup.offsite.required: true), so this step fails'
    : 'not required (backup.offsite.required: false), so this step only warns';
  s.heading('Off-host copy', 3);
  if (copy.status === 'failed') {
    s.text(`❌ **The off-host copy failed** at ${copy.stage}: ${copy.error}`);
    s.list([
      `The local backup is verified and untouched: \`${localPath}\` on the VPS. Promote and rollback can use it.`,
      `No new copy is on the backup host; the older ones there are as they were (\`${offsiteLocation(o, env)}\`).`,
      `The copy is ${required}.`,
      'Next: fix the cause above, then run the backup action again (a new backup, copied as it is taken).',
    ]);
    return s;
  }
  const checked =
    copy.arrival === 'checked'
      ? "checked on arrival: sha256sum on the backup host, with the runner's own key, matches every hash computed on the VPS"
      : 'not checked on the backup host (no offsite-admin-key; rsync checked each file as it arrived)';
  s.text(`✅ **Encrypted copy on the backup host**: \`${copy.location}\` (${checked}, ${copy.seconds}s).`);
  s.table(
    ['file', 'bytes', 'sha256 (encrypted)'],
    Object.entries(copy.files).map(([n, f]) => [n, String(f.bytes), f.sha256]),
  );
  const notes = [
    `Encrypted with age to ${o.recipients.length} public key(s); only the matching private key reads it: \`age -d -i key.txt db.dump.age > db.dump\`, then compare its sha256 with the manifest's.`,
  ];
  if (!copy.writeOnly)
    notes.push(
      "⚠️ The backup host let the VPS's key read the copy: it is not confined to rrsync -wo, so a stolen VPS could delete the copies. Put the authorized_keys line from the README (Off-host copies) on the backup host.",
    );
  if (copy.arrival === 'unchecked') notes.push('Set offsite-admin-key to have each copy checked on the backup host and old copies pruned there.');
  if (copy.pruned?.length) notes.push(`Removed from the backup host (older than the newest ${o.keep}): ${copy.pruned.join(', ')}.`);
  if (copy.pruneError)
    notes.push(`⚠️ The retention on the backup host failed (the new copy is kept): ${copy.pruneError}. Check free space in \`${offsiteDir(o, env)}\`.`);
  return s.list(notes);
}

/** The summary's line for a base backup's and the WAL's off-host copies (backup.wal with backup.offsite). */
export function walCopiesSummary(summary: Summary, w: WalCopies): void {
  const wal = w.wal.copy
    ? `${w.wal.segments.length} WAL segment(s) ${w.wal.copy.status} to \`${w.wal.copy.location}\`${w.wal.copy.status === 'failed' ? ` (${w.wal.copy.error})` : ''}`
    : 'no new WAL segment to copy';
  const base = `${w.base.status === 'copied' ? '✅' : '❌'} base backup ${w.base.status} to \`${w.base.location}\`${w.base.status === 'failed' ? ` (${w.base.error})` : ''}`;
  const kept = w.retention
    ? ` Off-host retention: removed ${w.retention.removed.length} base backup(s) and ${w.retention.walRemoved.length} WAL file(s) older than the oldest kept one needs.`
    : '';
  summary.text(`**Off the host (WAL archiving):** ${base}; ${wal}.${kept}`);
}
