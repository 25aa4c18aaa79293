import { z } from 'zod';
import { AGE_RECIPIENT, AGE_SECRET_KEY } from '../infra/age';
import { hostMatches, parseKnownHosts } from '../infra/known-hosts';
import { errorMessage } from '../infra/errors';
import { fragmentProblem } from './sql-guard';

const absPath = z
  .string()
  .regex(/^\/[A-Za-z0-9._/@+-]*$/, 'must be an absolute path of letters, digits and . _ / @ + -')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
  .transform((p) => p.replace(/\/+$/, ''));

const HOST = /^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$|^\[?[0-9A-Fa-f:.]+\]?$/;

const recipient = z.string().superRefine((r, ctx) => {
  if (AGE_SECRET_KEY.test(r.trim())) {
    ctx.addIssue({
      code: z.ZodIssueCode.custom,
      message: 'is an age private key: put its public key here (age-keygen -y key.txt), and keep the private key off the VPS and out of the repository',
    });
  } else if (!AGE_RECIPIENT.test(r)) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'must be an age public key: "age1" and 58 letters and digits, as age-keygen -y prints it' });
  }
});

/**
 * `backup.offsite:` — a second host that receives an encrypted copy of every verified backup,
 * straight from the VPS over rsync+ssh, with a key that may only add files there (rrsync -wo
 * -no-del -no-overwrite in that host's authorized_keys). See src/domain/offsite.ts.
 */
export const offsiteSchema = z
  .object({
    host: z.string().regex(HOST, 'must be a host name or an IP address'),
    port: z.number().int().min(1).max(65535).default(22),
    user: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, 'must be a user name on the backup host'),
    /** The directory on the backup host, the one rrsync is confined to; each environment gets a subdirectory. */
    path: absPath.refine((p) => p !== '', 'must not be /'),
    /** The backup host's public key line(s), as in ~/.ssh/known_hosts: pinned on the VPS and on the runner. */
    'known-hosts': z.union([z.string(), z.array(z.string()).min(1)]).transform((k) => (Array.isArray(k) ? k.join('\n') : k)),
    /** age public keys the copies are encrypted to; the private keys stay off the VPS. */
    recipients: z.array(recipient).min(1, 'needs at least one age public key (age-keygen -y key.txt)'),
    /** true: a copy that fails fails the step (the local backup stays); false: it only warns. */
    required: z.boolean().default(true),
    /** Copies kept per environment on the backup host, pruned from the runner with offsite-admin-key. */
    keep: z.number().int().min(1).max(1000).default(14),
    'timeout-seconds': z.number().int().min(60).max(86400).default(7200),
  })
  .strict()
  .superRefine((o, ctx) => {
    let entries;
    try {
      entries = parseKnownHosts(o['known-hosts']);
    } catch (e) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['known-hosts'], message: errorMessage(e).replace(/^known-hosts /, '') });
      return;
    }
    // A bad host or port is reported on its own line above; which key it needs cannot be said yet.
    if (!HOST.test(o.host) || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) return;
    const host = o.host.replace(/^\[|\]$/g, '');
    if (!entries.some((e) => e.marker === '' && hostMatches(e.hosts, host, o.port))) {
      const name = o.port === 22 ? host : `[${host}]:${o.port}`;
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['known-hosts'],
        message: `has no key for ${name}: give that host's line(s), e.g. from ssh-keyscan -p ${o.port} ${host} checked against its /etc/ssh/ssh_host_*_key.pub`,
      });
    }
  });

export type OffsiteSettings = z.output<typeof offsiteSchema>;

const roleName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be lower-case letters, digits and underscores, not starting with a digit');

/**
 * `backup.wal:` — continuous WAL archiving of prod's database: a pg_receivewal container of its own,
 * from prod's db image, streaming from a physical replication slot into a directory on the host.
 * See src/domain/wal.ts.
 */
export const walSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** The physical replication slot on prod's server; it keeps WAL until the receiver has it. */
    slot: roleName.default('twinstack_wal'),
    /** The LOGIN REPLICATION role pg_receivewal connects as; its password comes from the wal-password secret. */
    role: roleName.default('twinstack_wal'),
    /** The role that creates the replication role and the slot (a superuser); default: prod's database user. */
    'admin-user': z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, 'must be a PostgreSQL role name')
      .optional(),
    /** The WAL directory on the host; default <backup.dir>/prod/wal. */
    dir: absPath.refine((p) => p !== '', 'must not be /').optional(),
    /** monitor fails when the newest archived segment is older than this (or the receiver is down). */
    'max-lag-seconds': z.number().int().min(60, 'must be at least 60').max(604800, 'must be at most 604800 (a week)').default(3600),
    /** Base backups kept on the host, newest first; WAL older than the oldest kept one's start is deleted. */
    'keep-base': z.number().int().min(1, 'must be at least 1').max(1000).default(7),
    /**
     * pg_receivewal --synchronous: each write flushed to disk at once (and reported flushed to prod),
     * so a receiver that crashes loses nothing it had received. Off: it flushes as a segment ends.
     */
    synchronous: z.boolean().default(false),
  })
  .strict()
  .default({});

export type WalSettings = z.output<typeof walSchema>;

/** A smoke query of the drill: one SELECT, checked by PostgreSQL's parser against sql-guard.ts's allowlist as sample SQL is. */
const smokeSql = z
  .string()
  .min(1)
  .max(2000)
  .superRefine((text, ctx) => {
    const problem = fragmentProblem(text, 'query');
    if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `${problem}; write one SELECT over prod's tables` });
  });

/**
 * `backup.drill:` — the restore drill (the restore action with drill: true, src/domain/drill.ts):
 * its thresholds, and the smoke queries run against the recovered copy. A query passes when it
 * returns a row, and, with `expect`, when its first row's first column reads exactly that.
 */
export const drillSchema = z
  .object({
    /** Seconds from the drill's start to the recovered copy answering its checks. */
    'max-rto-seconds': z.number().int().min(1).max(604800).default(1800),
    /** Seconds between the recovery point (last transaction recovered) and the drill's start. */
    'max-rpo-seconds': z.number().int().min(1).max(2592000).default(86400),
    smoke: z
      .array(
        z.union([
          smokeSql.transform((sql) => ({ sql, expect: undefined as string | undefined })),
          z.object({ sql: smokeSql, expect: z.string().optional() }).strict(),
        ]),
      )
      .max(100)
      .default([]),
  })
  .strict()
  .default({});

export type DrillSettings = z.output<typeof drillSchema>;

/** `backup:` — where pg_dump backups go on the host, how they are verified, how many are kept. */
export const backupSchema = z
  .object({
    /** On the host, outside every checkout. Each environment gets a subdirectory. */
    dir: z
      .string()
      .regex(/^\/[A-Za-z0-9._/@+-]*$/, 'must be an absolute path of letters, digits and . _ / @ + -')
      .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
      .transform((p) => p.replace(/\/+$/, ''))
      .default('/var/backups/twinstack'),
    /** How many verified backups to keep per environment (the newest verified one is never deleted). */
    keep: z.number().int().min(1).max(1000).default(7),
    /** `list`: pg_restore --list and the checksum; `restore`: also restore into a scratch database and compare row counts. */
    verify: z.enum(['list', 'restore']).default('list'),
    'timeout-seconds': z.number().int().min(60).max(86400).default(7200),
    /** An encrypted copy of every verified backup on a second host (off by default). */
    offsite: offsiteSchema.optional(),
    /** Continuous WAL archiving of prod (off by default). */
    wal: walSchema,
    /** The restore drill's thresholds and smoke queries. */
    drill: drillSchema,
  })
  .strict()
  .default({});
