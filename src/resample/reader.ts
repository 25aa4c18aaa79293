/**
 * Production is read through a role the server itself keeps read-only, so what slips past the
 * config's SQL guard still meets a wall: `sample.reader-role` (default `twinstack_reader`), a
 * LOGIN role that is not a superuser, may not create roles, databases or replication slots, is a
 * member of `pg_read_all_data` and of nothing else, owns nothing, may create nothing in production's
 * database, has `default_transaction_read_only = on`, and a connection limit. twinstack creates it
 * through production's configured user when it is missing (that user must be a superuser, as
 * `POSTGRES_USER` is in the official postgres image), and checks it before every read; a role that
 * could write is refused, with the SQL that makes one that cannot.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import type { Host } from '../infra/host';
import { OperationFailed } from '../infra/errors';
import type { Logger } from '../infra/logger';
import { ident, literal, sqlFile } from '../infra/sql';
import { Environment } from '../domain/environment';
import type { Config } from '../domain/config';
import { queryJson } from './catalog';

/** Sessions at once: the rows and the schema read side by side, with room for one more. */
export const READER_CONNECTION_LIMIT = 4;

/** The SQL that makes the role, for the log and for a refusal's one line. */
export function createReaderSql(role: string, database: string): string {
  // sample.reader-role is a plain lower-case name (src/config/sample.ts): written as it is, so the line reads as typed.
  const name = /^[a-z_][a-z0-9_]*$/.test(role) ? role : ident(role);
  return (
    `CREATE ROLE ${name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT ` +
    `CONNECTION LIMIT ${READER_CONNECTION_LIMIT} IN ROLE pg_read_all_data; ALTER ROLE ${name} SET default_transaction_read_only = on; ` +
    // Where PUBLIC lost CONNECT or TEMPORARY on the database (a hardened server), the role gets them back.
    `GRANT CONNECT, TEMPORARY ON DATABASE ${ident(database)} TO ${name};`
  );
}

/** What reader-facts.sql prints. */
const readerFacts = z.object({
  user: z.string(),
  superuser: z.boolean(),
  createrole: z.boolean(),
  createdb: z.boolean(),
  replication: z.boolean(),
  bypassrls: z.boolean(),
  connlimit: z.number(),
  readAll: z.boolean(),
  /** Roles it belongs to other than pg_read_all_data (their rights would be its rights). */
  memberOf: z.array(z.string()),
  readOnly: z.string(),
  createOnDatabase: z.boolean(),
  createOnSchemas: z.array(z.string()),
  owns: z.number(),
  writableTables: z.number(),
});
type ReaderFacts = z.infer<typeof readerFacts>;

/** Whether the role exists, whether production's user may create it, and the server's version number. */
const readerAdmin = z.object({ exists: z.boolean(), can: z.boolean(), server: z.number() });

const FACTS_SQL = sqlFile(fs.readFileSync(__dirname + '/reader-facts.sql', 'utf8'));

/** What makes the role able to write or act on the server, one phrase each; empty when it only reads. */
export function readerProblems(f: ReaderFacts): string[] {
  // A superuser may do everything else on the list too: that one phrase says it all.
  if (f.superuser) return ['is a superuser'];
  const out: string[] = [];
  if (f.createrole) out.push('may create roles');
  if (f.createdb) out.push('may create databases');
  if (f.replication) out.push('may replicate (and create replication slots)');
  if (f.bypassrls) out.push('bypasses row security');
  if (!f.readAll) out.push('is not a member of pg_read_all_data');
  if (f.memberOf.length) out.push(`is a member of ${f.memberOf.join(', ')} (their rights are its rights)`);
  if (f.readOnly !== 'on') out.push('does not have default_transaction_read_only = on');
  if (f.createOnDatabase) out.push("may create schemas in production's database");
  if (f.createOnSchemas.length) out.push(`may create objects in schema ${f.createOnSchemas.join(', ')}`);
  if (f.owns > 0) out.push(`owns ${f.owns} table(s) or schema(s)`);
  if (f.writableTables > 0) out.push(`may write ${f.writableTables} table(s)`);
  if (f.connlimit < 0 || f.connlimit > READER_CONNECTION_LIMIT * 4) out.push(`has no connection limit (${f.connlimit})`);
  return out;
}

/**
 * Production as its read-only role sees it: checked, created first when missing. Every read of
 * production by the resample goes through the environment this returns.
 */
export async function productionReader(host: Host, config: Config, log: Logger): Promise<Environment> {
  return (await productionReaderWith(host, config, log, () => Promise.resolve(undefined))).reader;
}

/**
 * The read-only role, checked, and `read` through it: the read (a catalog query, say) runs beside
 * the check of what the role may do, whose refusal wins over any error of the read.
 */
export async function productionReaderWith<T>(
  host: Host,
  config: Config,
  log: Logger,
  read: (reader: Environment) => Promise<T>,
): Promise<{ reader: Environment; value: T }> {
  const prod = new Environment('prod', config);
  const role = config.sample['reader-role'];
  const db = prod.cfg.database.name;
  const fix = `as a superuser of production's database ${db} (e.g. ${config['compose-command']} -p ${prod.cfg.project} exec ${prod.cfg.database.service} psql -U <superuser> -d ${db}), run: ${createReaderSql(role, db)}`;
  if (role === prod.cfg.database.user)
    throw new OperationFailed(
      `sample.reader-role is production's own database user ${role}, which may write: name a role of its own (default twinstack_reader); ${fix}`,
    );
  const reader = prod.withDatabaseUser(role);
  // The check of what the role may do and the read go beside the check that the role exists: when
  // it does (every run but the first), the three cost one round trip's wait.
  const checkAndRead = () =>
    Promise.allSettled([
      queryJson(host, reader, { database: db, sql: FACTS_SQL, label: `checking what ${role} may do in production`, schema: readerFacts }),
      read(reader),
    ]);
  let side = checkAndRead();
  const admin = await queryJson(host, prod, {
    database: db,
    sql:
      `SELECT json_build_object('exists', EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal(role)}), ` +
      `'can', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), 'server', current_setting('server_version_num')::int)`,
    label: "checking production's read-only role",
    schema: readerAdmin,
  }).catch(async (e) => {
    await side;
    throw e;
  });
  if (admin.server < 140000) {
    await side;
    throw new OperationFailed(`production's PostgreSQL is older than 14: it has no pg_read_all_data role, which the resample's read-only session needs`);
  }
  if (!admin.exists) {
    // The side reads could not log in: they run again once the role is there.
    await side;
    if (!admin.can) throw new OperationFailed(`production has no role ${role} to read through, and ${prod.cfg.database.user} may not create it: ${fix}`);
    await queryJson(host, prod, {
      database: db,
      sql: `${createReaderSql(role, db)} SELECT 'null'`,
      label: `creating production's read-only role ${role}`,
      schema: z.null(),
    });
    log.info(`Created production's read-only role ${role} (pg_read_all_data, default_transaction_read_only, connection limit ${READER_CONNECTION_LIMIT}).`);
    side = checkAndRead();
  }
  const [facts, value] = await side;
  if (facts.status === 'rejected') throw facts.reason;
  const problems = readerProblems(facts.value);
  if (problems.length)
    throw new OperationFailed(
      `production's read role ${role} ${problems.join(', ')}: the server would not stop a write; use a role that may only read: ${fix}`,
    );
  if (value.status === 'rejected') throw value.reason;
  return { reader, value: value.value };
}
