/**
 * alembic inside an environment's api container: where the schema stands and the upgrade. Every
 * call goes through dockerExec, so a time limit or a cancel stops the in-container process too.
 */
import * as alembic from '../infra/alembic';
import type { AlembicCommand } from '../infra/alembic';
import { dockerExec, type ContainerRef } from '../infra/docker';
import { OperationFailed, scrubRowValues } from '../infra/errors';
import type { Environment } from './environment';
import type { CommandResult, Host } from '../infra/host';
import { argv } from '../infra/shell';
import { swarmOneOff } from './swarm-oneoff';

export interface MigrationPlan {
  /** The api container alembic runs in (on a swarm, possibly on another node, through its endpoint). */
  container: ContainerRef;
  current: string;
  heads: string[];
  /** False when the database is already at the single head: nothing will change. */
  pending: boolean;
}

/** Where alembic stands in the environment's api service, before migrating. */
export async function migrationPlan(host: Host, env: Environment, timeoutSeconds: number, service = env.cfg.apiService): Promise<MigrationPlan> {
  const container = await env.serviceContainer(host, service);
  const run = (command: AlembicCommand) => host.run(dockerExec(container, command), { label: `${env.name} ${command.join(' ')}`, quiet: true, timeoutSeconds });
  const heads = alembic.parseHeads((await run(alembic.heads())).stdout);
  const current = alembic.parseCurrent((await run(alembic.current())).stdout);
  return { container, current, heads, pending: !(heads.length === 1 && heads[0] === current) };
}

export async function upgradeHead(host: Host, env: Environment, plan: MigrationPlan, timeoutSeconds: number): Promise<void> {
  await host.run(dockerExec(plan.container, alembic.upgradeHead()), { label: `${env.name} alembic upgrade head`, timeoutSeconds });
}

/** `alembic check` (models without a migration); its result as is, for the caller to judge. */
export function alembicCheck(host: Host, env: Environment, plan: MigrationPlan, timeoutSeconds: number): Promise<CommandResult> {
  return host.run(dockerExec(plan.container, alembic.check()), { label: `${env.name} alembic check`, timeoutSeconds, check: false });
}

/** alembic's current revision in the environment's api container ('' when there is none yet). */
export async function currentRevision(
  host: Host,
  env: Environment,
  { service = env.cfg.apiService, timeoutSeconds = 120, container }: { service?: string; timeoutSeconds?: number; container?: ContainerRef } = {},
): Promise<string> {
  const where = container ?? (await env.serviceContainer(host, service));
  const r = await host.run(dockerExec(where, alembic.current()), { label: `${env.name} alembic current`, quiet: true, timeoutSeconds });
  return alembic.parseCurrent(r.stdout);
}

export interface OneOffOptions {
  /** Variables for the one-off container, passed by name (`-e NAME`) so no value is on a command line. */
  env?: Record<string, string>;
  timeoutSeconds: number;
  label: string;
  /** A fixed container name, so a cut run's container can be found and removed. */
  name: string;
  /**
   * On a swarm, the image the one-off task runs: the new release's api image by digest
   * (`repo@sha256:...`); required there. Ignored on compose (the checkout's image name is used).
   */
  image?: string;
}

/**
 * alembic in a one-off container of the environment's api service, started from `at` (a checkout of
 * the new commit, whose image name points at the new image): the new code's migrations, while the
 * old containers still serve. On a swarm, a one-off task of `o.image` (src/domain/swarm-oneoff.ts).
 * Returns the result as is.
 */
export async function oneOffAlembic(host: Host, at: Environment, command: AlembicCommand, o: OneOffOptions): Promise<CommandResult> {
  if (at.onSwarm) {
    if (!o.image)
      throw new OperationFailed(
        `${at.name}: ${o.label}: on a swarm the one-off task needs the new ${at.cfg.apiService} image by digest (OneOffOptions.image), and none was given`,
      );
    return swarmOneOff(host, at, command, { ...o, image: o.image });
  }
  const service = at.cfg.apiService;
  const pass = Object.keys(o.env ?? {}).flatMap((k) => ['-e', k]);
  await host.run(argv('docker', 'rm', '-f', o.name), { check: false, quiet: true, timeoutSeconds: 60 });
  try {
    return await host.run(
      at.compose('run', '--rm', '--no-deps', '-T', '--name', o.name, ...pass, service, ...command),
      at.composeOptions({ label: o.label, timeoutSeconds: o.timeoutSeconds, check: false, quiet: true, env: o.env }),
    );
  } finally {
    // A time limit or a cancel kills the client; the container must not migrate on unseen.
    await host.run(argv('docker', 'rm', '-f', o.name), { check: false, quiet: true, timeoutSeconds: 60 });
  }
}

/** compose cannot start a one-off container of the api service (docker-compose v1 with host networking and depends_on). */
export class OneOffUnavailable extends OperationFailed {
  override name = 'OneOffUnavailable';
}

/** The head revision(s) of the new code, read in a one-off container. */
export async function oneOffHeads(host: Host, at: Environment, o: { name: string; timeoutSeconds: number; image?: string }): Promise<string[]> {
  const r = await oneOffAlembic(host, at, alembic.heads(), { ...o, label: `${at.name} alembic heads (new code)` });
  if (r.exitCode !== 0 && /host type networking can't be used with links/.test(`${r.stdout}\n${r.stderr}`)) {
    throw new OneOffUnavailable(
      `${at.name}: docker-compose v1 cannot start a one-off ${at.cfg.apiService} container (host networking with depends_on): the migration runs in the new container after the swap, unrehearsed. docker compose v2 does not have this limit.`,
    );
  }
  if (r.exitCode !== 0)
    throw new OperationFailed(
      `${at.name}: alembic heads failed in a one-off ${at.cfg.apiService} container of the new image: ${migrationErrorLine(`${r.stdout}\n${r.stderr}`)}`,
    );
  return alembic.parseHeads(r.stdout);
}

/**
 * The migration's own error from its output: the exception line that ends a Python traceback (not
 * the traceback), without the SQL echo, row values replaced by where to look.
 */
export function migrationErrorLine(output: string): string {
  // Scrubbed whole before it is split: a row value may span lines.
  const lines = scrubRowValues(output)
    .split('\n')
    .map((l) => l.trimEnd());
  const tb = lines.map((l, i) => (l.startsWith('Traceback (most recent call last)') ? i : -1)).filter((i) => i >= 0);
  const from = tb.length ? tb[tb.length - 1] : 0;
  const exc = lines
    .slice(from)
    .filter((l) => /^[A-Za-z_][\w.]*(?:Error|Exception|Violation|Timeout|Failure|Exit)\b[^:]*:/.test(l) || /^[A-Za-z_][\w.]*(?:Error|Exception)$/.test(l));
  const line = exc.at(-1) ?? lines.filter((l) => l.trim()).at(-1) ?? '';
  const detail = lines.slice(from).find((l) => /^DETAIL: /.test(l));
  return `${line.replace(/\s*\[SQL: .*$/, '').trim()}${detail ? ` (${detail.trim()})` : ''}`.slice(0, 500);
}

/** True when a failed migration gave up waiting for a lock (lock_timeout), which is worth a retry. */
export function hitLockTimeout(output: string): boolean {
  return /canceling statement due to lock timeout|LockNotAvailable/.test(output);
}
