/**
 * The one place a Docker Swarm command line is built (stacks, services, tasks, nodes, the
 * registry), and the schemas of what those commands print. An environment whose target is swarm
 * runs as a stack named after its project, deployed from the same compose files (base first, then
 * the overlay) with the images pinned by digest; nothing here runs anything.
 */
import * as fs from 'node:fs';
import { z } from 'zod';
import { parseHostJson } from './json';
import { argv, hostScript, quote } from './shell';

/** What names one stack on the manager: the directory its files are read from, its files, its name. */
export interface StackFiles {
  /** The checkout (or release directory) the compose files' relative paths start from. */
  dir: string;
  /** The compose files, base first (each `-c`), then any overlay twinstack writes (the digests). */
  files: readonly string[];
  /** The stack's name: the environment's project. */
  stack: string;
}

const STACK_ENV = fs.readFileSync(__dirname + '/stack-env.sh', 'utf8');
const NODES_INSPECT = fs.readFileSync(__dirname + '/nodes-inspect.sh', 'utf8');

/** The label Docker puts on every service, network and task of a stack. */
export const STACK_LABEL = 'com.docker.stack.namespace';

function inStack(p: StackFiles, args: readonly string[]): string {
  return hostScript(STACK_ENV, { DIR: p.dir }, ['docker', 'stack', ...args]);
}

const composeFileArgs = (p: StackFiles) => p.files.flatMap((f) => ['-c', f]);

/**
 * `docker stack deploy` of the stack, its variables on standard input (see envStdin): registry
 * credentials go to the nodes, and services the files no longer name are removed.
 */
export function stackDeploy(p: StackFiles): string {
  return inStack(p, ['deploy', ...composeFileArgs(p), '--with-registry-auth', '--prune', p.stack]);
}

/** `docker stack config`: the merged, interpolated files as the engine will read them (YAML), variables on standard input. */
export function stackConfig(p: StackFiles): string {
  return inStack(p, ['config', ...composeFileArgs(p)]);
}

/**
 * The standard input of stackDeploy and stackConfig: the env file's variables (parsed by
 * parseEnvFile, as compose reads them) as NUL-separated KEY=VALUE pairs.
 */
export function envStdin(values: ReadonlyMap<string, string>): Buffer {
  const pairs = [...values].map(([k, v]) => {
    if (k.includes('=') || k.includes('\0') || v.includes('\0')) throw new Error(`env variable ${k.slice(0, 40)} cannot be passed to a stack`);
    return `${k}=${v}\0`;
  });
  return Buffer.from(pairs.join(''), 'utf8');
}

/** `docker stack rm`: every service, network, config and secret of the stack (volumes stay). */
export function stackRemove(stack: string): string {
  return argv('docker', 'stack', 'rm', stack);
}

/** `docker service ls` of a stack's services, one JSON object a line. */
export function serviceList(stack: string): string {
  return argv('docker', 'service', 'ls', '--filter', `label=${STACK_LABEL}=${stack}`, '--format', 'json');
}

/** `docker service ps` of services' tasks (every task the engine keeps, old ones too), full ids and digests, one JSON object a line. */
export function serviceTasks(services: readonly string[]): string {
  return argv('docker', 'service', 'ps', '--no-trunc', '--format', 'json', services);
}

/** `docker service inspect`: the specs (image, placement, update config) and the update status. */
export function serviceInspect(services: readonly string[]): string {
  return argv('docker', 'service', 'inspect', services);
}

/** `docker service rollback` of one service to its previous spec; returns at once, the caller watches the tasks. */
export function serviceRollback(service: string): string {
  return argv('docker', 'service', 'rollback', '--detach', service);
}

/** One replicated service's wanted task count, for serviceScale: the engine's name (`<stack>_<service>`) and the count. */
export interface ServiceReplicas {
  service: string;
  replicas: number;
}

/**
 * `docker service scale` of replicated services to the counts given (a global service cannot be
 * scaled). With `wait`, the engine's own wait: it returns once the tasks converged (at 0, once they
 * stopped); without, at once.
 */
export function serviceScale(scales: readonly ServiceReplicas[], o: { wait: boolean }): string {
  const pairs = scales.map((s) => {
    if (!Number.isInteger(s.replicas) || s.replicas < 0) throw new Error(`${s.replicas} is not a replica count`);
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s.service)) throw new Error(`"${s.service}" is not a service name`);
    return `${s.service}=${s.replicas}`;
  });
  if (pairs.length === 0) throw new Error('serviceScale needs at least one service');
  return argv('docker', 'service', 'scale', `--detach=${o.wait ? 'false' : 'true'}`, pairs);
}

/** `docker node inspect` of every node; `[]` when the engine lists none. */
export function inspectNodes(): string {
  return hostScript(NODES_INSPECT, {});
}

/** `docker tag` of a locally built image to its name in the registry. */
export function tagForRegistry(local: string, remote: string): string {
  return argv('docker', 'tag', local, remote);
}

/** `docker push` of an image's name in the registry. */
export function push(remote: string): string {
  return argv('docker', 'push', remote);
}

/** The `repo@sha256:…` names of an image, as JSON; set once the image was pushed or pulled. */
export function repoDigests(image: string): string {
  return argv('docker', 'image', 'inspect', '--format', '{{json .RepoDigests}}', image);
}

// --- The swarm release: build, push, pin, watch (src/domain/swarm-release.ts) ---

/** The repository of an image name: without its tag or digest (`127.0.0.1:5000/app:v1` → `127.0.0.1:5000/app`). */
export function imageRepository(image: string): string {
  const name = image.split('@')[0];
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
}

/**
 * The digest to pin an image by, from its RepoDigests (repoDigests' output): the one in its own
 * repository, else any (the same content under another name); undefined when it was never pushed
 * or pulled, so no node could pull it by digest.
 */
export function pinnedDigest(text: string, image: string): DigestRef | undefined {
  const all = parseHostJson(z.array(digestRef).nullable(), text.trim() || 'null', `the RepoDigests of ${image}`) ?? [];
  const repo = imageRepository(image);
  return all.find((d) => d.slice(0, d.indexOf('@')) === repo) ?? all[0];
}

/** What the watch reads of `docker service inspect`: the spec's image and replicas, and the update the engine runs. */
export const serviceStatusEntry = z.object({
  ID: z.string(),
  Spec: z.object({
    Name: z.string(),
    TaskTemplate: z.object({ ContainerSpec: z.object({ Image: z.string() }) }),
    Mode: z
      .object({
        Replicated: z.object({ Replicas: z.number().nullish() }).nullish(),
        Global: z.object({}).passthrough().nullish(),
        /** A one-off task (src/domain/swarm-oneoff.ts), not an app service. */
        ReplicatedJob: z.object({}).passthrough().nullish(),
        GlobalJob: z.object({}).passthrough().nullish(),
      })
      .nullish(),
  }),
  /** Absent until the engine first updates the service; StartedAt tells one update from the next. */
  UpdateStatus: z.object({ State: z.string().nullish(), Message: z.string().nullish(), StartedAt: z.string().nullish() }).nullish(),
});
export type ServiceStatus = z.output<typeof serviceStatusEntry>;
export const parseServiceStatus = (text: string): ServiceStatus[] =>
  parseHostJson(z.array(serviceStatusEntry), text.trim() || '[]', 'docker service inspect output');

// Registry host[:port][/path] as config's swarm.registry admits it, then the repository path.
const REPO = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)+$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

/** `<registry>/<name>:<tag>`: where deploy pushes an image it built. */
export function registryRef(registry: string, name: string, tag: string): string {
  const repo = `${registry}/${name}`;
  if (!REPO.test(repo)) throw new Error(`"${repo}" is not a registry repository name`);
  if (!TAG.test(tag)) throw new Error(`"${tag}" is not an image tag`);
  return `${repo}:${tag}`;
}

/** A pinned image: `repo@sha256:<64 hex>`, what a release is made of. */
export const digestRef = z.string().regex(/^[a-z0-9][a-z0-9._:/-]*@sha256:[0-9a-f]{64}$/, 'must be an image pinned by digest (repo@sha256:...)');
export type DigestRef = z.output<typeof digestRef>;

/**
 * An overlay file (JSON is YAML) that pins each service's image to a digest, deployed after the
 * environment's own files: promote deploys prod with exactly the digests dev's gate ran.
 */
export function digestOverlay(images: Readonly<Record<string, string>>): string {
  const services: Record<string, { image: string }> = {};
  for (const [service, ref] of Object.entries(images).sort(([a], [b]) => a.localeCompare(b))) {
    if (!/^[a-z0-9][a-z0-9_.-]{0,62}$/.test(service)) throw new Error(`"${service}" is not a service name`);
    services[service] = { image: digestRef.parse(ref) };
  }
  return `${JSON.stringify({ services }, null, 2)}\n`;
}

/** The digest of `image` in `registry` among its RepoDigests, or undefined when it was not pushed there. */
export function parseRepoDigests(text: string, repo: string): DigestRef | undefined {
  const all = parseHostJson(z.array(digestRef).nullable(), text.trim() || 'null', `the RepoDigests of ${repo}`) ?? [];
  return all.find((d) => d.slice(0, d.indexOf('@')) === repo);
}

const labels = z.record(z.string()).nullish();

/** A line of `docker service ls --format json`. */
export const serviceLine = z.object({ ID: z.string(), Name: z.string(), Mode: z.string(), Replicas: z.string(), Image: z.string() });
export type ServiceLine = z.output<typeof serviceLine>;

/** A line of `docker service ps --format json`: one task, with the image it was given. */
export const taskLine = z.object({
  ID: z.string(),
  Name: z.string(),
  Image: z.string(),
  Node: z.string(),
  DesiredState: z.string(),
  CurrentState: z.string(),
  Error: z.string(),
});
export type TaskLine = z.output<typeof taskLine>;

/** The parts of `docker service inspect` that twinstack reads. */
export const serviceInspectEntry = z.object({
  ID: z.string(),
  Spec: z.object({
    Name: z.string(),
    Labels: labels,
    TaskTemplate: z.object({
      ContainerSpec: z.object({ Image: z.string() }),
      Placement: z.object({ Constraints: z.array(z.string()).nullish() }).nullish(),
    }),
    Mode: z.object({ Replicated: z.object({ Replicas: z.number().nullish() }).nullish(), Global: z.object({}).passthrough().nullish() }).nullish(),
    UpdateConfig: z.object({ Order: z.string().nullish(), FailureAction: z.string().nullish() }).nullish(),
  }),
  UpdateStatus: z.object({ State: z.string().nullish(), Message: z.string().nullish() }).nullish(),
});
export type ServiceInspect = z.output<typeof serviceInspectEntry>;

/** The parts of `docker node inspect` that twinstack reads: the name, the labels, whether it can take tasks. */
export const nodeInspectEntry = z.object({
  ID: z.string(),
  Spec: z.object({ Labels: labels, Role: z.string(), Availability: z.string() }),
  Description: z.object({ Hostname: z.string() }),
  Status: z.object({ State: z.string(), Addr: z.string().nullish() }),
});
export type NodeInspect = z.output<typeof nodeInspectEntry>;

/** Output of one JSON object a line (the `--format json` of the list commands), each checked by `schema`. */
export function parseJsonLines<S extends z.ZodTypeAny>(schema: S, text: string, what: string): Array<z.output<S>> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l, i) => parseHostJson(schema, l, `${what}, line ${i + 1}`));
}

export const parseServiceList = (text: string): ServiceLine[] => parseJsonLines(serviceLine, text, 'docker service ls output');
export const parseTasks = (text: string): TaskLine[] => parseJsonLines(taskLine, text, 'docker service ps output');
export const parseServiceInspect = (text: string): ServiceInspect[] =>
  parseHostJson(z.array(serviceInspectEntry), text.trim() || '[]', 'docker service inspect output');
export const parseNodes = (text: string): NodeInspect[] => parseHostJson(z.array(nodeInspectEntry), text.trim() || '[]', 'docker node inspect output');

/** The digest a task runs, from the image `docker service ps --no-trunc` prints (`repo:tag@sha256:…`); undefined when it names none. */
export function taskDigest(image: string): string | undefined {
  const m = /@(sha256:[0-9a-f]{64})$/.exec(image);
  return m ? m[1] : undefined;
}

// Reaching a stack's tasks: the containers the engine started for them, on the manager's node or through a node's endpoint.

/** The labels the engine puts on the container of every task (beside STACK_LABEL). */
export const TASK_LABELS = {
  /** The swarm service's name: `<stack>_<service>`. */
  service: 'com.docker.swarm.service.name',
  task: 'com.docker.swarm.task.id',
  node: 'com.docker.swarm.node.id',
} as const;

/** The swarm service's name of a stack's service: `<stack>_<service>`, as `docker stack deploy` names it. */
export function swarmServiceName(stack: string, service: string): string {
  return `${stack}_${service}`;
}

/** The stack's own name of a swarm service (its name without `<stack>_`); undefined when the service is not the stack's. */
export function stackServiceName(stack: string, swarmService: string | undefined): string | undefined {
  const prefix = `${stack}_`;
  return swarmService?.startsWith(prefix) && swarmService.length > prefix.length ? swarmService.slice(prefix.length) : undefined;
}

/** The `docker ps` filter value for a stack's task containers. */
export function stackLabel(stack: string): string {
  return `label=${STACK_LABEL}=${stack}`;
}

/** The `docker ps` filter value for the task containers of one of a stack's services. */
export function taskServiceLabel(stack: string, service: string): string {
  return `label=${TASK_LABELS.service}=${swarmServiceName(stack, service)}`;
}

const PROJECT_CONTAINERS = fs.readFileSync(__dirname + '/project-containers.sh', 'utf8');
const TASK_CONTAINER = fs.readFileSync(__dirname + '/task-container.sh', 'utf8');

/**
 * `docker inspect` of every task container of a stack (or of one of its services) on one engine:
 * this node's, or another node's through its endpoint (config swarm.nodes); `[]` when there is none.
 */
export function inspectStackContainers(stack: string, o: { service?: string; endpoint?: string } = {}): string {
  return hostScript(PROJECT_CONTAINERS, {
    PROJECT_LABEL: stackLabel(stack),
    SERVICE_LABEL: o.service === undefined ? '' : taskServiceLabel(stack, o.service),
    DOCKER_ENDPOINT: o.endpoint ?? '',
  });
}

/** The exit status of taskContainer when no container of the service can be reached (none runs, or its node has no swarm.nodes entry). */
export const NO_TASK_HERE = 3;

/** config swarm.nodes as task-container.sh reads it: `<hostname> <endpoint>` lines (neither holds a space). */
export function nodesParam(nodes: Readonly<Record<string, string>>): string {
  return Object.entries(nodes)
    .map(([hostname, endpoint]) => {
      if (/\s/.test(hostname + endpoint)) throw new Error(`swarm.nodes.${hostname}: a hostname or endpoint with white space`);
      return `${hostname} ${endpoint}`;
    })
    .join('\n');
}

/**
 * Prints `<id> <endpoint>` of a running container of one of a stack's services: on this node (the
 * manager's) with an empty endpoint, else on the node of a running task, through that node's entry
 * in `nodes` (config swarm.nodes). When there is none it says why on standard error (a node without
 * an entry is named, with the key to add) and exits NO_TASK_HERE.
 */
export function taskContainer(stack: string, service: string, nodes: Readonly<Record<string, string>>): string {
  return hostScript(TASK_CONTAINER, {
    STACK_FILTER: stackLabel(stack),
    SERVICE_FILTER: taskServiceLabel(stack, service),
    SERVICE: swarmServiceName(stack, service),
    NODES: nodesParam(nodes),
  });
}

/** taskContainer's output: the container and, when it runs on another node, that node's endpoint. */
export function parseTaskContainer(stdout: string): { id: string; endpoint?: string } | undefined {
  const line = stdout.split('\n')[0] ?? '';
  const space = line.indexOf(' ');
  const id = space < 0 ? line : line.slice(0, space);
  const endpoint = space < 0 ? '' : line.slice(space + 1).trim();
  if (!/^[0-9a-f]{12,64}$/.test(id)) return undefined;
  return endpoint ? { id, endpoint } : { id };
}

const STACK_NODES = fs.readFileSync(__dirname + '/stack-nodes.sh', 'utf8');

/** The manager's own hostname, then the hostnames of the nodes a stack's running tasks are on (see parseStackNodes). */
export function stackNodes(stack: string): string {
  return hostScript(STACK_NODES, { STACK: stack });
}

/** stackNodes' output: the manager's hostname and the other nodes (the manager's own left out). */
export function parseStackNodes(stdout: string): { here: string; others: string[] } {
  const [here = '', ...rest] = stdout.split('\n').map((l) => l.trim());
  return { here, others: [...new Set(rest.filter((n) => n && !/\s/.test(n) && n !== here))] };
}

/** The parts of a `docker service ps` task name: its swarm service and its slot (or node id, for a global service). */
export function taskService(taskName: string): string {
  // Older tasks of a slot are printed as `\_ <name>` in a table; a name is `<service>.<slot>`.
  const name = taskName.replace(/^\\_\s*/, '');
  const dot = name.lastIndexOf('.');
  return dot > 0 ? name.slice(0, dot) : name;
}

/** The repository of an image reference (`host:port/path/name`), its tag and digest left out. */
export function imageRepo(ref: string): string {
  const at = ref.indexOf('@');
  const noDigest = at >= 0 ? ref.slice(0, at) : ref;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

// A one-off task of a stack's service (src/domain/swarm-oneoff.ts): a replicated job started from
// the service's own spec (env, mounts, networks, secrets, placement) with another image and command.

const fileRef = z.object({
  File: z.object({ Name: z.string(), UID: z.string().nullish(), GID: z.string().nullish(), Mode: z.number().nullish() }).nullish(),
  SecretName: z.string().nullish(),
  ConfigName: z.string().nullish(),
});
const mountEntry = z.object({
  Type: z.string(),
  Source: z.string().nullish(),
  Target: z.string(),
  ReadOnly: z.boolean().nullish(),
  BindOptions: z.object({ Propagation: z.string().nullish() }).nullish(),
  VolumeOptions: z
    .object({
      NoCopy: z.boolean().nullish(),
      Labels: labels,
      DriverConfig: z.object({ Name: z.string().nullish(), Options: z.record(z.string()).nullish() }).nullish(),
    })
    .nullish(),
  TmpfsOptions: z.object({ SizeBytes: z.number().nullish(), Mode: z.number().nullish() }).nullish(),
});

/** What a one-off task copies of `docker service inspect`: the task template's container spec, networks and placement. */
export const oneOffSourceEntry = z.object({
  Spec: z.object({
    Name: z.string(),
    TaskTemplate: z.object({
      ContainerSpec: z.object({
        Command: z.array(z.string()).nullish(),
        Env: z.array(z.string()).nullish(),
        Dir: z.string().nullish(),
        User: z.string().nullish(),
        Hosts: z.array(z.string()).nullish(),
        Mounts: z.array(mountEntry).nullish(),
        Secrets: z.array(fileRef).nullish(),
        Configs: z.array(fileRef).nullish(),
      }),
      Networks: z.array(z.object({ Target: z.string() })).nullish(),
      Placement: z.object({ Constraints: z.array(z.string()).nullish() }).nullish(),
    }),
  }),
});
export type OneOffSource = z.output<typeof oneOffSourceEntry>;

/** The spec of `service` from `docker service inspect <service>`; undefined when the engine has no such service. */
export function parseOneOffSource(text: string, service: string): OneOffSource | undefined {
  return parseHostJson(z.array(oneOffSourceEntry), text.trim() || '[]', `docker service inspect ${service}`).find((s) => s.Spec.Name === service);
}

/** One field of a `--mount`, `--secret` or `--config` value: the CLI reads them as a CSV record. */
function csvField(field: string): string {
  return /[",\r\n]/.test(field) || field !== field.trim() ? `"${field.replace(/"/g, '""')}"` : field;
}

/** A `--mount` value of a mount of the spec. */
export function mountFlag(m: z.output<typeof mountEntry>): string {
  const f = [`type=${m.Type}`, ...(m.Source ? [`source=${m.Source}`] : []), `target=${m.Target}`];
  if (m.ReadOnly) f.push('readonly');
  if (m.BindOptions?.Propagation) f.push(`bind-propagation=${m.BindOptions.Propagation}`);
  const v = m.VolumeOptions;
  if (v?.NoCopy) f.push('volume-nocopy');
  if (v?.DriverConfig?.Name) f.push(`volume-driver=${v.DriverConfig.Name}`);
  for (const [k, val] of Object.entries(v?.DriverConfig?.Options ?? {})) f.push(`volume-opt=${k}=${val}`);
  for (const [k, val] of Object.entries(v?.Labels ?? {})) f.push(`volume-label=${k}=${val}`);
  if (m.TmpfsOptions?.SizeBytes) f.push(`tmpfs-size=${m.TmpfsOptions.SizeBytes}`);
  if (m.TmpfsOptions?.Mode) f.push(`tmpfs-mode=0${m.TmpfsOptions.Mode.toString(8)}`);
  return f.map(csvField).join(',');
}

/** A `--secret` or `--config` value of a secret or config the spec gives as a file; undefined for one it does not. */
export function fileRefFlag(r: z.output<typeof fileRef>): string | undefined {
  const source = r.SecretName ?? r.ConfigName;
  if (!r.File || !source) return undefined;
  const f = [`source=${source}`, `target=${r.File.Name}`];
  if (r.File.UID) f.push(`uid=${r.File.UID}`);
  if (r.File.GID) f.push(`gid=${r.File.GID}`);
  if (r.File.Mode !== undefined && r.File.Mode !== null) f.push(`mode=0${r.File.Mode.toString(8)}`);
  return f.map(csvField).join(',');
}

/** `docker service create` flags that give a one-off task the spec's mounts, networks, secrets, configs, placement and process settings. */
export function oneOffSpecFlags(source: OneOffSource): string[] {
  const t = source.Spec.TaskTemplate;
  const c = t.ContainerSpec;
  const refs = (flag: string, list: ReadonlyArray<z.output<typeof fileRef>> | null | undefined) =>
    (list ?? []).map(fileRefFlag).flatMap((v) => (v === undefined ? [] : [flag, v]));
  return [
    ...(c.Mounts ?? []).flatMap((m) => ['--mount', mountFlag(m)]),
    // By id: the spec names the networks so, the stack's own and an external one (host) alike.
    ...(t.Networks ?? []).flatMap((n) => ['--network', n.Target]),
    ...refs('--secret', c.Secrets),
    ...refs('--config', c.Configs),
    ...(t.Placement?.Constraints ?? []).flatMap((x) => ['--constraint', x]),
    ...(c.Dir ? ['--workdir', c.Dir] : []),
    ...(c.User ? ['--user', c.User] : []),
    ...(c.Hosts ?? []).flatMap((h) => ['--host', hostFlag(h)]),
    // The service's entrypoint (compose's `entrypoint:`), as the CLI splits it: one shell-quoted string.
    ...(c.Command?.length ? ['--entrypoint', c.Command.map((w) => quote(w)).join(' ')] : []),
  ];
}

/** The spec keeps extra hosts as `IP host…` (the /etc/hosts line); the flag takes `host:IP`. */
function hostFlag(line: string): string {
  const [ip, ...names] = line.trim().split(/\s+/);
  return names.map((n) => `${n}:${ip}`).join(',') || line;
}

/**
 * An env file (`--env-file`) of the spec's variables with `extra` over them: one KEY=VALUE a line,
 * as the docker client reads it (no quotes, no continuation). A value it could not read back as
 * given (a line break, a key with space or `=`) is refused rather than changed.
 */
export function oneOffEnvFile(specEnv: readonly string[], extra: Readonly<Record<string, string>>): string {
  const vars = new Map<string, string>();
  for (const kv of specEnv) {
    const eq = kv.indexOf('=');
    // A bare name would make the client copy its own variable of that name: the spec has no value for it.
    if (eq > 0) vars.set(kv.slice(0, eq), kv.slice(eq + 1));
  }
  for (const [k, v] of Object.entries(extra)) vars.set(k, v);
  return [...vars]
    .map(([k, v]) => {
      if (!/^[^\s=#][^\s=]*$/.test(k) || /[\r\n\0]/.test(v) || k.length + v.length > 60_000)
        throw new Error(`variable ${k.slice(0, 40)} cannot be passed to a one-off task through an env file`);
      return `${k}=${v}\n`;
    })
    .join('');
}

/** What oneOffCreate starts: the job's name, the image, the env file, the command, and the source spec. */
export interface OneOffJob {
  /** `<stack>_twinstack-<what>`: fixed, so a cut run's job can be found and removed. */
  name: string;
  /** The image the task runs, pinned by digest. */
  image: string;
  /** The env file on the manager (read by the client there, at create time). */
  envFile: string;
  command: readonly string[];
  source: OneOffSource;
}

/** `docker service create` of a one-off job: one task, never restarted, registry credentials sent to the node. */
export function oneOffCreate(j: OneOffJob): string {
  return argv(
    ['docker', 'service', 'create', '--quiet', '--mode', 'replicated-job', '--restart-condition', 'none', '--detach', '--with-registry-auth'],
    ['--name', j.name, '--env-file', j.envFile, ...oneOffSpecFlags(j.source)],
    [j.image, ...j.command],
  );
}

const JOB_WAIT = fs.readFileSync(__dirname + '/job-wait.sh', 'utf8');

/** Waits for the one task of a one-off job to end (complete, failed, rejected, shut down); prints its id. */
export function jobWait(name: string): string {
  return hostScript(JOB_WAIT, { SERVICE: name });
}

/** `docker inspect` of a task: its state, the engine's error and the container's exit code. */
export function taskInspect(id: string): string {
  return argv('docker', 'inspect', '--type', 'task', id);
}

export const taskStatusEntry = z.object({
  ID: z.string(),
  Status: z.object({
    State: z.string(),
    Err: z.string().nullish(),
    ContainerStatus: z.object({ ExitCode: z.number().nullish() }).nullish(),
  }),
});
export type TaskStatus = z.output<typeof taskStatusEntry>;
export const parseTaskStatus = (text: string, id: string): TaskStatus | undefined =>
  parseHostJson(z.array(taskStatusEntry), text.trim() || '[]', `docker inspect of task ${id}`)[0];

/** `docker service logs` of a service's tasks as they wrote it: the task's stdout on stdout, its stderr on stderr. */
export function serviceLogs(name: string): string {
  return argv('docker', 'service', 'logs', '--raw', '--no-trunc', name);
}

const JOB_REMOVE = fs.readFileSync(__dirname + '/job-remove.sh', 'utf8');

/** Removes a one-off job, its live task stopped first (the engine would leave it running); nothing when there is no such job. */
export function jobRemove(name: string): string {
  return hostScript(JOB_REMOVE, { SERVICE: name });
}

/** `docker service rm`: the engine stops the service's tasks (not a job's: see jobRemove). */
export function serviceRemove(name: string): string {
  return argv('docker', 'service', 'rm', name);
}
