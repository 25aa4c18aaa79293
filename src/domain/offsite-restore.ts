/**
 * A restore (or the drill) from the off-host copies alone (restore with source: offsite), for the
 * day the VPS's own base backups and WAL are gone. The runbook:
 *
 *   1. The runner logs in to the backup host with the admin key (offsite-admin-key) and reads what
 *      is there: each base backup's upload.json and the WAL directory's upload records (the sha256
 *      of every sealed file, and of the plain file inside it, as the VPS computed them).
 *   2. The base backup is chosen as a local restore chooses it (chooseBaseBackup), with the time
 *      its copy was sealed as the time it was whole (later than it finished, never earlier). Its
 *      backup_manifest is decrypted on the runner, in memory, for the WAL segment it starts from.
 *   3. The WAL segments from there on must follow each other with none missing: the first gap
 *      fails the restore naming the segment, before anything is fetched.
 *   4. Each file is streamed: `cat` on the backup host → sha256 on the runner → `age --decrypt` on
 *      the runner (the identity in a 0600 file of a private temporary directory, removed after) →
 *      the VPS, where receive-file.sh writes it into a private staging directory and hashes it.
 *      Both hashes must be the upload record's, or the restore fails naming the file. No plain
 *      file is written on the runner, and the identity never reaches the VPS.
 *   5. The staging directory is laid out as the host's own archive (base/<stamp>/, wal/), so the
 *      recovery (src/domain/pitr.ts) runs on it unchanged; it is removed afterwards, whatever
 *      happened. Prod is touched only by the recovery's swap, after all of this.
 *
 * The data passes through the runner: the VPS may be new after a disaster, and the VPS's key on the
 * backup host can only write (rrsync -wo), never read.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { PassThrough } from 'node:stream';
import type { OffsiteSettings } from '../config/backup';
import type { EnvContext } from './environment';
import type { Config } from './config';
import { connectWithAdminKey, listOffsiteArchive, offsiteDir, offsiteLocation, type OffsiteArchive, type SealedFile } from './offsite';
import { chooseBaseBackup, scratchRoot, type ArchiveSource, type FoundBaseBackup, type RecoveryTarget } from './pitr';
import { DEFAULT_SEGMENT_BYTES, manifestStartFile, nextSegment } from './wal-retention';
import { ageDecrypt, withIdentityFile } from '../infra/age';
import { ConfigurationError, OperationFailed, errorMessage, tailLines } from '../infra/errors';
import type { CommandResult, Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import { walFilesFor } from '../infra/pitr';
import { argv, hostScript } from '../infra/shell';
import { stampTime, utcStamp } from '../infra/stamp';

const RECEIVE_FILE = fs.readFileSync(__dirname + '/receive-file.sh', 'utf8');

/** What the runner needs to read the off-host copies: the admin key and the age identity (both secrets). */
export interface OffsiteSource {
  adminKey: string;
  identity: string;
  /** How the runner reaches the backup host with the admin key (tests replace it). */
  connect?: (o: OffsiteSettings, adminKey: string, log: Logger) => Promise<Host>;
}

/** The off-host base backups whose push finished, as chooseBaseBackup takes them (startSegment read later). */
export function offsiteBases(archive: OffsiteArchive): FoundBaseBackup[] {
  return archive.bases
    .filter((b) => /^\d{8}T\d{6}Z$/.test(b.stamp) && b.upload?.files['base.tar.age'] && b.upload.files['backup_manifest.age'])
    .map((b) => ({
      dir: b.stamp,
      startTime: stampTime(b.stamp),
      startSegment: '',
      // Sealed after it finished: whole by then (whole seconds, as the host's own listing says it).
      finishedAt: new Date((Math.floor(new Date(b.upload?.sealedAt ?? 0).getTime() / 1000) + 1) * 1000),
      extraTars: Object.keys(b.upload?.files ?? {})
        .filter((n) => n.endsWith('.tar.age') && n !== 'base.tar.age')
        .map((n) => n.slice(0, -4)),
    }));
}

/**
 * The WAL files a recovery from `start` needs, every one with a recorded sha256; throws naming the
 * first segment missing from the run that starts at `start`, or a file without a record.
 */
export function offsiteWalPlan(archive: OffsiteArchive, start: string, where: string): string[] {
  const names = archive.walFiles.filter((f) => f.endsWith('.age')).map((f) => f.slice(0, -4));
  const segmentBytes = [...archive.walRecords.values()][0]?.plain.bytes || DEFAULT_SEGMENT_BYTES;
  const { files } = walFilesFor(names, start);
  const run = files.filter((n) => /^[0-9A-F]{24}$/.test(n) && n.slice(0, 8) === start.slice(0, 8));
  // In order from the start: the first name that is not the one expected means that one is missing.
  let expected = start;
  for (const n of run) {
    if (n !== expected) break;
    expected = nextSegment(n, segmentBytes);
  }
  const last = run.at(-1);
  if (!last || expected !== nextSegment(last, segmentBytes))
    throw new OperationFailed(
      `WAL segment ${expected} is missing from the off-host archive ${where}/wal: the base backup needs every segment from ${start}${last ? ` to ${last}` : ''}`,
    );
  const unrecorded = files.find((n) => !archive.walRecords.has(`${n}.age`));
  if (unrecorded) throw new OperationFailed(`${where}/wal/${unrecorded}.age has no sha256 in any upload record there: it cannot be checked`);
  return files;
}

/** One sealed file to fetch: where it is on the backup host, where its plain copy goes on the VPS, what it must hash to. */
interface Fetch {
  remote: string;
  local: string;
  record: SealedFile;
}

/** The two connections and the identity file of a fetch. */
interface FetchSession {
  admin: Host;
  vps: Host;
  identityFile: string;
  timeoutSeconds: number;
  log: Logger;
}

/** How one stage of a stream ended. */
type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>, onEnd: (ok: boolean) => void): Promise<Settled<T>> =>
  p
    .then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    )
    .then((s) => (onEnd(s.ok), s));

/**
 * Streams one sealed file from the backup host through `age --decrypt` on the runner into a file
 * on the VPS, and checks the sealed bytes and the plain bytes against the upload record. Throws
 * naming the file when either differs or age refuses it; a partial file is left for the caller
 * to remove with its staging directory.
 */
async function fetchFile(s: FetchSession, f: Fetch): Promise<void> {
  const sealed = createHash('sha256');
  let sealedBytes = 0;
  const tap = new PassThrough();
  tap.on('data', (d: Buffer) => (sealed.update(d), (sealedBytes += d.length)));
  const age = ageDecrypt(s.identityFile);
  let ageErr = '';
  age.stderr.on('data', (d: Buffer) => (ageErr += d.toString()));
  // Once one stage fails, the others are stopped: nothing would read or write the rest (a pipe
  // into an age that has exited waits forever for room, and holds the read with it).
  const stopAll = (ok: boolean) => {
    if (ok) return;
    tap.destroy();
    age.stdout.resume();
    if (age.exitCode === null) age.kill('SIGKILL');
  };
  // age closes its input when it refuses the file: the refusal is read from its exit status.
  age.stdin.on('error', (e) => (ignored(s.log, 'writing to age')(e), stopAll(false)));
  tap.pipe(age.stdin);
  const ageExit = new Promise<number>((resolve, reject) => {
    age.on('error', reject);
    age.on('close', (code) => (stopAll(code === 0), resolve(code ?? -1)));
  });
  const ran = (r: CommandResult) => (r.exitCode === 0 && !r.timedOut ? r : Promise.reject(new Error(tailLines(r.stderr, 2) || `exit ${r.exitCode}`)));
  const opts = { check: false, quiet: true, timeoutSeconds: s.timeoutSeconds };
  const [read, write, decrypt] = await Promise.all([
    settle(s.admin.run(argv('cat', '--', f.remote), { ...opts, stdoutTo: tap, label: `reading ${f.remote}` }).then(ran), stopAll),
    settle(s.vps.run(hostScript(RECEIVE_FILE, { FILE: f.local }), { ...opts, stdinFrom: age.stdout, label: `writing ${f.local}` }).then(ran), stopAll),
    settle(ageExit, stopAll),
  ]);
  const sealedHash = sealed.digest('hex');
  if (read.ok && (sealedHash !== f.record.sha256 || sealedBytes !== f.record.bytes))
    throw new OperationFailed(
      `the off-host copy ${f.remote} is damaged: sha256 ${sealedHash} (${sealedBytes} bytes), its upload record says ${f.record.sha256} (${f.record.bytes} bytes)`,
    );
  if (decrypt.ok && decrypt.value !== 0) {
    const why = tailLines(ageErr.replace(/^age: report .*$/gm, ''), 1);
    if (/no identity matched/i.test(ageErr))
      throw new OperationFailed(
        `the off-host copy ${f.remote} cannot be opened with offsite-identity: it is damaged, or was sealed to other recipients (age: ${why})`,
      );
    throw new OperationFailed(`the off-host copy ${f.remote} is damaged: age refused to decrypt it (${why})`);
  }
  if (!decrypt.ok) throw new OperationFailed(`age could not run on the runner to decrypt ${f.remote}: ${errorMessage(decrypt.error)}`);
  if (!read.ok) throw new OperationFailed(`reading ${f.remote} on the backup host failed: ${errorMessage(read.error)}`);
  if (!write.ok) throw new OperationFailed(`writing ${f.local} on the VPS failed: ${errorMessage(write.error)}`);
  const plain = write.value.stdout.trim().split(/\s+/)[0];
  if (plain !== f.record.plain.sha256)
    throw new OperationFailed(`the off-host copy ${f.remote} decrypts to sha256 ${plain}, its upload record says ${f.record.plain.sha256}`);
}

/** A failure while reading the off-host copies: nothing was recovered yet, prod was not touched. */
export class OffsiteFetchFailed extends OperationFailed {
  override name = 'OffsiteFetchFailed';
}

/** What one fetch reads and where it writes. */
interface FetchPlan {
  settings: OffsiteSettings;
  env: string;
  target: RecoveryTarget;
  /** The private staging directory on the VPS (made by the caller, with base/ and wal/ in it). */
  staging: string;
}

/** Steps 1 to 4: the base backup the target needs and the WAL from its start on, checked, into the staging directory. */
async function fetchArchive(s: FetchSession, p: FetchPlan): Promise<ArchiveSource> {
  const where = offsiteLocation(p.settings, p.env);
  const remoteRoot = offsiteDir(p.settings, p.env);
  const archive = await listOffsiteArchive(s.admin, p.settings, p.env);
  const base = chooseBaseBackup(offsiteBases(archive), p.target, `${where}/base`);
  const upload = archive.bases.find((b) => b.stamp === base.dir)?.upload;
  if (!upload) throw new Error(`no upload record for base backup ${base.dir}`);
  const localBase = `${p.staging}/base/${base.dir}`;
  const baseFile = (name: string): Fetch => ({
    remote: `${remoteRoot}/base/${base.dir}/${name}.age`,
    local: `${localBase}/${name}`,
    record: upload.files[`${name}.age`],
  });
  await s.vps.run(argv('mkdir', '-m', '700', localBase), { quiet: true, timeoutSeconds: 60 });
  await fetchFile(s, baseFile('backup_manifest'));
  const segmentBytes = [...archive.walRecords.values()][0]?.plain.bytes || DEFAULT_SEGMENT_BYTES;
  const start = manifestStartFile((await s.vps.readFile(`${localBase}/backup_manifest`)).toString('utf8'), segmentBytes);
  const wal = offsiteWalPlan(archive, start, where);
  s.log.info(
    `prod: fetching base backup ${base.dir} and ${wal.length} WAL file(s) from ${where} through the runner (decrypted there, checked against their upload records)`,
  );
  await fetchFile(s, baseFile('base.tar'));
  // The recovery's listing takes backup_manifest's time as the time the backup was whole: the copy's sealing time.
  await s.vps.run(argv('touch', '-d', `@${Math.floor(Date.parse(upload.sealedAt) / 1000)}`, `${localBase}/backup_manifest`), {
    quiet: true,
    timeoutSeconds: 60,
  });
  for (const n of wal) {
    const record = archive.walRecords.get(`${n}.age`);
    if (!record) throw new Error(`no record for ${n}`);
    await fetchFile(s, { remote: `${remoteRoot}/wal/${n}.age`, local: `${p.staging}/wal/${n}`, record });
  }
  return { baseRoot: `${p.staging}/base`, walDir: `${p.staging}/wal`, from: `the off-host copies at ${where}` };
}

/** The backup host's settings; a restore from it without them is refused in one line. */
function offsiteSettings(config: Config): OffsiteSettings {
  const o = config.backup.offsite;
  if (!o) throw new ConfigurationError('source offsite needs backup.offsite in the config: the backup host the copies are on');
  return o;
}

/**
 * Fetches the off-host copies a recovery to `target` needs into a private staging directory on
 * the VPS (see the top of this file), runs `use` on them, and removes the directory whatever
 * happened. A failure before `use` is an OffsiteFetchFailed.
 */
export async function withOffsiteArchive<T>(
  c: EnvContext,
  o: { offsite: OffsiteSource; target: RecoveryTarget },
  use: (source: ArchiveSource) => Promise<T>,
): Promise<T> {
  const { host, config, log } = c;
  const settings = offsiteSettings(config);
  const staging = `${scratchRoot(config)}/offsite-${utcStamp()}-${randomBytes(3).toString('hex')}`;
  const removeStaging = () => host.run(argv('rm', '-rf', '--', staging), { quiet: true, label: `removing ${staging}`, timeoutSeconds: 600 });
  try {
    let source: ArchiveSource;
    try {
      let admin: Host;
      try {
        admin = await (o.offsite.connect ?? connectWithAdminKey)(settings, o.offsite.adminKey, log);
      } catch (e) {
        throw new OperationFailed(`the runner cannot log in to the backup host with offsite-admin-key: ${errorMessage(e)}`);
      }
      try {
        await host.run(argv('install', '-d', '-m', '700', scratchRoot(config)), { quiet: true, timeoutSeconds: 60 });
        await host.run(argv('mkdir', '-m', '700', staging, `${staging}/base`, `${staging}/wal`), {
          quiet: true,
          label: `creating ${staging}`,
          timeoutSeconds: 60,
        });
        const session = (identityFile: string): FetchSession => ({ admin, vps: host, identityFile, timeoutSeconds: settings['timeout-seconds'], log });
        source = await withIdentityFile(o.offsite.identity, (file) => fetchArchive(session(file), { settings, env: c.env.name, target: o.target, staging }));
      } finally {
        await admin.close().catch(ignored(log, 'closing the connection to the backup host'));
      }
    } catch (e) {
      throw e instanceof ConfigurationError ? e : new OffsiteFetchFailed(errorMessage(e));
    }
    return await use(source);
  } finally {
    await removeStaging().catch(ignored(log, `removing ${staging}`));
  }
}
