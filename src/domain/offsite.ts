/**
 * Off-host copies of verified backups (`backup.offsite`). The runbook of one copy:
 *
 *   1. Seal, on the VPS: each file of the verified backup (db.dump, globals.sql, manifest.json) is
 *      encrypted with age to the config's public keys, into a staging directory beside the
 *      backups; the sha256 of every sealed file is computed there and written into upload.json.
 *      The private key is never on the VPS, so a stolen VPS cannot read what it sent.
 *   2. Push, from the VPS straight to the backup host (the data never passes through the runner):
 *      rsync over ssh with the write-only key (a 0600 file in a private temp directory, removed in
 *      a finally), that host's key pinned (StrictHostKeyChecking=yes, a known_hosts of its own).
 *      The backup host confines that key to `rrsync -wo -no-del -no-overwrite <path>`: the VPS can
 *      add backups there, never read, delete or overwrite one. The VPS then tries a read with the
 *      same key, which must be refused; if it is not, the copy says the key is not write-only.
 *   3. Check on arrival, from the runner with a key of its own (offsite-admin-key): sha256sum on
 *      the backup host, every hash equal to the one computed on the VPS before the push. The VPS's
 *      key cannot read back, so the check is made by a party that did not send the files.
 *   4. Retention, from the runner with that key: the newest `keep` copies are kept.
 *
 * The local backup is never touched: a copy that fails leaves it verified where it was.
 *
 * Steps 1 to 3 take any set of files under `<env>/<id>` (sendOffsite): a dump's files are one such
 * set; a base backup's and the WAL archive's are others (src/domain/wal-offsite.ts).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { z } from 'zod';
import type { OffsiteSettings } from '../config/backup';
import { ageEncrypt } from '../infra/age';
import { OperationFailed, errorMessage, shorten, tailLines } from '../infra/errors';
import type { CommandResult, Host } from '../infra/host';
import { parseHostJson } from '../infra/json';
import { ignored, type Logger } from '../infra/logger';
import { knownHostsFile, remoteSpec, rsyncAddOnly, rsyncList, type SshTransport } from '../infra/rsync';
import { argv, hostScript, sh } from '../infra/shell';
import { SshHost } from '../infra/ssh';
import { onCancel } from '../infra/cancel';
import { backupDir, type BackupManifest } from './backup';
import type { Config } from './config';
import type { Environment } from './environment';

const FRESH_DIR = fs.readFileSync(__dirname + '/fresh-dir.sh', 'utf8');
const LIST_ARCHIVE = fs.readFileSync(__dirname + '/list-offsite-archive.sh', 'utf8');
const LIST_OFFSITE = fs.readFileSync(__dirname + '/list-offsite.sh', 'utf8');
const MISSING_TOOLS = fs.readFileSync(__dirname + '/missing-tools.sh', 'utf8');
const SEAL_FILE = fs.readFileSync(__dirname + '/seal-file.sh', 'utf8');

/** The two keys of the backup host, read from the action's secret inputs. */
export interface OffsiteKeys {
  /** offsite-ssh-key: written to the VPS for the push only; write-only on the backup host. */
  write: string;
  /** offsite-admin-key: the runner's own key, for the check on arrival and the retention. */
  admin?: string;
}

const HASH = z.string().regex(/^[0-9a-f]{64}$/);

/** One sealed file: the encrypted file's size and hash, and those of the plain file it holds. */
export const sealedFileSchema = z.object({
  bytes: z.number().int().nonnegative(),
  sha256: HASH,
  plain: z.object({ bytes: z.number().int().nonnegative(), sha256: HASH }),
});
export type SealedFile = z.output<typeof sealedFileSchema>;

/** upload.json (and a WAL push's upload-<segment>.json): what the VPS sent, written beside the sealed files on the backup host. */
export const uploadRecordSchema = z.object({
  id: z.string(),
  env: z.string(),
  sealedAt: z.string().datetime(),
  recipients: z.array(z.string()),
  files: z.record(z.string(), sealedFileSchema),
  /** Plain facts the runner reads on the backup host without the private key (a base backup's first WAL segment). */
  meta: z.record(z.string(), z.string()).optional(),
});
export type UploadRecord = z.output<typeof uploadRecordSchema>;

export type OffsiteStage = 'seal' | 'push' | 'arrival';

export type OffsiteCopy =
  | {
      status: 'copied';
      /** user@host:/path/<env>/<id> */
      location: string;
      files: Record<string, SealedFile>;
      /** checked: sha256sum on the backup host matched; unchecked: no offsite-admin-key was given. */
      arrival: 'checked' | 'unchecked';
      /** false: the VPS's key could read back from the backup host (not confined to rrsync -wo). */
      writeOnly: boolean;
      /** Copies removed by the retention; undefined when it did not run. */
      pruned?: string[];
      pruneError?: string;
      seconds: number;
    }
  | { status: 'failed'; location: string; stage: OffsiteStage; error: string; seconds: number };

/**
 * The line the backup host's authorized_keys holds for offsite-ssh-key: rsync only, confined to
 * `path`, writing only (-wo), with no --delete or --remove-* (-no-del) and no file replaced
 * (-no-overwrite); `restrict` turns off forwarding, a pty and the rest. -wo alone would still
 * let a stolen VPS delete or overwrite copies (test/integration/offsite.test.ts shows it).
 */
export function writeOnlyAuthorizedKey(path: string, publicKey: string): string {
  return `command="rrsync -wo -no-del -no-overwrite ${path}",restrict ${publicKey.trim()}`;
}

/** Where the copies of an environment (or of one backup) are on the backup host. */
export function offsiteDir(o: OffsiteSettings, env: string, id?: string): string {
  return id ? `${o.path}/${env}/${id}` : `${o.path}/${env}`;
}

/** The copy's address as a person would type it: user@host[:port]:/path/<env>/<id>. */
export function offsiteLocation(o: OffsiteSettings, env: string, id?: string): string {
  const host = o.host.replace(/^\[|\]$/g, '');
  const where = o.port === 22 ? host : `${host.includes(':') ? `[${host}]` : host} port ${o.port}`;
  return `${o.user}@${where}:${offsiteDir(o, env, id)}`;
}

class OffsiteFailed extends OperationFailed {
  constructor(
    readonly stage: OffsiteStage,
    message: string,
  ) {
    super(message);
  }
}

export interface OffsiteCopyOptions {
  host: Host;
  config: Config;
  env: Environment;
  /** The verified backup to copy. */
  manifest: BackupManifest;
  keys: OffsiteKeys;
  log: Logger;
  /** How the runner reaches the backup host with the admin key (tests replace it). */
  connectBackupHost?: (o: OffsiteSettings, adminKey: string, log: Logger) => Promise<Host>;
}

/**
 * A set of files on the VPS sealed and pushed together: they land, each as `<name>.age`, with the
 * upload record beside them, in `<path>/<env>/<id>` on the backup host (`id` may hold a slash:
 * `base/<stamp>`, `wal`).
 */
export interface OffsiteSet {
  env: string;
  id: string;
  /** The local files, by the name they are sealed under; a sha256 they must still have, when known. */
  files: Array<{ name: string; path: string; sha256?: string }>;
  /** The upload record's file name in that directory (upload.json for a backup). */
  record: string;
  /** A staging directory on the VPS, made and removed here. */
  stage: string;
  /** Written into the upload record as they are. */
  meta?: Record<string, string>;
}

export interface SendOptions {
  host: Host;
  config: Config;
  keys: OffsiteKeys;
  log: Logger;
  /** How the runner reaches the backup host with the admin key (tests replace it). */
  connectBackupHost?: (o: OffsiteSettings, adminKey: string, log: Logger) => Promise<Host>;
  /** Run with the admin key once the set arrived intact (a retention); returns what it removed. */
  afterArrival?: (admin: Host) => Promise<string[]>;
}

/**
 * Seals, pushes, checks and prunes one verified backup's off-host copy (see the top of this file).
 * Never throws for the copy itself: the outcome says what happened; the caller decides whether a
 * failed copy fails the step (`required`).
 */
export async function copyOffsite(c: OffsiteCopyOptions): Promise<OffsiteCopy> {
  const { host, config, env, manifest, log } = c;
  const o = config.backup.offsite;
  if (!o) throw new Error('copyOffsite without backup.offsite');
  if (manifest.status !== 'verified') throw new Error(`copyOffsite of backup ${manifest.id}, which is not verified`);
  const local = backupDir(config, env, manifest.id);
  const files = [...Object.keys(manifest.files), 'manifest.json'].map((name) => ({ name, path: `${local}/${name}`, sha256: manifest.files[name]?.sha256 }));
  const set: OffsiteSet = { env: env.name, id: manifest.id, files, record: 'upload.json', stage: `${backupDir(config, env)}/.offsite-${manifest.id}` };
  const copy = await sendOffsite({ ...c, afterArrival: (admin) => pruneOffsite(admin, o, env.name, log) }, set);
  // The local record of where the copy went (or why not), beside the backup it is of.
  await host
    .writeFile(`${local}/offsite.json`, `${JSON.stringify({ id: manifest.id, time: new Date().toISOString(), ...copy }, null, 2)}\n`, 0o600)
    .catch((e) => log.warning(`could not write ${local}/offsite.json: ${errorMessage(e)}`));
  return copy;
}

/**
 * Seals a set of files on the VPS, pushes them with the write-only key, and with the admin key
 * checks them on arrival and runs `afterArrival`. Never throws for the copy itself.
 */
export async function sendOffsite(c: SendOptions, set: OffsiteSet): Promise<OffsiteCopy> {
  const { host, config, keys, log, connectBackupHost = connectWithAdminKey } = c;
  const o = config.backup.offsite;
  if (!o) throw new Error('sendOffsite without backup.offsite');
  const started = Date.now();
  const seconds = () => Math.round((Date.now() - started) / 100) / 10;
  const location = offsiteLocation(o, set.env, set.id);
  log.startGroup(`${set.env}: off-host copy of ${set.id} to ${location}`);
  let copy: OffsiteCopy;
  let at: OffsiteStage = 'seal';
  try {
    let upload: UploadRecord;
    let writeOnly: boolean;
    const removeStage = () => host.run(sh`rm -rf ${set.stage}`, { check: false, quiet: true, timeoutSeconds: 300 }).then(() => undefined);
    const unregister = onCancel(removeStage);
    try {
      // 1. Seal on the VPS, with public keys only.
      upload = await seal({ host, o, env: set.env, log }, set);
      // 2. Push from the VPS with the write-only key.
      at = 'push';
      writeOnly = await push({ host, o, env: set.env, id: set.id, stage: set.stage, writeKey: keys.write, log });
    } finally {
      unregister();
      await removeStage().catch(ignored(log, `removing ${set.stage}`));
    }
    if (!writeOnly) {
      log.warning(
        `the backup host let offsite-ssh-key read ${offsiteDir(o, set.env, set.id)}: that key is not confined to rrsync -wo, so a stolen VPS could read, delete or overwrite the copies; put the authorized_keys line from the README (Off-host copies) on the backup host`,
      );
    }
    // 3 and 4. With the runner's own key: the check on arrival, then the retention.
    let arrival: 'checked' | 'unchecked' = 'unchecked';
    let pruned: string[] | undefined;
    let pruneError: string | undefined;
    if (keys.admin) {
      at = 'arrival';
      let admin: Host;
      try {
        admin = await connectBackupHost(o, keys.admin, log);
      } catch (e) {
        throw new OffsiteFailed('arrival', `the runner cannot log in to the backup host with offsite-admin-key to check the copy: ${errorMessage(e)}`);
      }
      try {
        await checkArrival(admin, o, set, upload);
        arrival = 'checked';
        log.info(`checked on arrival: ${Object.keys(upload.files).length} sealed files and ${set.record}, sha256 as computed on the VPS`);
        if (c.afterArrival) {
          try {
            pruned = await c.afterArrival(admin);
          } catch (e) {
            pruneError = errorMessage(e);
            log.warning(`the retention of the off-host copies failed (the new copy is kept): ${pruneError}`);
          }
        }
      } finally {
        await admin.close().catch(ignored(log, 'closing the connection to the backup host'));
      }
    } else {
      log.warning(
        'no offsite-admin-key: the copy was not checked on the backup host (rsync checked each file as it arrived) and old copies are not pruned there',
      );
    }
    copy = { status: 'copied', location, files: upload.files, arrival, writeOnly, pruned, pruneError, seconds: seconds() };
  } catch (e) {
    const stageOf = e instanceof OffsiteFailed ? e.stage : at;
    copy = { status: 'failed', location, stage: stageOf, error: shorten(errorMessage(e), 600), seconds: seconds() };
    log.warning(`the off-host copy of ${set.id} failed: ${copy.error}`);
  } finally {
    log.endGroup();
  }
  return copy;
}

/** What the off-host steps work with: the settings, and the environment's name. */
interface OffsiteStep {
  host: Host;
  o: OffsiteSettings;
  env: string;
  log: Logger;
}

/** Encrypts each file of the set to the recipients into its staging directory, and writes the upload record there. */
async function seal({ host, o, env, log }: OffsiteStep, set: OffsiteSet): Promise<UploadRecord> {
  const out = `${set.stage}/${set.env}/${set.id}`;
  const tools = await host.run(hostScript(MISSING_TOOLS, {}, ['age', 'rsync', 'ssh']), { quiet: true, timeoutSeconds: 60 });
  const missing = tools.stdout.split('\n').filter(Boolean);
  const packages: Record<string, string> = { age: 'age', rsync: 'rsync', ssh: 'openssh-client' };
  if (missing.length) {
    throw new OffsiteFailed('seal', `${missing.join(', ')} not installed on the VPS: apt-get install ${missing.map((t) => packages[t] ?? t).join(' ')}`);
  }
  await host.run(hostScript(FRESH_DIR, { DIR: out }), { label: `creating ${out}`, quiet: true, timeoutSeconds: 60 });
  const files: Record<string, SealedFile> = {};
  for (const { name, path: plain, sha256: expected } of set.files) {
    const sealed = `${out}/${name}.age`;
    const r = await host.run(hostScript(SEAL_FILE, { ENCRYPT: ageEncrypt(o.recipients, plain, sealed), PLAIN: plain, SEALED: sealed }), {
      label: `encrypting ${name} with age`,
      quiet: true,
      timeoutSeconds: o['timeout-seconds'],
    });
    const [plainHash, sealedHash, plainBytes, sealedBytes] = r.stdout.trim().split('\n');
    const file: SealedFile = {
      bytes: Number(sealedBytes),
      sha256: sealedHash.split(/\s+/)[0],
      plain: { bytes: Number(plainBytes), sha256: plainHash.split(/\s+/)[0] },
    };
    if (expected && expected !== file.plain.sha256) {
      throw new OffsiteFailed(
        'seal',
        `${plain} changed since it was verified (sha256 ${file.plain.sha256}, the manifest says ${expected}); nothing was copied`,
      );
    }
    files[`${name}.age`] = file;
    log.info(`sealed ${name}: ${file.bytes} bytes, sha256 ${file.sha256}`);
  }
  const upload: UploadRecord = { id: set.id, env, sealedAt: new Date().toISOString(), recipients: o.recipients, files, meta: set.meta };
  await host.writeFile(`${out}/${set.record}`, uploadJson(upload), 0o600);
  return upload;
}

function uploadJson(u: UploadRecord): string {
  return `${JSON.stringify(u, null, 2)}\n`;
}

const RRSYNC_BUSY_ATTEMPTS = 20;
const RRSYNC_BUSY_WAIT_MS = 15_000;

/** rsync from the VPS to the backup host; returns whether a read with the same key was refused. */
async function push({ host, o, env, id, stage, writeKey, log }: OffsiteStep & { id: string; stage: string; writeKey: string }): Promise<boolean> {
  // mktemp -d makes the directory readable by its owner only (0700), whatever the umask; -t puts it
  // in the VPS user's TMPDIR (/tmp when unset).
  const tmp = (await host.run('mktemp -d -t twinstack-offsite.XXXXXXXX', { quiet: true, timeoutSeconds: 60 })).stdout.trim();
  if (!/^\/[A-Za-z0-9._/-]*\/twinstack-offsite\.[A-Za-z0-9]+$/.test(tmp)) throw new OffsiteFailed('push', `mktemp on the VPS returned "${shorten(tmp, 80)}"`);
  // The key file goes in every case: at the end of the push, and on a cancel (src/infra/cancel.ts).
  const removeKey = () => host.run(sh`rm -rf ${tmp}`, { check: false, quiet: true, timeoutSeconds: 60 }).then(() => undefined);
  const unregister = onCancel(removeKey);
  try {
    const transport: SshTransport = { keyFile: `${tmp}/key`, knownHostsFile: `${tmp}/known_hosts`, port: o.port };
    await host.writeFile(transport.keyFile, writeKey, 0o600);
    await host.writeFile(transport.knownHostsFile, knownHostsFile(o['known-hosts']), 0o600);
    // The staged `<env>` directory lands in the directory rrsync confines the key to (backup.offsite.path).
    const pushOnce = () =>
      host.run(rsyncAddOnly({ sources: [`${stage}/${env}`], destination: remoteSpec(o.user, o.host, ''), transport }), {
        check: false,
        quiet: true,
        label: `rsync to ${o.host}`,
        timeoutSeconds: o['timeout-seconds'],
      });
    let r = await pushOnce();
    // rrsync lets one transfer at a time into its directory: prod's and dev's copies may meet there.
    for (let attempt = 1; r.exitCode !== 0 && /Another instance of rrsync/.test(r.stderr) && attempt <= RRSYNC_BUSY_ATTEMPTS; attempt++) {
      log.info(`the backup host is receiving another copy; trying again in ${RRSYNC_BUSY_WAIT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, RRSYNC_BUSY_WAIT_MS));
      r = await pushOnce();
    }
    if (r.exitCode !== 0) throw new OffsiteFailed('push', pushFailure(o, r));
    log.info(`copied to ${offsiteLocation(o, env, id)}`);
    const read = await host.run(rsyncList(remoteSpec(o.user, o.host, `${env}/${id}/`), transport), { check: false, quiet: true, timeoutSeconds: 120 });
    return read.exitCode !== 0;
  } finally {
    unregister();
    await removeKey().catch(ignored(log, `removing ${tmp} on the VPS`));
  }
}

/** One line saying why rsync from the VPS failed, and what to change. */
export function pushFailure(o: OffsiteSettings, r: Pick<CommandResult, 'exitCode' | 'stderr' | 'timedOut'>): string {
  const where = `${o.host}:${o.port}`;
  const err = r.stderr;
  // ssh's own line says why; rsync's "unexplained error (code 255)" after it says nothing.
  const last =
    err
      .split('\n')
      .find((l) => /^ssh: |^ssh_exchange|^kex_exchange|^Connection |Connection refused|timed out/i.test(l.trim()))
      ?.trim() ?? tailLines(err, 1);
  if (r.timedOut) return `the copy to the backup host ${where} took longer than backup.offsite.timeout-seconds (${o['timeout-seconds']} s)`;
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key for .* has changed|No .*host key is known/i.test(err)) {
    return `the backup host ${where} showed a host key that is not in backup.offsite.known-hosts: compare that host's /etc/ssh/ssh_host_*_key.pub with the config (nothing was copied)`;
  }
  if (/Permission denied \(/i.test(err)) {
    return `the backup host ${where} refused offsite-ssh-key for user ${o.user}: add its public key to that user's authorized_keys with the rrsync line (README, Off-host copies)`;
  }
  if (
    /Connection refused|Connection timed out|timed out|No route to host|Could not resolve|Network is unreachable|Connection closed by|kex_exchange/i.test(err)
  ) {
    return `the VPS cannot reach the backup host ${where}: ${last}`;
  }
  return `rsync from the VPS to ${where} exited with ${r.exitCode ?? 'no status'}: ${last || 'no message'}`;
}

/** The runner's own connection to the backup host (host key pinned from backup.offsite.known-hosts). */
export async function connectWithAdminKey(o: OffsiteSettings, adminKey: string, log: Logger): Promise<Host> {
  return SshHost.connect(
    {
      host: o.host.replace(/^\[|\]$/g, ''),
      port: o.port,
      user: o.user,
      privateKey: adminKey,
      knownHosts: o['known-hosts'],
      connectTimeoutSeconds: 20,
      commandTimeoutSeconds: o['timeout-seconds'],
    },
    log,
  );
}

/** sha256sum on the backup host: every sealed file and the upload record as the VPS computed and wrote them. */
export async function checkArrival(admin: Host, o: OffsiteSettings, set: Pick<OffsiteSet, 'env' | 'id' | 'record'>, upload: UploadRecord): Promise<void> {
  const dir = offsiteDir(o, set.env, set.id);
  const expected: Record<string, string> = Object.fromEntries(Object.entries(upload.files).map(([n, f]) => [n, f.sha256]));
  expected[set.record] = createHash('sha256').update(uploadJson(upload)).digest('hex');
  const names = Object.keys(expected);
  const r = await admin.run(argv('sha256sum', '--', names), {
    cwd: dir,
    check: false,
    quiet: true,
    label: `sha256sum in ${dir} on the backup host`,
    timeoutSeconds: o['timeout-seconds'],
  });
  if (r.exitCode !== 0) {
    throw new OffsiteFailed(
      'arrival',
      `the copy is not complete in ${dir} on the backup host (${tailLines(r.stderr, 1) || `sha256sum exited with ${r.exitCode}`}): is backup.offsite.path the directory rrsync is confined to?`,
    );
  }
  const actual = new Map(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => {
        const [hash, ...rest] = l.split(/\s+/);
        return [rest.join(' ').replace(/^\*/, ''), hash] as const;
      }),
  );
  for (const n of names) {
    if (actual.get(n) !== expected[n]) {
      throw new OffsiteFailed('arrival', `${dir}/${n} on the backup host has sha256 ${actual.get(n) ?? 'none'}, the VPS sent ${expected[n]}`);
    }
  }
}

/** An off-host copy's directory, as the runner reads it on the backup host. */
export interface OffsiteEntry {
  id: string;
  /** upload.json is there: the push finished (rsync sends it with the rest; a broken push may leave it out). */
  complete: boolean;
}

export async function listOffsite(admin: Host, o: OffsiteSettings, env: string): Promise<OffsiteEntry[]> {
  const base = offsiteDir(o, env);
  const r = await admin.run(hostScript(LIST_OFFSITE, { BASE: base }), { quiet: true, label: `listing ${base} on the backup host`, timeoutSeconds: 120 });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' '))
    .filter(([state, id]) => id && /^b\d{8}T\d{6}Z-[a-z][a-z0-9-]{0,30}$/.test(id) && (state === 'complete' || state === 'partial'))
    .map(([state, id]) => ({ id, complete: state === 'complete' }))
    .sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

/** Keeps the newest `keep` complete copies; removes older ones, and broken pushes older than the newest complete copy. */
export async function pruneOffsite(admin: Host, o: OffsiteSettings, env: string, log: Logger): Promise<string[]> {
  const all = await listOffsite(admin, o, env);
  const complete = all.filter((e) => e.complete);
  const keepIds = new Set(complete.slice(0, o.keep).map((e) => e.id));
  const newest = complete[0];
  const doomed = all.filter((e) => !keepIds.has(e.id) && (e.complete || (newest && e.id < newest.id)));
  if (doomed.length === 0) return [];
  await admin.run(
    argv(
      'rm',
      '-rf',
      '--',
      doomed.map((e) => offsiteDir(o, env, e.id)),
    ),
    { quiet: true, label: 'pruning old off-host copies', timeoutSeconds: 600 },
  );
  log.info(`${env}: removed off-host copies ${doomed.map((e) => e.id).join(', ')} (keeping the newest ${o.keep})`);
  return doomed.map((e) => e.id);
}

/** What the backup host holds for one environment, as list-offsite-archive.sh prints it. */
export interface OffsiteArchive {
  /** Base backups by stamp; no upload record: the push did not finish. */
  bases: Array<{ stamp: string; upload?: UploadRecord }>;
  /** The files in wal/ (sealed segments and history files, `<name>.age`). */
  walFiles: string[];
  /** Every sealed WAL file's record (`<name>.age`), merged from all the upload records. */
  walRecords: Map<string, SealedFile>;
}

/** Reads list-offsite-archive.sh's output; each upload record is checked with its schema. */
export function parseOffsiteArchive(text: string): OffsiteArchive {
  const archive: OffsiteArchive = { bases: [], walFiles: [], walRecords: new Map() };
  for (const chunk of text.split(/^(?=@@)/m)) {
    const head = /^@@(base|file|record) (\S+)\n?/.exec(chunk);
    if (!head) continue;
    const body = chunk.slice(head[0].length);
    if (head[1] === 'file') archive.walFiles.push(head[2]);
    else if (head[1] === 'base')
      archive.bases.push({ stamp: head[2], upload: body.trim() ? parseHostJson(uploadRecordSchema, body, `base/${head[2]}/upload.json`) : undefined });
    else for (const [name, f] of Object.entries(parseHostJson(uploadRecordSchema, body, `wal/${head[2]}`).files)) archive.walRecords.set(name, f);
  }
  return archive;
}

/**
 * Lists `<path>/<env>` on the backup host with the admin key: the one listing of the off-host base
 * backups and WAL, read by the off-host retention and by a restore from the off-host copies.
 */
export async function listOffsiteArchive(admin: Host, o: OffsiteSettings, env: string): Promise<OffsiteArchive> {
  const root = offsiteDir(o, env);
  const r = await admin.run(hostScript(LIST_ARCHIVE, { BASE: root }), { quiet: true, label: `listing ${root} on the backup host`, timeoutSeconds: 300 });
  return parseOffsiteArchive(r.stdout);
}
