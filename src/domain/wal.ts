/**
 * Continuous WAL archiving of prod (`backup.wal`). The runbook of `ensure`, run again and again:
 *
 *   1. On prod's server, as the admin user: the LOGIN REPLICATION role (password from the
 *      wal-password secret, sent as a SCRAM verifier) and the physical replication slot, created
 *      when absent. From the slot's creation on, prod keeps every WAL segment the receiver has not
 *      had yet.
 *   2. On the host: the WAL directory (0700) and the .pgpass file the receiver reads its password from.
 *   3. Observed state: prod's db container (its image id and network) and the receiver container.
 *   4. Desired state: a container `<project>-twinstack-wal` of prod's own db image on that network,
 *      running pg_receivewal on the slot into the directory, restarted by the daemon unless stopped,
 *      its wanted state in a label. The same running container is left alone; another one is replaced.
 *   5. Proof: the slot is active (the receiver is connected and streaming).
 *
 * `off` removes the container, then drops the slot, so WAL never piles up on prod for a receiver
 * that is gone. The role and the archived WAL stay.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { Config } from './config';
import type { EnvContext, Environment } from './environment';
import { OperationFailed, tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { dockerCli, logsTail, type ContainerRef } from '../infra/docker';
import { parseContainerInspect, type ContainerInspect } from '../infra/docker-inspect';
import { psql } from '../infra/postgres';
import { argv, hostScript } from '../infra/shell';
import { literal } from '../infra/sql';
import { utcStamp } from '../infra/stamp';
import {
  dropSlotScript,
  ensureRoleAndSlotScript,
  pgpassLine,
  pgBasebackup,
  pgReceivewal,
  runDetached,
  runOnce,
  scramVerifier,
  WAL_DIR_SCRIPT,
  WAL_STATUS_SCRIPT,
  type ToolContainer,
} from '../infra/wal';

/** Where the WAL directory is mounted in tool containers. */
const MOUNT = '/wal';
/** The label holding the receiver's wanted state (a hash): a container without the same one is replaced. */
export const SPEC_LABEL = 'twinstack.wal-spec';

/** The WAL directory on the host: backup.wal.dir, or <backup.dir>/prod/wal. */
export function walDir(config: Config): string {
  return config.backup.wal.dir ?? `${config.backup.dir}/prod/wal`;
}

/** The receiver container's name. */
export function receiverName(prod: Environment): string {
  return `${prod.project}-twinstack-wal`;
}

/** `docker inspect` of one container (a name on the host's engine, or a ContainerRef on its node's), parsed; undefined when there is no such container. */
async function inspectContainer(host: Host, container: string | ContainerRef): Promise<ContainerInspect | undefined> {
  const { id: ref, endpoint } = typeof container === 'string' ? { id: container, endpoint: undefined } : container;
  const r = await host.run(argv(dockerCli(endpoint), 'inspect', '--type', 'container', ref), { check: false, quiet: true, timeoutSeconds: 60 });
  if (r.exitCode !== 0) {
    if (/no such (object|container)/i.test(r.stderr)) return undefined;
    throw new OperationFailed(`docker inspect ${ref} failed: ${tailLines(r.stderr, 3)}`);
  }
  return parseContainerInspect(r.stdout)[0];
}

/** A container's address on one network, as docker inspect gives it. */
const networkAddress = z.object({ IPAddress: z.string().nullish(), IPPrefixLen: z.number().nullish() });

/** The .pgpass file the tools read their password from, as the container sees it. */
const PASSFILE = `${MOUNT}/.pgpass`;

/** What a tool container of prod's db image needs: that image, its network, the WAL directory. */
export async function toolContainer(
  host: Host,
  config: Config,
  prod: Environment,
): Promise<ToolContainer & { target: { host: string; port: number }; dbAddress?: { ip: string; prefix: number } }> {
  const ref = await prod.serviceContainer(host, prod.cfg.database.service);
  // The receiver and base backups run beside the db and write the archive to the manager's disk,
  // where backup, restore and the off-host copy read it: the db must run on the manager's node.
  if (ref.endpoint)
    throw new OperationFailed(
      `prod's ${prod.cfg.database.service} task runs on another node (reached at ${ref.endpoint}), and continuous WAL archiving works on the manager's node only: constrain prod's ${prod.cfg.database.service} to it (deploy.placement.constraints: [node.role == manager]) or set backup.wal.enabled: false`,
    );
  const db = await inspectContainer(host, ref);
  if (!db) throw new OperationFailed(`prod's ${prod.cfg.database.service} container went away while twinstack read it; run again`);
  const mode = db.HostConfig?.NetworkMode ?? '';
  const networks = Object.keys(db.NetworkSettings?.Networks ?? {});
  const network = mode === 'host' ? 'host' : networks.includes(mode) ? mode : networks[0];
  if (!network) throw new OperationFailed(`prod's ${prod.cfg.database.service} container is on no network a receiver could join`);
  const onNetwork = networkAddress.safeParse(db.NetworkSettings?.Networks?.[network]);
  return {
    // The db's own address there: a receiver on the same network connects from that subnet.
    dbAddress: onNetwork.success && onNetwork.data.IPAddress ? { ip: onNetwork.data.IPAddress, prefix: onNetwork.data.IPPrefixLen ?? 32 } : undefined,
    image: db.Image,
    network,
    mounts: [{ host: walDir(config), container: MOUNT }],
    passfile: PASSFILE,
    labels: {},
    // On the compose network the service name reaches the database; with host networking, loopback.
    target: { host: network === 'host' ? '127.0.0.1' : prod.cfg.database.service, port: prod.cfg.database['container-port'] },
  };
}

/** The database session that may create roles and slots: backup.wal.admin-user, or prod's own user. */
export function adminOf(config: Config, prod: Environment): Environment {
  const admin = config.backup.wal['admin-user'];
  return admin ? prod.withDatabaseUser(admin) : prod;
}

/** Step 1: the replication role and the physical slot. Returns what the slot step found. */
async function ensureRoleAndSlot(host: Host, config: Config, prod: Environment, password: string): Promise<'created' | 'present'> {
  const { role, slot } = config.backup.wal;
  const r = await host.run(psql(adminOf(config, prod), prod.cfg.database.name, { tuples: true }), {
    stdin: ensureRoleAndSlotScript(role, slot, scramVerifier(role, password)),
    label: `creating or checking the replication role ${role} and the slot ${slot}`,
    quiet: true,
    timeoutSeconds: 120,
  });
  return /slot:created/.test(r.stdout) ? 'created' : 'present';
}

/** Step 2: the WAL directory and the receiver's .pgpass (from standard input: never on a command line). */
async function prepareDir(host: Host, config: Config, password: string): Promise<void> {
  await host.run(hostScript(WAL_DIR_SCRIPT, { DIR: walDir(config) }), {
    stdin: pgpassLine(config.backup.wal.role, password),
    label: 'preparing the WAL directory',
    quiet: true,
    timeoutSeconds: 60,
  });
}

export interface WalEnsured {
  receiver: 'created' | 'replaced' | 'unchanged';
  container: string;
  slot: 'created' | 'present';
  dir: string;
  image: string;
}

/** `ensure`: the role, the slot, the directory and a streaming receiver; a second run changes nothing. */
export async function ensureWal(c: EnvContext, password: string): Promise<WalEnsured> {
  const { host, config, env: prod, log } = c;
  const { role, slot } = config.backup.wal;
  // First, as it refuses a db task on another node before a slot exists to hold WAL for no one.
  const tool = await toolContainer(host, config, prod);
  const slotState = await ensureRoleAndSlot(host, config, prod, password);
  await prepareDir(host, config, password);
  const receiver = pgReceivewal({ dir: MOUNT, slot, user: role, ...tool.target, synchronous: config.backup.wal.synchronous });
  const spec = createHash('sha256')
    .update(JSON.stringify({ image: tool.image, network: tool.network, mounts: tool.mounts, receiver }))
    .digest('hex')
    .slice(0, 16);
  const name = receiverName(prod);
  const current = await inspectContainer(host, name);
  let outcome: WalEnsured['receiver'] = 'unchanged';
  if (!current || current.State?.Running !== true || current.Config?.Labels?.[SPEC_LABEL] !== spec) {
    if (current) await host.run(argv('docker', 'rm', '-f', name), { label: 'removing the old WAL receiver', quiet: true, timeoutSeconds: 120 });
    await host.run(runDetached(name, { ...tool, labels: { [SPEC_LABEL]: spec } }, receiver), {
      label: 'starting the WAL receiver',
      quiet: true,
      timeoutSeconds: 120,
    });
    outcome = current ? 'replaced' : 'created';
  }
  await waitStreaming(host, config, prod, name);
  const container = (await inspectContainer(host, name))?.Id.slice(0, 12) ?? '';
  log.info(`prod: WAL receiver ${name} (${container}) ${outcome}, streaming slot ${slot} into ${walDir(config)}`);
  return { receiver: outcome, container, slot: slotState, dir: walDir(config), image: tool.image };
}

/** Whether the slot has a connected receiver (`t`/`f`, '' when the slot is absent). */
async function slotActive(host: Host, config: Config, prod: Environment): Promise<string> {
  const sql = `SELECT active FROM pg_replication_slots WHERE slot_name = ${literal(config.backup.wal.slot)}`;
  const r = await host.run(psql(adminOf(config, prod), prod.cfg.database.name, { tuples: true, run: [sql] }), { quiet: true, timeoutSeconds: 60 });
  return r.stdout.trim();
}

/** Step 5: the slot turns active within 30 s, or the step fails with the receiver's last log lines. */
async function waitStreaming(host: Host, config: Config, prod: Environment, name: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    if ((await slotActive(host, config, prod)) === 't') return;
    await new Promise((r) => setTimeout(r, 500));
  }
  const logs = await host.run(logsTail(name, 10), { check: false, quiet: true, timeoutSeconds: 60 });
  throw new OperationFailed(
    `the WAL receiver ${name} has not connected to slot ${config.backup.wal.slot} within 30 s (check pg_hba.conf allows replication for ${config.backup.wal.role}, and the wal-password): ${tailLines(logs.stdout, 5)}`,
  );
}

export interface WalStopped {
  container: 'removed' | 'absent';
  slot: 'dropped' | 'absent';
}

/** `off`: the receiver removed, then the slot dropped once its walsender has gone (so prod keeps no WAL for it). */
export async function stopWal(c: EnvContext): Promise<WalStopped> {
  const { host, config, env: prod, log } = c;
  const name = receiverName(prod);
  const existed = (await inspectContainer(host, name)) !== undefined;
  if (existed) await host.run(argv('docker', 'rm', '-f', name), { label: 'removing the WAL receiver', quiet: true, timeoutSeconds: 120 });
  const { slot } = config.backup.wal;
  let found = '';
  for (let i = 0; i < 40; i++) {
    const r = await host.run(psql(adminOf(config, prod), prod.cfg.database.name, { tuples: true }), {
      stdin: dropSlotScript(slot),
      label: `dropping the replication slot ${slot}`,
      quiet: true,
      timeoutSeconds: 60,
    });
    found = /slot:(\w+)/.exec(r.stdout)?.[1] ?? '';
    if (found !== 'active') break;
    await new Promise((res) => setTimeout(res, 500));
  }
  if (found === 'active')
    throw new OperationFailed(`the replication slot ${slot} is still held by a client 20 s after the receiver was removed: find it in pg_stat_replication`);
  log.info(`prod: WAL receiver ${existed ? 'removed' : 'was not there'}, slot ${slot} ${found}`);
  return { container: existed ? 'removed' : 'absent', slot: found === 'dropped' ? 'dropped' : 'absent' };
}

export interface WalSegment {
  name: string;
  bytes: number;
  /** Seconds since it was last written. */
  ageSeconds: number;
}

/** What is wrong with the archive, and what to do, one line each. */
export interface WalProblem {
  message: string;
  fix: string;
}

export interface WalHealth {
  /** The receiver container's state (`running`, `exited`, `restarting`, ... or `absent`). */
  receiver: string;
  /** The newest completed segment, and the one being received. */
  segment?: WalSegment;
  partial?: WalSegment;
  /**
   * Seconds of prod's history that may be missing from the completed segments: since the newest one
   * was completed (or since the receiver started, before the first), and 0 while the receiver is on
   * prod's current segment (an idle database completes none, yet loses nothing).
   */
  lagSeconds: number;
  /** Empty when the archive is healthy. */
  problems: WalProblem[];
}

/** Reads wal-status.sh's output against the threshold; `current` is prod's current WAL file, when known. */
export function parseWalStatus(text: string, o: { name: string; maxLagSeconds: number; current?: string }): WalHealth {
  const lines = new Map(text.split('\n').map((l) => [l.split(' ')[0], l.split(' ').slice(1)] as const));
  const now = Number(lines.get('now')?.[0]);
  const seg = (key: string): WalSegment | undefined => {
    const f = lines.get(key);
    return f && f.length === 3 ? { name: f[2], bytes: Number(f[1]), ageSeconds: Math.max(0, Math.round(now - Number(f[0]))) } : undefined;
  };
  const [receiver = 'absent', startedAt = ''] = lines.get('receiver') ?? [];
  const segment = seg('segment');
  const partial = seg('partial');
  const started = Date.parse(startedAt);
  const onCurrent = o.current !== undefined && partial?.name === `${o.current}.partial`;
  const lagSeconds = onCurrent ? 0 : segment ? segment.ageSeconds : Number.isNaN(started) ? 0 : Math.max(0, Math.round(now - started / 1000));
  const problems: WalProblem[] = [];
  if (receiver !== 'running') problems.push({ message: `the WAL receiver ${o.name} is ${receiver}`, fix: 'run the backup action with wal: ensure' });
  if (lagSeconds > o.maxLagSeconds)
    problems.push({
      message: `the newest archived WAL segment is ${lagSeconds} s old, over backup.wal.max-lag-seconds (${o.maxLagSeconds})`,
      fix: `look at docker logs ${o.name} and prod's pg_stat_replication`,
    });
  return { receiver, segment, partial, lagSeconds, problems };
}

/** The archive's lag and the receiver's state, read on the host (and prod's current WAL file, when the database answers). */
export async function walHealth(host: Host, config: Config, prod: Environment): Promise<WalHealth> {
  const name = receiverName(prod);
  const r = await host.run(hostScript(WAL_STATUS_SCRIPT, { DIR: walDir(config), NAME: name }), {
    label: 'reading the WAL archive',
    quiet: true,
    timeoutSeconds: 60,
  });
  const q = await host.run(psql(prod, prod.cfg.database.name, { tuples: true, run: ['SELECT pg_walfile_name(pg_current_wal_lsn())'] }), {
    check: false,
    quiet: true,
    timeoutSeconds: 60,
  });
  const current = q.exitCode === 0 && /^[0-9A-F]{24}$/.test(q.stdout.trim()) ? q.stdout.trim() : undefined;
  return parseWalStatus(r.stdout, { name, maxLagSeconds: config.backup.wal['max-lag-seconds'], current });
}

export interface BaseBackup {
  /** The backup's directory on the host: <backup.dir>/prod/base/<stamp>. */
  dir: string;
  stamp: string;
  /** The files pg_basebackup wrote (base.tar, backup_manifest, a tar per tablespace) and their sizes. */
  files: Record<string, number>;
  seconds: number;
}

/** The WAL archive's file names (the host's own archive, or `dir`: a copy of it). */
export async function listArchive(host: Host, config: Config, dir = walDir(config)): Promise<string[]> {
  const r = await host.run(argv('find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-printf', '%f\\n'), {
    label: 'listing the WAL archive',
    quiet: true,
    timeoutSeconds: 120,
  });
  return r.stdout.split('\n').filter(Boolean);
}

/** Where base backups go on the host. */
export function baseBackupRoot(config: Config): string {
  return `${config.backup.dir}/prod/base`;
}

/**
 * A base backup of prod's cluster: pg_basebackup from prod's own db image, as the replication role
 * (its .pgpass written again from the secret), tar files without WAL (the archive holds it) into a
 * new dated directory. A backup that fails leaves no directory behind.
 */
export async function baseBackup(c: EnvContext, password: string, now = new Date()): Promise<BaseBackup> {
  const { host, config, env: prod, log } = c;
  const stamp = utcStamp(now);
  const root = baseBackupRoot(config);
  const dir = `${root}/${stamp}`;
  await prepareDir(host, config, password);
  await host.run(argv('install', '-d', '-m', '700', root), { label: 'preparing the base backup directory', quiet: true, timeoutSeconds: 60 });
  const tool = await toolContainer(host, config, prod);
  const mounts = [...tool.mounts, { host: root, container: '/base' }];
  const command = pgBasebackup({ dir: `/base/${stamp}`, label: `twinstack base ${stamp}`, user: config.backup.wal.role, ...tool.target });
  const started = Date.now();
  try {
    await host.run(runOnce(`${prod.project}-twinstack-basebackup`, { ...tool, mounts }, command), {
      label: 'pg_basebackup of prod',
      quiet: true,
      timeoutSeconds: config.backup['timeout-seconds'],
    });
  } catch (e) {
    await host.run(argv('rm', '-rf', dir), { check: false, quiet: true, timeoutSeconds: 300 });
    throw e;
  }
  const r = await host.run(argv('find', dir, '-mindepth', '1', '-maxdepth', '1', '-type', 'f', '-printf', '%s %f\\n'), { quiet: true, timeoutSeconds: 60 });
  const files: Record<string, number> = {};
  for (const line of r.stdout.trim().split('\n')) {
    const m = /^(\d+) (.+)$/.exec(line);
    if (m) files[m[2]] = Number(m[1]);
  }
  const seconds = Math.round((Date.now() - started) / 1000);
  log.info(`prod: base backup ${stamp} in ${dir} (${Object.keys(files).join(', ')}), ${seconds} s`);
  return { dir, stamp, files, seconds };
}
