/**
 * An environment (prod or dev) on the host: its compose project and the commands that drive it.
 * Only subcommands and flags that both `docker compose` (v2) and `docker-compose` (v1) have are
 * used, and structured state comes from `docker inspect`, which both leave alone.
 */
import type { Config, EnvironmentConfig, EnvironmentName } from './config';
import type { Host, RunOptions } from './host';
import { argv, sh, type Arg } from './shell';

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
}

export class Environment {
  readonly cfg: EnvironmentConfig;

  constructor(
    readonly name: EnvironmentName,
    readonly config: Config,
  ) {
    this.cfg = config.environments[name];
  }

  get project(): string {
    return this.cfg.project;
  }

  /** `<compose> -f <base> -f <overlay> --env-file <env> -p <project> <args>`, run from the checkout. */
  compose(...args: Arg[]): string {
    const cmd = this.config['compose-command'] === 'docker-compose' ? ['docker-compose'] : ['docker', 'compose'];
    const files = this.cfg.composeFiles.flatMap((f) => ['-f', f]);
    return argv(cmd, files, '--env-file', this.cfg.envFile, '-p', this.cfg.project, args);
  }

  /** Run options for compose commands: in the checkout, with COMPOSE_PROJECT_NAME set for v1's interpolation. */
  composeOptions(extra: RunOptions = {}): RunOptions {
    return { ...extra, cwd: this.cfg.checkout, env: { COMPOSE_PROJECT_NAME: this.cfg.project, ...(extra.env ?? {}) } };
  }

  async containers(host: Host): Promise<ContainerState[]> {
    const script = sh`ids=$(docker ps -aq --filter ${`label=com.docker.compose.project=${this.cfg.project}`}) && if [ -n "$ids" ]; then docker inspect $ids; else echo '[]'; fi`;
    const r = await host.run(script, { quiet: true, label: `listing ${this.name} containers`, timeoutSeconds: 120 });
    return parseInspect(r.stdout);
  }
}

// The parts of `docker inspect` output that twinstack reads.
interface Inspect {
  Id: string;
  Name: string;
  Image: string;
  Config?: { Image?: string; Labels?: Record<string, string>; Healthcheck?: { Test?: string[] } };
  State?: { Status?: string; ExitCode?: number; StartedAt?: string; Health?: { Status?: string } };
}

export function parseInspect(json: string): ContainerState[] {
  const list = JSON.parse(json || '[]') as Inspect[];
  return list
    .map((c) => {
      const test = c.Config?.Healthcheck?.Test;
      return {
        id: c.Id.slice(0, 12),
        name: c.Name.replace(/^\//, ''),
        service: c.Config?.Labels?.['com.docker.compose.service'] ?? '',
        image: c.Config?.Image ?? '',
        imageId: c.Image,
        status: c.State?.Status ?? 'unknown',
        health: c.State?.Health?.Status ?? 'none',
        exitCode: c.State?.ExitCode ?? 0,
        startedAt: c.State?.StartedAt ?? '',
        hasHealthcheck: Array.isArray(test) && test.length > 0 && test[0] !== 'NONE',
      };
    })
    .sort((a, b) => a.service.localeCompare(b.service));
}
