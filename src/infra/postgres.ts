/**
 * The one place twinstack writes the flags of PostgreSQL's client tools (psql, pg_dump, pg_restore,
 * pg_dumpall), and the database-level SQL that more than one operation needs (ending sessions,
 * renaming and dropping a database). Every psql twinstack runs has the same base: no psqlrc (`-X`),
 * quiet, and stopping at the first error unless a caller replays lines that are expected to fail.
 * Where a tool runs (in the db container or on the host) is the client's business (DbClient.dbTool).
 */
import { quote, type Arg } from './shell';
import { ident, literal } from './sql';

export type DbTool = 'psql' | 'pg_dump' | 'pg_restore' | 'pg_dumpall' | 'pg_isready';

/** Something that can run a PostgreSQL client tool against its database server (an environment). */
export interface DbClient {
  dbTool(tool: DbTool, args: readonly Arg[]): string;
}

/** In `PsqlOptions.run`: the script psql reads from its standard input (`-f -`). */
export const STDIN_SCRIPT = Symbol('stdin script');

export interface PsqlOptions {
  /** Unaligned, tuples only (`-A -t`): output a program reads. */
  tuples?: boolean;
  /** Where query output goes (`-o`), e.g. /dev/null for a replayed dump. */
  output?: string;
  /** Stop at the first error (default). false only where failing lines are expected and reported. */
  stopOnError?: boolean;
  /** What psql runs, in order: SQL commands (`-c`) and the standard-input script. Default: the script. */
  run?: ReadonlyArray<string | typeof STDIN_SCRIPT>;
}

/** A shell command running psql on `database` through the client's connection. */
export function psql(client: DbClient, database: string, o: PsqlOptions = {}): string {
  const args: string[] = ['-X', '-q'];
  if (o.stopOnError !== false) args.push('-v', 'ON_ERROR_STOP=1');
  if (o.tuples) args.push('-A', '-t');
  if (o.output) args.push('-o', o.output);
  args.push('-d', database);
  const steps = o.run ?? [STDIN_SCRIPT];
  // literal() doubles quotes and relies on this; set it rather than trust the server's default.
  if (steps.length) args.push('-c', 'SET standard_conforming_strings = on');
  for (const step of steps) {
    if (step === STDIN_SCRIPT) args.push('-f', '-');
    else args.push('-c', step);
  }
  return client.dbTool('psql', args);
}

export interface PgDumpOptions {
  /** The custom format (`-Fc`) that pg_restore reads; else plain SQL. */
  custom?: boolean;
  /** Definitions only, no rows (`--schema-only`). */
  schemaOnly?: boolean;
  /** One section of the dump: pre-data (tables without constraints), data or post-data (constraints, indexes). */
  section?: 'pre-data' | 'data' | 'post-data';
  /** How long to wait for a table's lock before giving up (`--lock-wait-timeout`), e.g. '30s'. */
  lockWaitTimeout?: string;
  /** Leave out owners and privileges (`--no-owner --no-privileges`): objects as another role recreates them. */
  noOwnership?: boolean;
  /** Leave out what belongs to the server rather than the database: publications, subscriptions, security labels, tablespaces. */
  noServerObjects?: boolean;
  /** Dump as of an exported snapshot (`--snapshot`), shared with another session. */
  snapshot?: string;
}

/** A shell command running pg_dump of `database`, the dump on standard output. */
export function pgDump(client: DbClient, database: string, o: PgDumpOptions = {}): string {
  const args: string[] = [];
  if (o.custom) args.push('-Fc');
  if (o.schemaOnly) args.push('--schema-only');
  if (o.section) args.push('--section', o.section);
  if (o.lockWaitTimeout) args.push(`--lock-wait-timeout=${o.lockWaitTimeout}`);
  if (o.noOwnership) args.push('--no-owner', '--no-privileges');
  if (o.noServerObjects) args.push('--no-publications', '--no-subscriptions', '--no-security-labels', '--no-tablespaces');
  if (o.snapshot) args.push(`--snapshot=${o.snapshot}`);
  return client.dbTool('pg_dump', [...args, '-d', database]);
}

/** `pg_dump --version`: the client tools' version, as the dump records it. */
export function pgDumpVersion(client: DbClient): string {
  return client.dbTool('pg_dump', ['--version']);
}

/** pg_dumpall of the roles and tablespaces (`--globals-only`); without role passwords when they cannot be read. */
export function pgDumpGlobals(client: DbClient, o: { rolePasswords: boolean }): string {
  return client.dbTool('pg_dumpall', ['--globals-only', ...(o.rolePasswords ? [] : ['--no-role-passwords'])]);
}

/** Where pg_restore reads a custom-format dump: a file it opens (needed for parallel jobs), or standard input redirected from a file on the host. */
export type DumpSource = { file: string } | { stdin: string };

function fromSource(command: string, from: DumpSource): string {
  return 'stdin' in from ? `${command} < ${quote(from.stdin)}` : command;
}

export interface PgRestoreOptions {
  /** All or nothing (`--single-transaction`). */
  singleTransaction?: boolean;
  /** Objects owned by the connecting role (`--no-owner`), as in a copy. */
  noOwner?: boolean;
  /** Parallel jobs (`-j`); only with a dump file pg_restore opens itself. */
  jobs?: number;
}

/** A shell command restoring a dump into `database`, stopping at the first error. */
export function pgRestore(client: DbClient, database: string, from: DumpSource, o: PgRestoreOptions = {}): string {
  const args: string[] = [];
  if (o.singleTransaction) args.push('--single-transaction');
  if (o.noOwner) args.push('--no-owner');
  args.push('--exit-on-error');
  if (o.jobs) args.push('-j', String(o.jobs));
  args.push('-d', database);
  if ('file' in from) args.push(from.file);
  return fromSource(client.dbTool('pg_restore', args), from);
}

/** `pg_restore --list` of a dump, the listing thrown away: whether the dump can be read whole. */
export function pgRestoreReads(client: DbClient, from: DumpSource): string {
  return `${fromSource(client.dbTool('pg_restore', ['--list', ...('file' in from ? [from.file] : [])]), from)} > /dev/null`;
}

/**
 * Ends the sessions on a database that the connected role may end. A non-superuser owner (the
 * usual `via: container` login) may only signal its own roles' sessions: asking for others would be
 * an error, so those are left to the caller's retry ("being accessed by other users").
 */
export function endSessionsSql(database: string): string {
  return (
    `SELECT count(pg_terminate_backend(a.pid)) FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid ` +
    `WHERE a.datname = ${literal(database)} AND a.pid <> pg_backend_pid() ` +
    `AND ((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR (NOT r.rolsuper AND (pg_has_role(r.oid, 'MEMBER') OR pg_has_role('pg_signal_backend', 'MEMBER'))));`
  );
}

/** Ends the database's sessions, then renames it (one script; the rename is its last statement). */
export function renameDatabaseSql(from: string, to: string, opts: { settle?: boolean } = {}): string {
  // Terminated backends take a moment to leave: wait until none is left (at most 2 s, looking every
  // 10 ms with a fresh statistics snapshot) before the rename looks; a caller retries what remains.
  const settle =
    `DO $ts_settle$ BEGIN FOR i IN 1..200 LOOP PERFORM pg_stat_clear_snapshot(); ` +
    `EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = ${literal(from)} AND pid <> pg_backend_pid()); ` +
    `PERFORM pg_sleep(0.01); END LOOP; END $ts_settle$;\n`;
  return `${endSessionsSql(from)}\n${opts.settle ? settle : ''}ALTER DATABASE ${ident(from)} RENAME TO ${ident(to)};\n`;
}

/**
 * Copies the settings that belong to a database rather than to its dump (`ALTER DATABASE … SET`,
 * `ALTER ROLE … IN DATABASE … SET`) from one database to another. A psql script (\gexec).
 */
export function copyDatabaseSettingsSql(from: string, to: string): string {
  // List settings are stored as their elements, each already quoted where needed ("$user",
  // public): written back as they are. Every other value is one literal.
  const value =
    "CASE WHEN lower(split_part(c, '=', 1)) IN ('search_path', 'temp_tablespaces', 'session_preload_libraries', 'local_preload_libraries', 'shared_preload_libraries') " +
    "THEN substr(c, strpos(c, '=') + 1) ELSE quote_literal(substr(c, strpos(c, '=') + 1)) END";
  return (
    `SELECT CASE WHEN s.setrole = 0 THEN format('ALTER DATABASE %I SET %s = %s', ${literal(to)}, split_part(c, '=', 1), ${value}) ` +
    `ELSE format('ALTER ROLE %I IN DATABASE %I SET %s = %s', r.rolname, ${literal(to)}, split_part(c, '=', 1), ${value}) END ` +
    `FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole, unnest(s.setconfig) c ` +
    `WHERE d.datname = ${literal(from)} AND split_part(c, '=', 1) ~ '^[A-Za-z_][A-Za-z0-9_.]*$' \\gexec\n`
  );
}

/** Ends the database's sessions, then drops it if it exists. */
export function dropDatabaseSql(name: string): string {
  return `${endSessionsSql(name)}\nDROP DATABASE IF EXISTS ${ident(name)};\n`;
}
