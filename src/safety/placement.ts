/**
 * Where a swarm may run an environment's tasks. On one host, isolation is names and limits; on a
 * swarm, it is also place: dev's tasks must never land on prod's nodes. A node serves an
 * environment when it carries the label `<label-key>.<env>=true`; every service of a swarm
 * environment must be constrained to `node.labels.<label-key>.<env> == true` (an allowlist: a
 * `!=` on the other environment's label also matches a node that carries no label at all), must
 * leave its container's name to the engine, and an image it builds must be named in the registry,
 * since a stack cannot build and the nodes pull. Then the nodes themselves: none may serve both
 * environments unless swarm.allow-shared-node says so, and each swarm environment needs one.
 * One finding per problem, naming the service or node and what to change.
 */
import type { SwarmSettings } from '../config/swarm';
import { ENVIRONMENTS, type Config, type EnvironmentName } from '../domain/config';
import { tailLines } from '../infra/errors';
import type { Host } from '../infra/host';
import { inspectNodes, parseNodes, type NodeInspect } from '../infra/swarm';
import type { ComposeModel } from './compose-model';
import type { Finding } from './findings';

type Add = (environment: Finding['environment'], message: string, fix: string) => void;

/** The constraint that keeps a service on `env`'s nodes, as an overlay writes it. */
export function ownConstraint(labelKey: string, env: EnvironmentName): string {
  return `node.labels.${labelKey}.${env} == true`;
}

/** A placement constraint as the engine reads it: key, operator, value, spaces around each trimmed. */
export function parseConstraint(text: string): { key: string; op: '==' | '!='; value: string } | undefined {
  const m = /^\s*([^\s=!]+)\s*(==|!=)\s*(.*?)\s*$/.exec(text);
  return m ? { key: m[1], op: m[2] as '==' | '!=', value: m[3] } : undefined;
}

const LABEL_PREFIX = 'node.labels.';

/** The node label a constraint tests with `== true` (the engine compares the prefix and the value ignoring case, the label name exactly). */
function requiredLabel(text: string): string | undefined {
  const c = parseConstraint(text);
  if (!c || c.op !== '==' || c.value.toLowerCase() !== 'true') return undefined;
  if (c.key.length <= LABEL_PREFIX.length || c.key.slice(0, LABEL_PREFIX.length).toLowerCase() !== LABEL_PREFIX) return undefined;
  return c.key.slice(LABEL_PREFIX.length);
}

function makeAdder(out: Finding[], warnOnly: readonly string[]): Add {
  const down = warnOnly.includes('placement');
  return (environment, message, fix) =>
    out.push({ check: 'placement', environment, severity: down ? 'warning' : 'error', message: down ? `${message} (warn-only)` : message, fix });
}

export interface CheckPlacementOptions {
  compose: ComposeModel;
  environment: EnvironmentName;
  swarm: SwarmSettings;
  /** preflight's warn-only checks: with 'placement' among them, its errors are warnings. */
  warnOnly?: readonly string[];
}

/** The services of one swarm environment's merged configuration, each against the rules above. */
export function checkPlacement({ compose, environment: env, swarm, warnOnly = [] }: CheckPlacementOptions): Finding[] {
  const out: Finding[] = [];
  const add = makeAdder(out, warnOnly);
  const key = swarm['label-key'];
  const own = `${key}.${env}`;
  const other = ENVIRONMENTS.find((e) => e !== env) as EnvironmentName;
  for (const s of compose.services) {
    const labels = s.placement.map(requiredLabel);
    if (!labels.includes(own)) {
      add(
        env,
        `${env}'s swarm service ${s.name} is not kept to ${env}'s nodes: no placement constraint "${ownConstraint(key, env)}"${s.placement.length ? ` (it has: ${s.placement.join(', ')})` : ''}`,
        `add "${ownConstraint(key, env)}" to ${s.name}'s deploy.placement.constraints in ${env}'s overlay`,
      );
    }
    if (labels.includes(`${key}.${other}`)) {
      add(
        env,
        `${env}'s swarm service ${s.name} asks for ${other}'s nodes ("${ownConstraint(key, other)}")`,
        `remove that constraint from ${s.name} in ${env}'s compose files`,
      );
    }
    if (s.containerName) {
      add(
        env,
        `${env}'s swarm service ${s.name} sets container_name ${s.containerName}: a stack ignores it, and names each task's container itself`,
        `remove container_name from ${s.name}, and find its containers by the label com.docker.swarm.service.name`,
      );
    }
    const registry = swarm.registry ?? '';
    if (s.builds && !(registry && s.image?.startsWith(`${registry}/`))) {
      add(
        env,
        `${env}'s swarm service ${s.name} is built (build:) but its image ${s.image ?? '(none)'} is not named in the registry ${registry || '(swarm.registry unset)'}: a stack cannot build, and the nodes pull`,
        `set ${s.name}'s image to ${registry || '<swarm.registry>'}/<name>:<tag> in the compose files`,
      );
    }
  }
  return out;
}

export interface CheckNodesOptions {
  nodes: readonly NodeInspect[];
  /** The environments whose target is swarm. */
  environments: readonly EnvironmentName[];
  swarm: SwarmSettings;
  warnOnly?: readonly string[];
}

/** Whether the node carries `<label-key>.<env>=true` (compared as the engine does: the value ignoring case). */
export function serves(node: NodeInspect, labelKey: string, env: EnvironmentName): boolean {
  return (node.Spec.Labels?.[`${labelKey}.${env}`] ?? '').toLowerCase() === 'true';
}

/** The swarm's nodes: none serving both environments unless allowed, and at least one ready for each swarm environment. */
export function checkNodes({ nodes, environments, swarm, warnOnly = [] }: CheckNodesOptions): Finding[] {
  const out: Finding[] = [];
  const add = makeAdder(out, warnOnly);
  const key = swarm['label-key'];
  const name = (n: NodeInspect) => `${n.Description.Hostname} (${n.ID.slice(0, 12)})`;
  if (!swarm['allow-shared-node']) {
    for (const n of nodes.filter((x) => serves(x, key, 'prod') && serves(x, key, 'dev'))) {
      add(
        'both',
        `node ${name(n)} is labelled for prod and for dev: dev's tasks may run beside prod's on it`,
        `remove one label (docker node update --label-rm ${key}.dev ${n.Description.Hostname}), or set swarm.allow-shared-node: true for a single-node swarm`,
      );
    }
  }
  for (const env of environments) {
    const labelled = nodes.filter((n) => serves(n, key, env));
    const ready = labelled.filter((n) => n.Status.State === 'ready' && n.Spec.Availability === 'active');
    if (!ready.length) {
      add(
        env,
        labelled.length
          ? `no node labelled for ${env} is ready and active (${labelled.map((n) => `${name(n)}: ${n.Status.State}, ${n.Spec.Availability}`).join('; ')}): ${env}'s tasks would wait unscheduled`
          : `no node of the swarm is labelled ${key}.${env}=true: ${env}'s tasks would wait unscheduled`,
        `docker node update --label-add ${key}.${env}=true <node> on the manager, for a node that is ready and active`,
      );
    }
  }
  return out;
}

/**
 * Preflight's placement checks for every environment whose target is swarm: its services (from the
 * merged configuration preflight already read) and the swarm's nodes, read once from the manager.
 */
export async function placementFindings(
  host: Host,
  config: Config,
  compose: Partial<Record<EnvironmentName, ComposeModel>>,
  warnOnly: readonly string[] = [],
): Promise<Finding[]> {
  const environments = ENVIRONMENTS.filter((e) => config.environments[e].target === 'swarm');
  if (!environments.length) return [];
  const findings: Finding[] = [];
  for (const env of environments) {
    const model = compose[env];
    if (model) findings.push(...checkPlacement({ compose: model, environment: env, swarm: config.swarm, warnOnly }));
  }
  const r = await host.run(inspectNodes(), { quiet: true, check: false, label: "reading the swarm's nodes", timeoutSeconds: 60 });
  if (r.exitCode !== 0) {
    findings.push({
      check: 'placement',
      environment: 'host',
      severity: 'error',
      message: `the swarm's nodes could not be read (exit ${r.exitCode}): ${tailLines(r.stderr, 1) || 'no message'}`,
      fix: 'point the connection at a manager of the swarm (docker node ls must work there), or set the environments back to target: compose',
    });
    return findings;
  }
  findings.push(...checkNodes({ nodes: parseNodes(r.stdout), environments, swarm: config.swarm, warnOnly }));
  return findings;
}
