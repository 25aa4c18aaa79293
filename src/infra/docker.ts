/**
 * `docker exec` that a run can stop. A process started with a plain `docker exec` lives on inside
 * the container when the client is killed (by a time limit, or by a cancel), so the lease would end
 * while it still works on the environment. Here the process writes its pid to
 * `/tmp/.twinstack-exec-<operation>-<pid>` inside the container, and a TERM or HUP to the host-side
 * command is passed on to it; a cancel finds the pid files of its operation (EnvironmentLock.stopWork).
 */
import { argv, quote, type Arg } from './shell';

/** The pid-file prefix inside containers; the operation id comes from TWINSTACK_OP (set by the fence). */
export const EXEC_PID_PREFIX = '/tmp/.twinstack-exec-';

const IN_CONTAINER = `echo $$ > "${EXEC_PID_PREFIX}\${TWINSTACK_OP:-none}-$$"; exec "$@"`;
const STOP_IN_CONTAINER = `for f in "${EXEC_PID_PREFIX}\${TWINSTACK_OP:-none}"-*; do [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; rm -f "$f"; done; true`;

/**
 * A shell command that runs `command` in a container (a container id or name, or a shell word such
 * as "$c" already set by the caller). Standard input is passed through when `stdin` is set; the
 * command's exit status is the in-container process's.
 */
export function dockerExec(container: string | { shell: string }, command: readonly Arg[], opts: { stdin?: boolean } = {}): string {
  const c = typeof container === 'string' ? quote(container) : container.shell;
  const run =
    argv('docker', 'exec', ...(opts.stdin ? ['-i'] : []), '-e') + ` "TWINSTACK_OP=$TWINSTACK_OP" ${c} ` + argv('sh', '-c', IN_CONTAINER, 'sh', command);
  const stop = `docker exec -e "TWINSTACK_OP=$TWINSTACK_OP" ${c} sh -c ${quote(STOP_IN_CONTAINER)} 2>/dev/null; kill "$__twinstack_x" 2>/dev/null`;
  return `{ ${run} ${opts.stdin ? '<&0 ' : '</dev/null '}& __twinstack_x=$!; trap ${quote(stop)} TERM INT HUP; wait "$__twinstack_x"; __twinstack_s=$?; while kill -0 "$__twinstack_x" 2>/dev/null; do wait "$__twinstack_x"; __twinstack_s=$?; done; trap - TERM INT HUP; ( exit "$__twinstack_s" ); }`;
}

/** `docker image inspect` printing the id of each image reference, one per line; exits non-zero when one is missing. */
export function imageIdsCommand(refs: readonly string[]): string {
  return argv('docker', 'image', 'inspect', '--format', '{{.Id}}', refs);
}
