/**
 * The command lines of PostgreSQL's WAL tools (pg_receivewal, pg_basebackup), run in a container of
 * prod's own db image, and the SQL that prepares their replication role and slot: the one builder
 * of each. No password is ever in these lines: the tools read it from a .pgpass file (PGPASSFILE),
 * and the role's password reaches the server only as a SCRAM verifier, on psql's standard input.
 */
import { createHmac, createHash, pbkdf2Sync } from 'node:crypto';
import * as fs from 'node:fs';
import { argv, raw, type Arg } from './shell';
import { sqlFile } from './sql';

/** Where a replication client connects: host and port as seen from its container, and its role. */
export interface ReplicationTarget {
  host: string;
  port: number;
  user: string;
}

/**
 * pg_receivewal streaming WAL from a physical slot into `dir`: an argument vector, the program first.
 * `synchronous` flushes every write as it arrives instead of at the end of each segment.
 */
export function pgReceivewal(o: ReplicationTarget & { dir: string; slot: string; synchronous?: boolean }): string[] {
  const args = ['pg_receivewal', '-D', o.dir, '-S', o.slot, '-h', o.host, '-p', String(o.port), '-U', o.user, '--no-password'];
  return o.synchronous ? [...args, '--synchronous'] : args;
}

/**
 * pg_basebackup of the whole cluster as tar files into `dir` (a new dated directory), without WAL
 * of its own (-X none: the WAL archive holds it) and with a fast checkpoint, so it starts at once.
 */
export function pgBasebackup(o: ReplicationTarget & { dir: string; label: string }): string[] {
  return [
    'pg_basebackup',
    '-D',
    o.dir,
    '-F',
    'tar',
    '-X',
    'none',
    '-c',
    'fast',
    '-l',
    o.label,
    '-h',
    o.host,
    '-p',
    String(o.port),
    '-U',
    o.user,
    '--no-password',
  ];
}

export interface ToolContainer {
  /** Prod's own db image (its id), so the tool is the server's version. */
  image: string;
  /** The docker network the database is reachable on (`host` with host networking). */
  network: string;
  /** Host directories and where they are mounted in the container. */
  mounts: ReadonlyArray<{ host: string; container: string }>;
  /** The .pgpass file, as the container sees it. */
  passfile: string;
  labels: Record<string, string>;
}

function containerWords(c: ToolContainer): Arg[] {
  return [
    '--network',
    c.network,
    // The host user twinstack logs in as owns what the tool writes, so it can read and prune it.
    '--user',
    raw('"$(id -u):$(id -g)"'),
    ...c.mounts.flatMap((m) => ['-v', `${m.host}:${m.container}`]),
    '-e',
    `PGPASSFILE=${c.passfile}`,
    ...Object.entries(c.labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
  ];
}

/** `docker run -d` of a long-lived tool container (the WAL receiver), restarted by the daemon unless stopped. */
export function runDetached(name: string, c: ToolContainer, tool: readonly string[]): string {
  return argv('docker', 'run', '-d', '--restart', 'unless-stopped', '--name', name, containerWords(c), '--entrypoint', tool[0], c.image, tool.slice(1));
}

/** `docker run --rm` of a one-off tool container (a base backup), its exit status the tool's. */
export function runOnce(name: string, c: ToolContainer, tool: readonly string[]): string {
  return argv('docker', 'run', '--rm', '--name', name, containerWords(c), '--entrypoint', tool[0], c.image, tool.slice(1));
}

/** A .pgpass line giving `user` its password on every host, port and database (replication included). */
export function pgpassLine(user: string, password: string): string {
  if (/[\n\r\0]/.test(password)) throw new Error('the replication password must be one line');
  const esc = (s: string) => s.replace(/[\\:]/g, (c) => `\\${c}`);
  return `*:*:*:${esc(user)}:${esc(password)}\n`;
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (as `\password` sends it), with a salt
 * derived from the role and the password: the same secret gives the same verifier, so checking the
 * role again changes nothing, and a new secret gives a new one.
 */
export function scramVerifier(role: string, password: string, iterations = 4096): string {
  const salt = createHmac('sha256', password).update(`twinstack-wal:${role}`).digest().subarray(0, 16);
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

// Literal paths: scripts/bundle.sh finds them in the bundle and copies the files beside it.
const ROLE_SQL = sqlFile(fs.readFileSync(__dirname + '/wal-role.sql', 'utf8'));
const SLOT_SQL = sqlFile(fs.readFileSync(__dirname + '/wal-slot.sql', 'utf8'));
const DROP_SLOT_SQL = sqlFile(fs.readFileSync(__dirname + '/wal-drop-slot.sql', 'utf8'));
/** prod's settings that streaming replication needs, one `name|setting` row each. */
export const WAL_SETTINGS_SQL = sqlFile(fs.readFileSync(__dirname + '/wal-settings.sql', 'utf8'));
/** pg_hba.conf's rules in file order, one JSON array (read as a superuser). */
export const WAL_HBA_SQL = sqlFile(fs.readFileSync(__dirname + '/wal-hba.sql', 'utf8'));
/** Makes the WAL directory and writes its .pgpass from standard input (parameter DIR). */
export const WAL_DIR_SCRIPT = fs.readFileSync(__dirname + '/wal-dir.sh', 'utf8');
/** Prints the archive's newest segments and the receiver's state (parameters DIR, NAME). */
export const WAL_STATUS_SCRIPT = fs.readFileSync(__dirname + '/wal-status.sh', 'utf8');

/** psql `\set` lines for the scripts below (values are names and a verifier: no quote or backslash). */
function psqlVars(vars: Record<string, string>): string {
  return Object.entries(vars)
    .map(([k, v]) => {
      if (/['\\\n]/.test(v)) throw new Error(`psql variable ${k} holds a quote, a backslash or a newline`);
      return `\\set ${k} '${v}'\n`;
    })
    .join('');
}

/**
 * A psql script (standard input) that creates the LOGIN REPLICATION role, or gives it back what it
 * lacks (login, replication, the secret's password), and changes nothing when it lacks nothing.
 * Then the physical slot, created reserving WAL at once when absent; prints `slot:<created|present>`
 * and fails when the name is taken by a logical slot.
 */
export function ensureRoleAndSlotScript(role: string, slot: string, verifier: string): string {
  return `${psqlVars({ role, slot, verifier })}${ROLE_SQL}\n\\gexec\n${SLOT_SQL}\n`;
}

/** A psql script dropping the slot when no receiver holds it; prints `slot:<dropped|absent|active>`. */
export function dropSlotScript(slot: string): string {
  return `${psqlVars({ slot })}${DROP_SLOT_SQL}\n`;
}
