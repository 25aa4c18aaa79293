/**
 * The one place twinstack builds a psql command line, and the database-level SQL that more than one
 * operation needs (ending sessions, renaming and dropping a database). Every psql twinstack runs
 * has the same base: no psqlrc (`-X`), quiet, and stopping at the first error unless a caller
 * replays lines that are expected to fail.
 */
import type { Arg } from './shell';
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
  // A short pause lets terminated backends leave pg_stat_activity before the rename looks.
  return `${endSessionsSql(from)}\n${opts.settle ? 'SELECT pg_sleep(0.2);\n' : ''}ALTER DATABASE ${ident(from)} RENAME TO ${ident(to)};\n`;
}

/** Ends the database's sessions, then drops it if it exists. */
export function dropDatabaseSql(name: string): string {
  return `${endSessionsSql(name)}\nDROP DATABASE IF EXISTS ${ident(name)};\n`;
}
