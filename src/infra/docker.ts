/**
 * `docker exec` that a run can stop. A process started with a plain `docker exec` lives on inside
 * the container when the client is killed (by a time limit, or by a cancel), so the lease would end
 * while it still works on the environment. Here the process writes its pid to
 * `/tmp/.twinstack-exec-<operation>-<pid>` inside the container, and a TERM or HUP to the host-side
 * command is passed on to it; a cancel finds the pid files of its operation (EnvironmentLock.stopWork).
 */
import * as fs from 'node:fs';
import { argv, hostScript, quote, sh, type Arg } from './shell';

/** The pid-file prefix inside containers; the operation id comes from TWINSTACK_OP (set by the fence). */
export const EXEC_PID_PREFIX = '/tmp/.twinstack-exec-';

// A pid file holds the pid and its start time (field 22 of /proc/<pid>/stat, kept across exec). A
// file outlives its process (exec leaves nothing to remove it), and a container reuses its small
// pids fast: a stop signals a pid only while that same process still runs, never a PostgreSQL
// backend that took the number since.
const IN_CONTAINER = `echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" > "${EXEC_PID_PREFIX}\${TWINSTACK_OP:-none}-$$"; exec "$@"`;
/** The in-container loop that signals (SIG) the processes whose pid files match PATTERN, each only while it is still the process that wrote it. */
export function signalExecs(pattern: string, signal: 'TERM' | 'KILL'): string {
  return `for f in ${pattern}; do [ -e "$f" ] || continue; read -r p s < "$f"; [ -n "$s" ] && [ "$(cut -d" " -f22 /proc/"$p"/stat 2>/dev/null)" = "$s" ] && kill -${signal} "$p" 2>/dev/null && echo "$f"; rm -f "$f"; done; true`;
}
const STOP_IN_CONTAINER = `{ ${signalExecs(`"${EXEC_PID_PREFIX}\${TWINSTACK_OP:-none}"-*`, 'TERM')}; } >/dev/null`;

/**
 * A container and the engine that runs it: on a swarm, a task's container may run on another node,
 * whose engine the manager reaches through the endpoint (`docker -H`, config swarm.nodes).
 */
export interface ContainerRef {
  id: string;
  /** The node engine's endpoint; absent for the engine the host's own docker client talks to. */
  endpoint?: string;
}

/** A container named by the caller's shell: its id in a variable ("$c") and, optionally, its engine's `-H` words (`${e:+-H "$e"}`). */
export interface ShellContainer {
  shell: string;
  hostFlag?: string;
}

/** `docker` for the host's own engine, `docker -H <endpoint>` for a node's: every command about a container goes to its engine. */
export function dockerCli(endpoint?: string): string[] {
  return endpoint ? ['docker', '-H', endpoint] : ['docker'];
}

/**
 * A shell command that runs `command` in a container (a container id or name, a ContainerRef on
 * its node's engine, or shell words the caller set, such as "$c"). Standard input is passed
 * through when `stdin` is set; the command's exit status is the in-container process's.
 */
export function dockerExec(container: string | ContainerRef | ShellContainer, command: readonly Arg[], opts: { stdin?: boolean } = {}): string {
  const [c, docker] =
    typeof container === 'string'
      ? [quote(container), 'docker']
      : 'shell' in container
        ? [container.shell, container.hostFlag ? `docker ${container.hostFlag}` : 'docker']
        : [quote(container.id), argv(dockerCli(container.endpoint))];
  const run =
    `${docker} ` + argv('exec', ...(opts.stdin ? ['-i'] : []), '-e') + ` "TWINSTACK_OP=$TWINSTACK_OP" ${c} ` + argv('sh', '-c', IN_CONTAINER, 'sh', command);
  const stop = `${docker} exec -e "TWINSTACK_OP=$TWINSTACK_OP" ${c} sh -c ${quote(STOP_IN_CONTAINER)} 2>/dev/null; kill "$__twinstack_x" 2>/dev/null`;
  return `{ ${run} ${opts.stdin ? '<&0 ' : '</dev/null '}& __twinstack_x=$!; trap ${quote(stop)} TERM INT HUP; wait "$__twinstack_x"; __twinstack_s=$?; while kill -0 "$__twinstack_x" 2>/dev/null; do wait "$__twinstack_x"; __twinstack_s=$?; done; trap - TERM INT HUP; ( exit "$__twinstack_s" ); }`;
}

/** `docker image inspect` printing the id of each image reference, one per line; exits non-zero when one is missing. */
export function imageIdsCommand(refs: readonly string[]): string {
  return argv('docker', 'image', 'inspect', '--format', '{{.Id}}', refs);
}

/** The labels compose puts on the containers it starts (v1 and v2 alike). */
export const COMPOSE_LABELS = {
  project: 'com.docker.compose.project',
  service: 'com.docker.compose.service',
  workingDir: 'com.docker.compose.project.working_dir',
  oneoff: 'com.docker.compose.oneoff',
} as const;

/** The `docker ps` filter value for the containers of a compose project. */
export function projectLabel(project: string): string {
  return `label=${COMPOSE_LABELS.project}=${project}`;
}

/** The `docker ps` filter value for the containers of one compose service. */
export function serviceLabel(service: string): string {
  return `label=${COMPOSE_LABELS.service}=${service}`;
}

/** `--filter` words selecting a compose project's containers (one service's, when given). */
export function projectFilter(project: string, service?: string): string[] {
  return ['--filter', projectLabel(project), ...(service === undefined ? [] : ['--filter', serviceLabel(service)])];
}

/** `docker ps -q` (`-aq` with `all`): the ids of a compose project's (or one service's) containers. */
export function psIds(project: string, o: { service?: string; all?: boolean } = {}): string {
  return argv('docker', 'ps', o.all ? '-aq' : '-q', projectFilter(project, o.service));
}

const PROJECT_CONTAINERS = fs.readFileSync(__dirname + '/project-containers.sh', 'utf8');

/** `docker inspect` of every container of a compose project (or of one service), `[]` when there is none. */
export function inspectProjectContainers(project: string, service?: string): string {
  return hostScript(PROJECT_CONTAINERS, {
    PROJECT_LABEL: projectLabel(project),
    SERVICE_LABEL: service === undefined ? '' : serviceLabel(service),
    DOCKER_ENDPOINT: '',
  });
}

/** The last `lines` lines of a container's log, standard error folded into standard output. */
export function logsTail(container: string, lines: number): string {
  return sh`docker logs --tail ${lines} ${container} 2>&1`;
}

/** `docker images` listing the images whose repository matches `pattern`, in the given Go template. */
export function listImages(pattern: string, format: string): string {
  return argv('docker', 'images', '--format', format, pattern);
}

/** `docker tag` of each pair, stopping at the first that fails. */
export function tagImages(pairs: ReadonlyArray<{ from: string; to: string }>): string {
  // Nothing to tag: no script, so callers run nothing.
  if (!pairs.length) return '';
  return hostScript(
    TAG_IMAGES,
    {},
    pairs.flatMap((p) => [p.from, p.to]),
  );
}

const SETTLE_RECREATE = fs.readFileSync(__dirname + '/settle-recreate.sh', 'utf8');

/** Settles the containers an interrupted compose v2 recreate left (`<old id>_<name>`), one line per change: settle-recreate.sh. */
export function settleRecreate(project: string): string {
  return hostScript(SETTLE_RECREATE, { PROJECT_LABEL: projectLabel(project) });
}

const TAG_IMAGES = fs.readFileSync(__dirname + '/tag-images.sh', 'utf8');

const STOP_REMOVE = fs.readFileSync(__dirname + '/stop-remove.sh', 'utf8');

/** Stops the containers (`drainSeconds` after SIGTERM, then SIGKILL), then removes them, even when the stop failed. */
export function stopAndRemove(ids: readonly string[], drainSeconds: number): string {
  return hostScript(STOP_REMOVE, { DRAIN_SECONDS: drainSeconds }, ids);
}

/** Docker's 12-character form of a container or image id (`sha256:` left out). */
export function shortId(id: string): string {
  return id.replace(/^sha256:/, '').slice(0, 12);
}
