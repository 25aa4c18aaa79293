/**
 * The config file, `.github/twinstack.yml` in the app repository: the host's environments and
 * everything the actions need. Secrets never go in it. Parsed with `yaml`, checked with `zod`;
 * a bad key is reported with its path and the reason before any connection is made.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigurationError } from '../infra/errors';
import { printable } from '../infra/validate';
import { sectionSchemas } from '../config/sections';

const absPath = z
  .string()
  .regex(/^\/[A-Za-z0-9._/@+-]*$/, 'must be an absolute path of letters, digits and . _ / @ + -')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."')
  .transform((p) => (p.length > 1 ? p.replace(/\/+$/, '') : p));
const relPath = z
  .string()
  .regex(/^[A-Za-z0-9._@+-][A-Za-z0-9._/@+-]*$/, 'must be a path relative to the checkout, of letters, digits and . _ / @ + -')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".."');
const composeName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be lower-case letters, digits, dashes and underscores');
const port = z.number().int().min(1).max(65535);

const databaseSchema = z
  .object({
    service: composeName.default('db'),
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, 'must be a PostgreSQL database name'),
    user: z.string().regex(/^[A-Za-z_][A-Za-z0-9_$-]{0,62}$/, 'must be a PostgreSQL role name'),
    host: z
      .string()
      .regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or address')
      .default('127.0.0.1'),
    port: port.default(5432),
    /** The port the server listens on inside its container (differs from `port` only with host networking). */
    'container-port': port.default(5432),
    /** How psql and pg_dump reach the database on the host: inside the db container (normal), or directly. */
    via: z.enum(['container', 'host']).default('container'),
  })
  .strict();

const environmentSchema = z
  .object({
    checkout: absPath,
    project: composeName,
    'compose-files': z.array(relPath).min(1, 'needs the base file and the overlay'),
    'env-file': relPath,
    url: z.string().url('must be a URL such as https://makapix.club'),
    'health-path': z
      .string()
      .regex(/^\/[A-Za-z0-9._/~-]*$/, 'must be a path such as /api/health')
      .default('/api/health'),
    'api-service': composeName.default('api'),
    remote: z
      .string()
      .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*$/, 'must be a git remote name (letters, digits, . _ -, not starting with - or .)')
      .default('origin'),
    database: databaseSchema,
    vault: absPath.optional(),
    'health-timeout-seconds': z.number().int().min(5).max(3600).default(300),
    /** What runs the stack: compose on the host (today), or a stack on a Docker Swarm whose manager is the host (see swarm:). */
    target: z.enum(['compose', 'swarm'], { errorMap: () => ({ message: 'must be compose or swarm' }) }).default('compose'),
  })
  .strict()
  .transform((e) => ({
    checkout: e.checkout,
    project: e.project,
    composeFiles: e['compose-files'],
    envFile: e['env-file'],
    url: e.url.replace(/\/+$/, ''),
    healthPath: e['health-path'],
    apiService: e['api-service'],
    remote: e.remote,
    database: e.database,
    vault: e.vault,
    healthTimeoutSeconds: e['health-timeout-seconds'],
    target: e.target,
  }));

export const ENVIRONMENTS = ['prod', 'dev'] as const;

export const configSchema = z
  .object({
    version: z.literal(1).default(1),
    'compose-command': z.enum(['docker compose', 'docker-compose']).default('docker compose'),
    'state-dir': absPath.default('/var/lib/twinstack'),
    'keep-releases': z.number().int().min(1).max(100).default(5),
    'command-timeout-seconds': z.number().int().min(10).max(86400).default(1800),
    environments: z.object({ prod: environmentSchema, dev: environmentSchema }).strict(),
    ...sectionSchemas,
  })
  .strict()
  .superRefine((c, ctx) => {
    const { prod, dev } = c.environments;
    const same = (k: string, a: unknown, b: unknown) => {
      if (a === b) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['environments', 'dev', k], message: `must differ from prod's (${String(a)})` });
    };
    same('checkout', prod.checkout, dev.checkout);
    same('project', prod.project, dev.project);
    if (prod.vault && dev.vault) same('vault', prod.vault, dev.vault);
    if (prod.database.host === dev.database.host && prod.database.port === dev.database.port && prod.database.via === 'host') {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['environments', 'dev', 'database', 'port'], message: "must differ from prod's" });
    }
    const swarm = ENVIRONMENTS.filter((n) => c.environments[n].target === 'swarm');
    if (swarm.length && !c.swarm.registry) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['swarm', 'registry'],
        message: `is needed because environments.${swarm[0]}.target is swarm: set it to the registry the nodes pull from, such as 127.0.0.1:5000`,
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type EnvironmentConfig = Config['environments']['prod'];
export type EnvironmentName = keyof Config['environments'];

function issuePath(p: Array<string | number>): string {
  return p.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('') || '(top level)';
}

/** Parses and validates config text; `source` names the file in errors. */
export function parseConfig(text: string, source: string): Config {
  let data: unknown;
  try {
    data = parseYaml(text, { uniqueKeys: true });
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos ? ` line ${e.linePos[0].line}` : '';
    const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
    throw new ConfigurationError(`${source}${where}: not valid YAML: ${msg}`);
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    throw new ConfigurationError(`${source}: expected a mapping with "environments" at the top`);
  }
  const result = configSchema.safeParse(data);
  if (!result.success) {
    const issues = result.error.issues.map((i) => {
      const msg =
        i.code === z.ZodIssueCode.unrecognized_keys ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message;
      return `${issuePath(i.path)}: ${msg}`;
    });
    throw new ConfigurationError(`${source}: ${issues.join('; ')}`);
  }
  return result.data;
}

/** Reads the config file relative to the workspace (GITHUB_WORKSPACE, or the working directory). */
export function loadConfig(file: string, workspace = process.env.GITHUB_WORKSPACE || process.cwd()): Config {
  if (path.isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
    throw new ConfigurationError(`config "${printable(file)}" must be a path inside the repository, such as .github/twinstack.yml`);
  }
  const full = path.join(workspace, file);
  let text: string;
  try {
    text = fs.readFileSync(full, 'utf8');
  } catch {
    throw new ConfigurationError(
      `config file ${printable(file)} not found in ${workspace}: add it (see the README) or set the config input; did the workflow run actions/checkout first?`,
    );
  }
  return parseConfig(text, file);
}
