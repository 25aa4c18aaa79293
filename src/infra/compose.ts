/**
 * The one place a compose command line is built. Only subcommands and flags that both
 * `docker compose` (v2) and `docker-compose` (v1) have are used.
 */
import { argv, sh, type Arg } from './shell';

export type ComposeCommand = 'docker compose' | 'docker-compose';

/** What names one compose project on the host: its files, env file and project name. */
export interface ComposeProject {
  command: ComposeCommand;
  /** The compose files, base first (each `-f`). */
  files: readonly string[];
  envFile: string;
  project: string;
}

/** `<compose> -f <base> -f <overlay> --env-file <env> -p <project> <args>`. */
export function compose(p: ComposeProject, args: readonly Arg[]): string {
  const cmd = p.command === 'docker-compose' ? ['docker-compose'] : ['docker', 'compose'];
  return argv(
    cmd,
    p.files.flatMap((f) => ['-f', f]),
    '--env-file',
    p.envFile,
    '-p',
    p.project,
    args,
  );
}

/**
 * A compose command as one line of a script the host runs later (an undo file): it runs in `dir`,
 * with COMPOSE_PROJECT_NAME set for v1's interpolation, and not at all when `cd` fails.
 */
export function composeLine(dir: string, p: ComposeProject, args: readonly Arg[]): string {
  return sh`cd ${dir} && COMPOSE_PROJECT_NAME=${p.project} ` + compose(p, args);
}
