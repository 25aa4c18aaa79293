/**
 * `docker stack deploy` (CLI 20.10) merges an environment's compose files differently from
 * compose: where compose lets the last file's `command`, `entrypoint` or `healthcheck.test`
 * replace the earlier one, the stack's loader appends it, in list or string form alike (checked on
 * 20.10.24: base `[CMD-SHELL, a]` and overlay `[CMD-SHELL, b]` give the task `[CMD-SHELL, a,
 * CMD-SHELL, b]`, which runs `a`). An overlay's healthcheck is then silently ignored, and a broken
 * release judged healthy. The merged model cannot show it (compose printed it), so this check
 * reads each compose file on its own: for a swarm environment, one of these keys set for a service
 * in more than one file is refused.
 */
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ENVIRONMENTS, type Config, type EnvironmentName } from '../domain/config';
import type { Host } from '../infra/host';
import { ignored, type Logger } from '../infra/logger';
import type { Finding } from './findings';

/** The keys the stack's loader appends across files, as paths under a service. */
const APPENDED: ReadonlyArray<readonly string[]> = [['command'], ['entrypoint'], ['healthcheck', 'test']];

export interface ComposeFileText {
  /** The file as the config names it (relative to the checkout). */
  file: string;
  text: string;
}

export interface StackMergeOptions {
  files: readonly ComposeFileText[];
  environment: EnvironmentName;
  /** preflight's warn-only checks: with 'stack-merge' among them, its errors are warnings. */
  warnOnly?: readonly string[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The value at `keys` under `o`, undefined when a step is missing or null. */
function at(o: unknown, keys: readonly string[]): unknown {
  let v = o;
  for (const k of keys) v = isObj(v) ? v[k] : undefined;
  return v ?? undefined;
}

/** Each service's each appended key, with the files (in order) that set it. */
function setters(files: readonly ComposeFileText[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const { file, text } of files) {
    // merge: compose files share settings through YAML anchors and `<<`.
    const doc: unknown = parseYaml(text, { merge: true });
    const services = at(doc, ['services']);
    if (!isObj(services)) continue;
    for (const [name, service] of Object.entries(services)) {
      for (const keys of APPENDED) {
        if (at(service, keys) === undefined) continue;
        const id = `${name}\0${keys.join('.')}`;
        out.set(id, [...(out.get(id) ?? []), file]);
      }
    }
  }
  return out;
}

/** One finding per service and key that more than one of the environment's compose files sets. */
export function checkStackMerge({ files, environment, warnOnly = [] }: StackMergeOptions): Finding[] {
  const down = warnOnly.includes('stack-merge');
  const out: Finding[] = [];
  for (const [id, where] of setters(files)) {
    if (where.length < 2) continue;
    const [service, key] = id.split('\0');
    const message = `${environment}'s swarm service ${service} sets ${key} in ${where.join(' and ')}: docker stack deploy appends the later list to the first instead of replacing it, so the task runs the first`;
    out.push({
      check: 'stack-merge',
      environment,
      severity: down ? 'warning' : 'error',
      message: down ? `${message} (warn-only)` : message,
      fix: `define ${service}'s ${key} in one of those files only`,
    });
  }
  return out;
}

/**
 * The check for every environment whose target is swarm, each compose file read from its checkout.
 * A file that cannot be read or parsed is left to the compose-config check, which reports it.
 */
export async function stackMergeFindings(ctx: { host: Host; config: Config; log: Logger }, warnOnly: readonly string[] = []): Promise<Finding[]> {
  const { host, config, log } = ctx;
  const findings: Finding[] = [];
  for (const environment of ENVIRONMENTS.filter((e) => config.environments[e].target === 'swarm')) {
    const env = config.environments[environment];
    const read = async (file: string) => ({ file, text: (await host.readFile(path.posix.resolve(env.checkout, file))).toString('utf8') });
    const check = async () => checkStackMerge({ files: await Promise.all(env.composeFiles.map(read)), environment, warnOnly });
    findings.push(...(await check().catch(ignored(log, `${environment}: reading each compose file for the stack-merge check`, []))));
  }
  return findings;
}
