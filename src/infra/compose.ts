/**
 * The one place a compose command line is built. Only subcommands and flags that both
 * `docker compose` (v2) and `docker-compose` (v1) have are used.
 */
import { argv, type Arg } from './shell';

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
 * A compose command for a host script that runs it later (an undo file), as that script's
 * parameters: it runs in RESTART_DIR with COMPOSE_PROJECT_NAME set to RESTART_PROJECT (v1's
 * interpolation), and not at all when `cd` fails. RESTART is '' when there is nothing to run.
 */
export interface LaterCompose {
  RESTART_DIR: string;
  RESTART_PROJECT: string;
  RESTART: string;
}

export const NOTHING_LATER: LaterCompose = { RESTART_DIR: '', RESTART_PROJECT: '', RESTART: '' };

export function composeLater(dir: string, p: ComposeProject, args: readonly Arg[]): LaterCompose {
  return { RESTART_DIR: dir, RESTART_PROJECT: p.project, RESTART: compose(p, args) };
}
