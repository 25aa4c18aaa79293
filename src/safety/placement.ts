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

/** A host path each node has of its own whatever runs there: the engine's socket. */
const PER_NODE_PATHS = new Set(['/var/run/docker.sock', '/run/docker.sock']);

/** A constraint that keeps a service on one node: the manager (one per small swarm), or a node named. */
const ONE_NODE = /^node\.(role\s*==\s*manager|hostname\s*==\s*\S+|id\s*==\s*\S+)$/;

/**
 * Storage on a swarm where more than one node, or a node other than a manager, serves the
 * environment. A bind-mounted host path is each node's own, and twinstack writes it (dev's vault by
 * vault-sync, a restored file) on the manager's disk only; a named volume of the local driver lives
 * on the node that made it, so a task moved to another node (a node lost, drained) starts on an
 * empty one. A warning per service, unless it is kept to one node.
 */
export function checkStorage(o: { compose: ComposeModel; environment: EnvironmentName; nodes: readonly NodeInspect[]; swarm: SwarmSettings }): Finding[] {
  const serving = o.nodes.filter((n) => serves(n, o.swarm['label-key'], o.environment));
  if (serving.length < 2 && serving.every((n) => n.Spec.Role === 'manager')) return [];
  const where = serving.map((n) => `${n.Description.Hostname} (${n.Spec.Role})`).join(', ');
  const out: Finding[] = [];
  for (const s of o.compose.services) {
    if (s.placement.some((c) => ONE_NODE.test(c.trim()))) continue;
    const binds = s.mounts.filter((m) => m.type === 'bind' && !PER_NODE_PATHS.has(m.source)).map((m) => m.source);
    const volumes = s.mounts.filter((m) => m.type === 'volume' && m.source).map((m) => m.source);
    if (!binds.length && !volumes.length) continue;
    const what = [binds.length ? `binds host path(s) ${binds.join(', ')}` : '', volumes.length ? `mounts named volume(s) ${volumes.join(', ')}` : '']
      .filter(Boolean)
      .join(' and ');
    out.push({
      check: 'placement',
      environment: o.environment,
      severity: 'warning',
      message: `${o.environment}'s swarm service ${s.name} ${what}, and its tasks may run on ${where}: each node has its own (twinstack writes host paths on the manager's disk only; a task moved to another node finds an empty volume)`,
      fix: `keep ${s.name} to one node (deploy.placement.constraints: [node.role == manager] or [node.hostname == <node>]), or put the data on storage every node of ${o.environment} shares`,
    });
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
  const nodes = parseNodes(r.stdout);
  findings.push(...checkNodes({ nodes, environments, swarm: config.swarm, warnOnly }));
  for (const env of environments) {
    const model = compose[env];
    if (model) findings.push(...checkStorage({ compose: model, environment: env, nodes, swarm: config.swarm }));
  }
  return findings;
}
