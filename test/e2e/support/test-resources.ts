/**
 * The names and labels of everything the end-to-end suites make on the Docker engine, and the
 * guards that keep them away from anything else there.
 *
 * Every compose project, container, volume, image and network a suite makes is named
 * `twinstack-test-<run>-…`, where <run> is random for each test process, and carries the labels
 * `twinstack.test-run=<run>` and `twinstack.test-slot=<slot>` (TWINSTACK_E2E_SLOT) where Docker
 * takes labels. Teardown removes only what carries both the name and the label, so a suite can
 * never remove another stack's containers, volumes or release images, whatever they are called.
 *
 * Before a suite makes anything, `refuseRealStacks()` looks at the engine and refuses to go on when
 * it finds containers of a real stack: a compose project twinstack has deployed (it has
 * `twinstack/<project>-*` release images), or one named in TWINSTACK_TEST_PROTECT (comma-separated).
 * The suites are meant for a machine of their own (CI, a laptop), never for the VPS they protect.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

export const SLOT = Number(process.env.TWINSTACK_E2E_SLOT ?? 0) || 0;
/** The start of every test resource's name. */
export const TEST_PREFIX = 'twinstack-test-';
/** This process's run: random, so two runs (or a real stack) never share a name. */
export const RUN = randomBytes(4).toString('hex');
export const RUN_LABEL = 'twinstack.test-run';
export const SLOT_LABEL = 'twinstack.test-slot';
/** The sandbox's own stack (scripts/sandbox.ts): not a real stack, and not the suites' to remove. */
const SANDBOX_PREFIX = 'twinstack-sandbox-';

/** A name of this run's: twinstack-test-<run>-<part>. */
export function testName(part: string): string {
  return `${TEST_PREFIX}${RUN}-${part}`;
}

/** `docker run`/`docker network create` flags that label a resource as this run's. */
export function labelFlags(): string[] {
  return ['--label', `${RUN_LABEL}=${RUN}`, '--label', `${SLOT_LABEL}=${SLOT}`];
}

/** The env-file lines the fixtures' compose files read their test labels from. */
export function labelEnvLines(): string {
  return `TWINSTACK_TEST_RUN=${RUN}\nTWINSTACK_TEST_SLOT=${SLOT}\n`;
}

function docker(args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 * 1024 * 1024 });
}

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/**
 * Why the suites must not run on this engine, or undefined. Pure, for its unit test: `containers`
 * are `<name> <compose project>` pairs, `releaseTags` the repositories of twinstack's release
 * images (`twinstack/<project>-<service>`).
 */
export function realStackProblem(containers: Array<{ name: string; project: string }>, releaseRepos: string[], protect: string[]): string | undefined {
  const ours = (project: string) => project.startsWith(TEST_PREFIX) || project.startsWith(SANDBOX_PREFIX);
  const deployed = (project: string) => releaseRepos.some((r) => r.startsWith(`twinstack/${project}-`));
  const real = containers.filter((c) => c.project && !ours(c.project) && (protect.includes(c.project) || deployed(c.project)));
  if (real.length === 0) return undefined;
  const projects = [...new Set(real.map((c) => c.project))].sort();
  return (
    `this Docker engine runs a real stack (compose project ${projects.join(', ')}: ${real.length} container(s), e.g. ${real[0].name}); ` +
    'the end-to-end suites restart containers and the engine, so run them on a machine of their own (CI, a laptop), never on the host they deploy to'
  );
}

/** Throws when the engine runs a real stack (see realStackProblem). */
export function refuseRealStacks(): void {
  const containers = lines(docker(['ps', '-a', '--format', '{{.Names}}\t{{.Label "com.docker.compose.project"}}'])).map((l) => {
    const [name, project = ''] = l.split('\t');
    return { name, project };
  });
  const repos = lines(docker(['images', '--format', '{{.Repository}}', 'twinstack/*']));
  const protect = (process.env.TWINSTACK_TEST_PROTECT ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const problem = realStackProblem(containers, repos, protect);
  if (problem) throw new Error(problem);
}

/**
 * Why the engine may not be restarted by a test, or undefined: a restart stops every container on
 * it, so every container must be a test's (labelled and named as one).
 */
export function foreignContainers(): string[] {
  return lines(docker(['ps', '-a', '--format', `{{.Names}}\t{{.Label "${RUN_LABEL}"}}`]))
    .map((l) => l.split('\t'))
    .filter(([name, run]) => !(name.startsWith(TEST_PREFIX) && run))
    .map(([name]) => name);
}

/**
 * Removes the Docker resources of this slot's test runs: this run's, and those an earlier, killed
 * run in the same slot left behind (they would hold the slot's ports). Only what is named
 * twinstack-test-… and labelled with this slot goes; images go by this run's (or the leftover
 * runs') name prefix, with twinstack's release tags of them.
 */
export function removeTestResources(): void {
  const slot = ['--filter', `label=${SLOT_LABEL}=${SLOT}`];
  const named = (rows: string[]) => rows.map((l) => l.split('\t')).filter(([name, run]) => name.startsWith(TEST_PREFIX) && run);
  const containers = named(lines(docker(['ps', '-a', ...slot, '--format', `{{.Names}}\t{{.Label "${RUN_LABEL}"}}`])));
  const volumes = named(lines(docker(['volume', 'ls', ...slot, '--format', `{{.Name}}\t{{.Label "${RUN_LABEL}"}}`])));
  const networks = named(lines(docker(['network', 'ls', ...slot, '--format', `{{.Name}}\t{{.Label "${RUN_LABEL}"}}`])));
  const runs = new Set([RUN, ...containers.map(([, run]) => run), ...volumes.map(([, run]) => run), ...networks.map(([, run]) => run)]);
  if (containers.length) docker(['rm', '-f', '-v', ...containers.map(([name]) => name)]);
  if (volumes.length) docker(['volume', 'rm', '-f', ...volumes.map(([name]) => name)]);
  for (const [name] of networks) {
    try {
      docker(['network', 'rm', name]);
    } catch {
      /* still in use by a container of another slot's: left for that slot's teardown */
    }
  }
  const tags = lines(docker(['images', '--format', '{{.Repository}}:{{.Tag}}'])).filter((t) =>
    [...runs].some((run) => t.startsWith(`${TEST_PREFIX}${run}-`) || t.startsWith(`twinstack/${TEST_PREFIX}${run}-`)),
  );
  if (tags.length) {
    try {
      docker(['rmi', ...tags]);
    } catch {
      /* an image still used by a container being removed: its tag goes with the next teardown */
    }
  }
}
