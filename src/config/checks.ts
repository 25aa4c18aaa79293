/**
 * The `preflight` and `monitor` sections of the config file. Every key has the design's default,
 * so a config without these sections checks and measures what the design asks for.
 */
import { z } from 'zod';
import { parseBytes } from '../infra/units';

const envKey = z.string().regex(/^[A-Za-z_][A-Za-z0-9_.-]*$/, 'must be an env file key such as JWT_SECRET_KEY');
const pagePath = z.string().regex(/^\/[A-Za-z0-9._/~%?=&-]*$/, 'must be a path such as / or /about');
const absPath = z
  .string()
  .regex(/^\/[A-Za-z0-9._/@+-]*$/, 'must be an absolute path of letters, digits and . _ / @ + -')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
  .transform((p) => (p.length > 1 ? p.replace(/\/+$/, '') : p));
/** A device cgroup rule as docker takes it: `c 189:* rmw`. */
const cgroupRule = z.string().regex(/^[abc] (\d+|\*):(\d+|\*) [rwm]{1,3}$/, 'must be a host device path, a device cgroup rule such as "c 189:* rmw", or gpu');
const percent = z.number().min(1).max(100);
const memory = z
  .union([z.string(), z.number()])
  .refine((v) => parseBytes(v) !== undefined, 'must be a size such as 2G, 1536M or a number of bytes')
  .transform((v) => parseBytes(v) as number);

/** The checks preflight runs; names used in findings and in `warn-only`. */
export const PREFLIGHT_CHECKS = [
  'env-file',
  'must-differ',
  'environment-flag',
  'oauth-redirect',
  'port-variables',
  'compose-config',
  'container-names',
  'volume-names',
  'host-ports',
  'dev-limits',
  'dev-share',
  'vault-mounts',
  'dev-escape',
  'dev-mounts',
  'dev-paths',
  'shared-images',
  'dev-networks',
  'domains',
  'noindex',
  'basic-auth',
  'http',
  'rolling',
  'wal-settings',
  'placement',
  'db-init',
  'stack-merge',
] as const;
export type PreflightCheck = (typeof PREFLIGHT_CHECKS)[number];

/**
 * Keys whose values must differ between prod and dev (design, section 9). A list is a group: the
 * database is told apart by its name, its host or its port, so one of them differing is enough.
 */
export const DEFAULT_MUST_DIFFER: Array<string | string[]> = [
  ['DB_DATABASE', 'DB_NAME', 'DB_HOST', 'DB_PORT'],
  'VAULT_HOST_PATH',
  'VAULT_DOMAIN',
  'MQTT_PUBLIC_PORT',
  'MQTT_TOPIC_PREFIX',
  'JWT_SECRET_KEY',
  'GITHUB_OAUTH_CLIENT_ID',
  'GITHUB_REDIRECT_URI',
  'BASE_URL',
  'ROOT_DOMAIN',
  'WEB_DOMAIN',
  'NEXT_PUBLIC_API_BASE_URL',
  'RESEND_FROM_EMAIL',
];

export const preflightSchema = z
  .object({
    'must-differ': z.array(z.union([envKey, z.array(envKey).min(1)])).default(DEFAULT_MUST_DIFFER),
    /** Keys holding OAuth redirect URIs: each must point at its own environment's domain. */
    'redirect-uri-keys': z.array(envKey).default(['GITHUB_REDIRECT_URI']),
    /** Keys naming an environment's own domains (besides its url and its caddy labels). */
    'domain-keys': z.array(envKey).default(['ROOT_DOMAIN', 'WEB_DOMAIN']),
    'environment-key': envKey.default('ENVIRONMENT'),
    'dev-environment': z.string().min(1).default('development'),
    /** The share of the host dev may take (design, section 11: 2 CPUs and 2 GB). */
    'dev-cpus': z.number().positive().default(2),
    'dev-memory': memory.default('2G'),
    /** Optionally also a percentage of the host's CPUs and memory (nproc, /proc/meminfo). */
    'dev-host-share': percent.optional(),
    /** Services that serve each environment's site; default: those whose caddy label claims the url's host. */
    'site-services': z.array(z.string().regex(/^[a-zA-Z0-9._-]+$/)).optional(),
    /**
     * Host paths that belong to dev alone, besides environments.dev.checkout and .vault: every host
     * path a dev service touches (binds, volume devices, env files, secrets, configs, build inputs)
     * must lie under one of them once symlinks are resolved on the host.
     */
    'dev-paths': z.array(absPath).default([]),
    /** Whether dev's services may use network_mode: host (they then share the host's network with prod). */
    'dev-host-network': z.boolean().default(false),
    /** Host devices (paths; a directory covers what is under it), device cgroup rules, and `gpu`, that dev's services may use. */
    'dev-devices': z
      .array(
        z.union([z.literal('gpu'), absPath, cgroupRule], {
          errorMap: () => ({ message: 'must be a host device path such as /dev/dri, a device cgroup rule such as "c 189:* rmw", or gpu' }),
        }),
      )
      .default([]),
    /** Whether a dev build context may be a URL (a git repository): what it builds cannot be checked beforehand. */
    'dev-build-urls': z.boolean().default(false),
    /** Checks whose errors are reported as warnings (they do not fail the step). */
    'warn-only': z.array(z.enum(PREFLIGHT_CHECKS)).default([]),
    http: z
      .object({
        /** Requests from the host with curl against each environment's url; off unless asked for. */
        enabled: z.boolean().default(false),
        'prod-pages': z.array(pagePath).min(1).default(['/']),
        'dev-pages': z.array(pagePath).min(1).default(['/']),
        'timeout-seconds': z.number().int().min(1).max(120).default(10),
      })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

export const monitorSchema = z
  .object({
    /** Requests made to prod's health URL from the host, one after another. */
    requests: z.number().int().min(1).max(1000).default(20),
    'request-timeout-seconds': z.number().int().min(1).max(120).default(10),
    /** Design, section 12: production API latency P99 over 500 ms. */
    'latency-p99-ms': z.number().positive().default(500),
    /** Failed health requests (no answer or a status of 400 or more) as a share of all; twinstack's default. */
    'error-rate-percent': z.number().min(0).max(100).default(5),
    /** Design: production database connections over 80 % of the pool. */
    'db-connections-percent': percent.default(80),
    /** Design: disk usage over 80 % on either vault (and the backup directory). */
    'disk-percent': percent.default(80),
    /** Design: development containers using more than their limits; at this share of a limit a container is pinned to it. */
    'dev-limit-percent': percent.default(90),
    /** Where backups are kept; default: backup.dir. */
    'backup-dir': absPath.optional(),
    /** More paths whose file systems are watched like the vaults. */
    'disk-paths': z.array(absPath).default([]),
  })
  .strict()
  .default({});

export type PreflightSettings = z.output<typeof preflightSchema>;
export type MonitorSettings = z.output<typeof monitorSchema>;
