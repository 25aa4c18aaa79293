/**
 * A stack's app services (every replicated service but the database's) taken to 0 replicas and
 * back, so nothing writes while the database is replaced under them: rollback's restore and
 * resample's swap. The replicas they had are read from the engine's specs before scaling.
 */
import type { EnvContext, Environment } from './environment';
import { NOTHING_LATER, type LaterCompose } from '../infra/compose';
import * as swarm from '../infra/swarm';

/** The stack's replicated services other than the database's (and its jobs), with the replicas they have now (those at 0 left out). */
export async function appReplicas({ host, env, log }: Omit<EnvContext, 'config'>): Promise<swarm.ServiceReplicas[]> {
  const list = await host.run(swarm.serviceList(env.project), { quiet: true, label: `listing ${env.name}'s services`, timeoutSeconds: 120 });
  const dbName = swarm.swarmServiceName(env.project, env.cfg.database.service);
  const names = swarm
    .parseServiceList(list.stdout)
    .map((s) => s.Name)
    .filter((n) => n !== dbName);
  if (names.length === 0) return [];
  const spec = await host.run(swarm.serviceInspect(names), { quiet: true, label: `inspecting ${env.name}'s services`, timeoutSeconds: 120 });
  const out: swarm.ServiceReplicas[] = [];
  for (const s of swarm.parseServiceStatus(spec.stdout)) {
    // A job is a one-off task (a migration), which ends by itself: scaling would change its completions.
    if (s.Spec.Mode?.ReplicatedJob || s.Spec.Mode?.GlobalJob) continue;
    if (s.Spec.Mode?.Global) log.warning(`${env.name}: ${s.Spec.Name} runs in global mode, which cannot be scaled: it keeps running meanwhile`);
    else if ((s.Spec.Mode?.Replicated?.Replicas ?? 1) > 0) out.push({ service: s.Spec.Name, replicas: s.Spec.Mode?.Replicated?.Replicas ?? 1 });
  }
  return out;
}

/**
 * `docker service scale` of the services to the counts given, the engine waiting until their tasks
 * converged (at 0: stopped; above: running, which for a task with a healthcheck means healthy).
 */
export async function scaleServices(
  { host, env }: Pick<EnvContext, 'host' | 'env'>,
  scales: readonly swarm.ServiceReplicas[],
  o: { why: string; timeoutSeconds?: number },
): Promise<void> {
  if (scales.length === 0) return;
  const names = scales.map((a) => `${a.service}=${a.replicas}`).join(', ');
  await host.run(swarm.serviceScale(scales, { wait: true }), { label: `${env.name}: scaling ${names} (${o.why})`, timeoutSeconds: o.timeoutSeconds ?? 600 });
}

/** The scale back to `scales` for a script the host runs later (an undo), without waiting; nothing when there is none. */
export function scaleLater(env: Environment, scales: readonly swarm.ServiceReplicas[]): LaterCompose {
  return scales.length ? { RESTART_DIR: env.cfg.checkout, RESTART_PROJECT: env.project, RESTART: swarm.serviceScale(scales, { wait: false }) } : NOTHING_LATER;
}
