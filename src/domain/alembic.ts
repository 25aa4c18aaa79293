/**
 * alembic inside an environment's api container: where the schema stands and the upgrade. Every
 * call goes through dockerExec, so a time limit or a cancel stops the in-container process too.
 */
import { dockerExec } from '../infra/docker';
import type { Environment } from './environment';
import type { CommandResult, Host } from '../infra/host';

export interface MigrationPlan {
  container: string;
  current: string;
  heads: string[];
  /** False when the database is already at the single head: nothing will change. */
  pending: boolean;
}

/** Where alembic stands in the environment's api service, before migrating. */
export async function migrationPlan(host: Host, env: Environment, timeoutSeconds: number, service = env.cfg.apiService): Promise<MigrationPlan> {
  const container = await env.serviceContainer(host, service);
  const run = (args: string[]) => host.run(dockerExec(container, ['alembic', ...args]), { label: `${env.name} alembic ${args[0]}`, quiet: true, timeoutSeconds });
  const heads = [...(await run(['heads'])).stdout.matchAll(/^(\w+)(?: \(\w+\))* \(head\)/gm)].map((m) => m[1]);
  const current = /^(\w+)/m.exec((await run(['current'])).stdout.trim())?.[1] ?? '';
  return { container, current, heads, pending: !(heads.length === 1 && heads[0] === current) };
}

export async function upgradeHead(host: Host, env: Environment, plan: MigrationPlan, timeoutSeconds: number): Promise<void> {
  await host.run(dockerExec(plan.container, ['alembic', 'upgrade', 'head']), { label: `${env.name} alembic upgrade head`, timeoutSeconds });
}

/** `alembic check` (models without a migration); its result as is, for the caller to judge. */
export function alembicCheck(host: Host, env: Environment, plan: MigrationPlan, timeoutSeconds: number): Promise<CommandResult> {
  return host.run(dockerExec(plan.container, ['alembic', 'check']), { label: `${env.name} alembic check`, timeoutSeconds, check: false });
}

/** alembic's current revision in the environment's api container ('' when there is none yet). */
export async function currentRevision(host: Host, env: Environment, service = env.cfg.apiService, timeoutSeconds = 120, container?: string): Promise<string> {
  container ??= await env.serviceContainer(host, service);
  const r = await host.run(dockerExec(container, ['alembic', 'current']), { label: `${env.name} alembic current`, quiet: true, timeoutSeconds });
  return /^(\w+)/m.exec(r.stdout.trim())?.[1] ?? '';
}
