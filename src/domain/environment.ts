/**
 * An environment (prod or dev) on the host: its compose project and the commands that drive it.
 * Only subcommands and flags that both `docker compose` (v2) and `docker-compose` (v1) have are
 * used, and structured state comes from `docker inspect`, which both leave alone.
 */
import type { DbTool } from '../infra/postgres';
import type { Config, EnvironmentConfig, EnvironmentName } from './config';
import { OperationFailed } from '../infra/errors';
import { compose, composeLater, type ComposeProject, type LaterCompose } from '../infra/compose';
import { COMPOSE_LABELS, dockerExec, inspectProjectContainers, psIds, shortId, type ContainerRef } from '../infra/docker';
import type { Host, RunOptions } from '../infra/host';
import type { Logger } from '../infra/logger';
import { argv, raw, sh, type Arg } from '../infra/shell';
import { parseContainerInspect } from '../infra/docker-inspect';
import {
  NO_TASK_HERE,
  TASK_LABELS,
  inspectStackContainers,
  parseStackNodes,
  parseTaskContainer,
  stackNodes,
  stackServiceName,
  taskContainer,
} from '../infra/swarm';

/** What a step on one environment works with: the host, the config, the environment and the log. */
export interface EnvContext {
  host: Host;
  config: Config;
  env: Environment;
  log: Logger;
}

export interface ContainerState {
  id: string;
  name: string;
  service: string;
  image: string;
  imageId: string;
  status: string;
  health: string;
  exitCode: number;
  startedAt: string;
  hasHealthcheck: boolean;
  /** A one-off container (`compose run`), not a service's container. */
  oneoff: boolean;
  /** The directory compose started it from (its project directory), '' when not recorded. */
  workingDir: string;
  /** On a swarm, a task's container on another node: that node's hostname and the endpoint its engine is reached by (config swarm.nodes). */
  node?: { hostname: string; endpoint: string };
}

export class Environment {
  readonly cfg: EnvironmentConfig;

  constructor(
    readonly name: EnvironmentName,
    readonly config: Config,
    checkout?: string,
  ) {
    this.cfg = checkout ? { ...config.environments[name], checkout } : config.environments[name];
  }

  /**
   * The same environment (project, compose files, env file, database) driven from another directory:
   * a scratch checkout of another commit, whose compose commands see that commit's files.
   */
  at(checkout: string): Environment {
    return new Environment(this.name, this.config, checkout);
  }

  /** The same environment, its database reached as another role (production's read-only reader). */
  withDatabaseUser(user: string): Environment {
    const cfg = { ...this.cfg, database: { ...this.cfg.database, user } };
    return new Environment(this.name, { ...this.config, environments: { ...this.config.environments, [this.name]: cfg } });
  }

  get project(): string {
    return this.cfg.project;
  }

  /** Runs as a stack on a swarm (target swarm): its containers are its tasks', on the manager's node or another (config swarm.nodes). */
  get onSwarm(): boolean {
    return this.cfg.target === 'swarm';
  }

  /**
   * Where a cancel looks for this environment's work inside containers (underLock's options): its
   * compose project, or on a swarm its stack's task containers on the manager's node and on the
   * engines of config swarm.nodes.
   */
  get workScope(): { project: string; swarm: boolean; endpoints: string[] } {
    return { project: this.cfg.project, swarm: this.onSwarm, endpoints: this.onSwarm ? Object.values(this.config.swarm.nodes) : [] };
  }

  /** `<compose> -f <base> -f <overlay> --env-file <env> -p <project> <args>`, run from the checkout. */
  compose(...args: Arg[]): string {
    return compose(this.composeProject, args);
  }

  /** What names this environment's compose project for the compose builder. */
  get composeProject(): ComposeProject {
    return { command: this.config['compose-command'], files: this.cfg.composeFiles, envFile: this.cfg.envFile, project: this.cfg.project };
  }

  /** A compose command for a script the host runs later (in the checkout, project name set): that script's parameters. */
  composeLater(...args: Arg[]): LaterCompose {
    return composeLater(this.cfg.checkout, this.composeProject, args);
  }

  /** Run options for compose commands: in the checkout, with COMPOSE_PROJECT_NAME set for v1's interpolation. */
  composeOptions(extra: RunOptions = {}): RunOptions {
    return { ...extra, cwd: this.cfg.checkout, env: { COMPOSE_PROJECT_NAME: this.cfg.project, ...(extra.env ?? {}) } };
  }

  /**
   * A shell command that runs a PostgreSQL client tool (psql, pg_dump, pg_restore, pg_dumpall) against
   * this environment's database server as its configured user: inside the running db container
   * (`via: container`, the normal case) or directly on the host (`via: host`). The caller passes the
   * tool's other arguments, including `-d <database>`; standard input is passed through.
   */
  dbTool(tool: DbTool, args: readonly Arg[]): string {
    const db = this.cfg.database;
    if (db.via === 'host') return argv(tool, '-h', db.host, '-p', db.port, '-U', db.user, args);
    const command = [tool, '-p', db['container-port'], '-U', db.user, ...args];
    if (this.onSwarm) {
      // The db task's container, on the manager's node or on another through its endpoint ("$e", empty for the manager's): task-container.sh prints `<id> <endpoint>` and says why when there is none.
      const exec = dockerExec({ shell: '"$c"', hostFlag: '${e:+-H "$e"}' }, command, { stdin: true });
      const find = taskContainer(this.cfg.project, db.service, this.config.swarm.nodes);
      return sh`{ c=$(${raw(find)}) || exit ${NO_TASK_HERE}; e=\${c#* }; c=\${c%% *}; ` + `${exec}; }`;
    }
    const exec = dockerExec({ shell: '"$c"' }, command, { stdin: true });
    // One braced group, so the whole command can sit in a pipe or take a redirection.
    return (
      `{ c=$(${psIds(this.cfg.project, { service: db.service })} | head -n 1); ` +
      sh`[ -n "$c" ] || { echo ${`no running ${db.service} container in compose project ${this.cfg.project}`} >&2; exit 3; }; ` +
      `${exec}; }`
    );
  }

  /** The running container of a service (on a swarm, with its node's endpoint when on another node); fails naming the service when there is none. */
  async serviceContainer(host: Host, service: string): Promise<ContainerRef> {
    if (this.onSwarm) return this.taskContainer(host, service);
    const r = await host.run(psIds(this.cfg.project, { service }), {
      quiet: true,
      label: `finding the ${service} container`,
      timeoutSeconds: 60,
    });
    const id = r.stdout.trim().split('\n')[0];
    if (!id)
      throw new OperationFailed(`${this.name}: no running container of service ${service} in compose project ${this.cfg.project}; deploy ${this.name} first`);
    return { id };
  }

  /** serviceContainer on a swarm: the container of the service's task, on the manager's node or through its node's swarm.nodes endpoint. */
  private async taskContainer(host: Host, service: string): Promise<ContainerRef> {
    const r = await host.run(taskContainer(this.cfg.project, service, this.config.swarm.nodes), {
      quiet: true,
      check: false,
      label: `finding the ${service} task's container`,
      timeoutSeconds: 60,
    });
    const found = r.exitCode === 0 ? parseTaskContainer(r.stdout) : undefined;
    if (found) return found;
    const why = r.stderr.trim().split('\n').pop() || `exit ${r.exitCode}`;
    if (r.exitCode === NO_TASK_HERE) throw new OperationFailed(`${this.name}: ${why}`);
    throw new OperationFailed(`${this.name}: finding the ${service} task's container failed: ${why}`);
  }

  /** The services of the merged compose configuration (inactive profiles left out), one `config --services`. */
  async services(host: Host): Promise<string[]> {
    const r = await host.run(
      this.compose('config', '--services'),
      this.composeOptions({ quiet: true, label: `${this.name} compose config --services`, timeoutSeconds: 180 }),
    );
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  async containers(host: Host): Promise<ContainerState[]> {
    if (this.onSwarm) return this.taskContainers(host);
    const r = await host.run(inspectProjectContainers(this.cfg.project), { quiet: true, label: `listing ${this.name} containers`, timeoutSeconds: 120 });
    return parseInspect(r.stdout);
  }

  /**
   * The engines that run this stack's tasks: the manager's own (no endpoint), then each other node
   * with a task that should run, through its swarm.nodes endpoint; `unreached` are the nodes without one.
   */
  async taskEngines(host: Host): Promise<TaskEngines> {
    const r = await host.run(stackNodes(this.cfg.project), { quiet: true, label: `finding the nodes of ${this.name}'s tasks`, timeoutSeconds: 60 });
    const { here, others } = parseStackNodes(r.stdout);
    return this.enginesOf(here, others);
  }

  /** The engines of the manager's node `here` and of the `others` nodes swarm.nodes reaches; `unreached`, those it does not. */
  enginesOf(here: string, others: readonly string[]): TaskEngines {
    const nodes = this.config.swarm.nodes;
    return {
      engines: [{ hostname: here }, ...others.filter((n) => nodes[n]).map((n) => ({ hostname: n, endpoint: nodes[n] }))],
      unreached: others.filter((n) => !nodes[n]),
    };
  }

  /** containers on a swarm: the stack's task containers on the manager's node and on each node of a task that swarm.nodes reaches. */
  private async taskContainers(host: Host): Promise<ContainerState[]> {
    return this.containersOn(host, (await this.taskEngines(host)).engines);
  }

  /** The stack's task containers on each of `engines`, one round trip each; those of another node marked with it. */
  async containersOn(host: Host, engines: TaskEngines['engines']): Promise<ContainerState[]> {
    const all: ContainerState[] = [];
    for (const { hostname, endpoint } of engines) {
      const r = await host.run(inspectStackContainers(this.cfg.project, { endpoint }), {
        quiet: true,
        label: `listing ${this.name} task containers${endpoint ? ` on node ${hostname}` : ''}`,
        timeoutSeconds: 120,
      });
      const found = parseStackInspect(r.stdout, this.cfg.project);
      all.push(...(endpoint ? found.map((c) => ({ ...c, node: { hostname, endpoint } })) : found));
    }
    return all.sort((a, b) => a.service.localeCompare(b.service));
  }
}

/** The engines that run a stack's tasks (Environment.taskEngines). */
export interface TaskEngines {
  engines: Array<{ hostname: string; endpoint?: string }>;
  unreached: string[];
}

type Labelled = Pick<ContainerState, 'service' | 'oneoff' | 'workingDir'>;

function containerStates(json: string, labelled: (labels: Record<string, string>) => Labelled): ContainerState[] {
  return parseContainerInspect(json)
    .map((c) => {
      const test = c.Config?.Healthcheck?.Test;
      const l = labelled(c.Config?.Labels ?? {});
      return {
        id: shortId(c.Id),
        name: c.Name.replace(/^\//, ''),
        service: l.service,
        image: c.Config?.Image ?? '',
        imageId: c.Image,
        status: c.State?.Status ?? 'unknown',
        health: c.State?.Health?.Status ?? 'none',
        exitCode: c.State?.ExitCode ?? 0,
        startedAt: c.State?.StartedAt ?? '',
        hasHealthcheck: Array.isArray(test) && test.length > 0 && test[0] !== 'NONE',
        oneoff: l.oneoff,
        workingDir: l.workingDir,
      };
    })
    .sort((a, b) => a.service.localeCompare(b.service));
}

/** `docker inspect` of a compose project's containers, each named by its compose service. */
export function parseInspect(json: string): ContainerState[] {
  return containerStates(json, (l) => ({
    service: l[COMPOSE_LABELS.service] ?? '',
    oneoff: l[COMPOSE_LABELS.oneoff] === 'True',
    workingDir: l[COMPOSE_LABELS.workingDir] ?? '',
  }));
}

/** `docker inspect` of a stack's task containers, each named by the stack's service (the swarm service's name without `<stack>_`). */
export function parseStackInspect(json: string, stack: string): ContainerState[] {
  return containerStates(json, (l) => ({ service: stackServiceName(stack, l[TASK_LABELS.service]) ?? '', oneoff: false, workingDir: '' }));
}
