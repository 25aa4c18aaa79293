/**
 * deploy: put one environment on exactly one commit. Under the environment's lock:
 * fetch and check out the commit (detached) → compose build → up -d → wait for healthchecks →
 * probe the health URL → tag the images with the release id and record the release → prune old tags.
 * A failure after `up` leaves the environment on the new, unhealthy containers; the summary says so
 * and names the rollback to run.
 */
import { short } from '../../infra/sha';
import type { DeployInputs, DeployOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import type { Config, EnvironmentName } from '../../domain/config';
import { Environment, type ContainerState } from '../../domain/environment';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import { checkoutCommit, releaseEnvironment, resolveRef } from '../../domain/git';
import { underLock, type Operation } from '../../domain/operation';
import { drift, observe, type ObservedState } from '../../domain/state';
import {
  HealthError,
  composeBuildAndUp,
  currentRelease,
  newReleaseId,
  probeHealthUrl,
  pruneOldReleases,
  tagRelease,
  waitHealthy,
  type Release,
} from '../../domain/release';
import type { ActionIO } from '../../infra/actions-io';
import type { Host } from '../../infra/host';
import { ignored, type Logger } from '../../infra/logger';
import { Summary } from '../../infra/summary';
import { IsolationRefused, isolationGate } from '../../safety/preflight';
import * as validate from '../../infra/validate';
import { environmentInput, servicesTable } from '../common';
import { SwarmDeployFailed } from '../../domain/swarm-release';
import { runSwarmDeploy, swarmFailureLines } from './swarm';

interface Plan {
  environment: EnvironmentName;
  ref: string;
  build: boolean;
}

export interface DeployResult {
  releaseId: string;
  sha: string;
  previousReleaseId: string;
  durationSeconds: number;
  containers: ContainerState[];
}

export const deployAction: ActionDefinition<DeployInputs, DeployOutputs, Plan> = {
  name: 'deploy',
  prepare({ io, run, config }) {
    const environment = environmentInput(io.required('environment', 'prod or dev'));
    if (environment === 'prod' && !config.deploy['allow-prod']) {
      throw new ConfigurationError(
        'deploy refuses environment prod: prod changes through the flip-the-switch workflow (promote), which ships what passed on dev; for a first install or a repair set deploy.allow-prod: true in the config',
      );
    }
    const ref = io.input('ref') || run.sha;
    if (!ref) throw new ConfigurationError('input ref is required when the workflow has no commit (GITHUB_SHA)');
    validate.gitRef(ref);
    const build = validate.boolean(io.defaulted('build'), 'input build');
    if (!build && config.environments[environment].target === 'swarm')
      throw new ConfigurationError(
        `input build: false is not possible: ${environment}'s target is swarm, whose nodes run only images deploy pushed; set build: true`,
      );
    return { environment, ref, build };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const env = new Environment(plan.environment, config);
    io.output('url', env.cfg.url);
    const d: Deployment = { host, config, log, env, plan, started: Date.now() };
    let deployed: Deployed;
    try {
      deployed = await underLock(
        { host, stateDir: config['state-dir'], env: env.name, ...env.workScope, action: 'deploy', run, log, lockTimeoutSeconds },
        // A swarm target builds, pushes and deploys a stack by digest; compose's runbook is unchanged.
        (op) => (env.cfg.target === 'swarm' ? runSwarmDeploy(d, op) : runDeploy(d, op)),
      );
    } catch (e) {
      // The step fails with the error itself: its kind decides how the runner reports it.
      const failed = e instanceof DeployFailed ? e : undefined;
      const error = failed ? failed.error : e;
      await io.summary(failureSummary(env, error, failed).toMarkdown());
      throw error;
    }
    await reportDeployed(io, env, deployed);
  },
};

/** One deploy, fixed for its whole run. */
export interface Deployment {
  host: Host;
  config: Config;
  log: Logger;
  env: Environment;
  plan: Plan;
  /** When the run began: the deploy's duration counts from here. */
  started: number;
}

/** The environment as found under its lock. */
export interface Opened {
  previous?: Release;
  /** What runs, before anything changes. */
  before: ObservedState;
  /** How what runs differs from the recorded release: this deploy settles it. */
  settled: string[];
}

export interface Deployed extends DeployResult {
  settled: string[];
}

type Stage = 'checkout' | 'isolation' | 'build and up' | 'health';

/** A deploy that failed in a step: the stage, the commit (once resolved), and how what runs now differs from the record. */
export class DeployFailed extends Error {
  constructor(
    readonly stage: Stage,
    readonly sha: string,
    readonly error: unknown,
    readonly drift: string[] = [],
  ) {
    super(errorMessage(error));
  }
}

/**
 * The runbook under the environment's lock: what runs → checkout → isolation checks → build and up
 * → health → tag and record. A failure in any step is recorded as what runs now, then fails the run.
 */
export async function runDeploy(d: Deployment, op: Operation): Promise<Deployed> {
  const opened = await openDeploy(d, op);
  try {
    const sha = await checkOut(d);
    await checkIsolation(d, opened, sha);
    const containers = await startCommit(d, sha);
    return await recordDeploy(d, { op, opened, sha, containers });
  } catch (e) {
    throw await recordFailedDeploy(d, op, opened, e);
  }
}

/** Start from what runs, not from the record: a deploy settles any drift. */
export async function openDeploy(d: Deployment, op: Operation): Promise<Opened> {
  const { env, log } = d;
  const previous = currentRelease(op.records);
  const before = await observe(d.host, env);
  const settled = drift(before, previous);
  if (settled.length)
    log.info(`${env.name} had drifted from its recorded release ${previous?.release ?? '(none)'}: ${settled.join('; ')}. This deploy settles it.`);
  return { previous, before, settled };
}

/** Runs one step; a failure carries its stage and the commit. */
export async function inStage<T>(stage: Stage, sha: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (e) {
    throw e instanceof DeployFailed ? e : new DeployFailed(stage, sha, e);
  }
}

/** The ref resolved to a commit, checked out detached. */
export async function checkOut(d: Deployment): Promise<string> {
  const { host, env, plan, log } = d;
  log.startGroup(`${env.name}: checkout ${plan.ref}`);
  try {
    const sha = await inStage('checkout', '', () => resolveRef(host, env, plan.ref));
    log.info(`${plan.ref} is ${sha}`);
    await inStage('checkout', sha, () => checkoutCommit(host, env, sha));
    return sha;
  } finally {
    log.endGroup();
  }
}

/** The isolation checks on the merged configuration of exactly this commit, before anything starts. */
export async function checkIsolation(d: Deployment, opened: Opened, sha: string): Promise<void> {
  const { host, env, log } = d;
  const { before } = opened;
  await inStage('isolation', sha, async () => {
    try {
      await isolationGate(host, d.config, log, `${env.name} at ${short(sha)}`);
    } catch (e) {
      // Nothing was started: the checkout goes back to what runs, so the refusal changes nothing.
      if (before.head && before.head !== sha)
        await checkoutCommit(host, env, before.head).catch((ce) =>
          log.warning(`could not put the checkout back at ${short(before.head)}: ${errorMessage(ce)}`),
        );
      throw e;
    }
  });
}

/** compose build and up, then every container healthy and the health URL answering. */
export async function startCommit(d: Deployment, sha: string): Promise<ContainerState[]> {
  const { host, config, env, log } = d;
  // prod with promote.release-dirs: started from the release's own directory, as promote and rollback do.
  await inStage('build and up', sha, async () => composeBuildAndUp(host, await releaseEnvironment(host, config, env, sha), d.plan.build, log));
  return inStage('health', sha, async () => {
    const containers = await waitHealthy(host, env, log);
    await probeHealthUrl(host, env, log);
    return containers;
  });
}

/** The images tagged with the new release id, the release recorded, old release tags pruned. */
async function recordDeploy(
  d: Deployment,
  { op, opened, sha, containers }: { op: Operation; opened: Opened; sha: string; containers: ContainerState[] },
): Promise<Deployed> {
  const { host, config, env, log } = d;
  const { previous, settled } = opened;
  return inStage('health', sha, async () => {
    const releaseId = newReleaseId(sha);
    const images = await tagRelease(host, env, releaseId, containers);
    const durationSeconds = Math.round((Date.now() - d.started) / 1000);
    await op.record('release', {
      release: releaseId,
      sha,
      kind: 'deploy',
      images,
      previous: previous?.release,
      durationSeconds,
      settled: settled.length ? settled : undefined,
    });
    await pruneOldReleases({ host, config, env, current: { release: releaseId, sha }, previous, log });
    return { releaseId, sha, previousReleaseId: previous?.release ?? '', durationSeconds, containers, settled };
  });
}

/** The record must never claim that the older release still runs: what runs now is written down. */
export async function recordFailedDeploy(d: Deployment, op: Operation, opened: Opened, e: unknown): Promise<DeployFailed> {
  const failed = e instanceof DeployFailed ? e : new DeployFailed('checkout', '', e);
  // What runs now is read for the record; a host that cannot be read leaves the record without it.
  const after = await observe(d.host, d.env).catch(ignored(d.log, `reading what ${d.env.name} runs after the failed deploy`));
  await op
    .record('release-failed', {
      sha: failed.sha || undefined,
      ref: d.plan.ref,
      stage: failed.stage,
      images: after?.images,
      head: after?.head,
      previous: opened.previous?.release,
      error: d.log.redact(errorMessage(failed.error)).slice(0, 500),
    })
    // The deploy's own error is the one reported; a record that cannot be written must not hide it.
    .catch(ignored(d.log, 'recording the failed deploy in the host log'));
  return new DeployFailed(failed.stage, failed.sha, failed.error, after ? drift(after, opened.previous) : []);
}

async function reportDeployed(io: ActionIO<DeployInputs, DeployOutputs>, env: Environment, result: Deployed): Promise<void> {
  io.output('release-id', result.releaseId);
  io.output('sha', result.sha);
  io.output('previous-release-id', result.previousReleaseId);
  io.output('duration-seconds', result.durationSeconds);
  const summary = new Summary()
    .heading(`Deploy to ${env.name}`)
    .text(`✅ **${env.name} runs release \`${result.releaseId}\`** (commit \`${short(result.sha)}\`), deployed in ${result.durationSeconds}s.`)
    .list([
      `previous release: ${result.previousReleaseId ? `\`${result.previousReleaseId}\`` : 'none'}`,
      // A swarm deploy's health is the engine's verdict; only compose's runbook probes the URL.
      env.onSwarm
        ? 'health: every service of the stack converged, its tasks running the release (healthy, where they have a healthcheck)'
        : `health: ${env.cfg.url}${env.cfg.healthPath} answered 2xx`,
      ...(result.settled.length
        ? [`before this deploy, ${env.name} had drifted from its record (${result.settled.join('; ')}); it now runs this release exactly`]
        : []),
    ]);
  servicesTable(summary, result.containers);
  await io.summary(summary.toMarkdown());
}

/** What failed, what the environment runs now, and what to do next. */
function failureSummary(env: Environment, e: unknown, failed: DeployFailed | undefined): Summary {
  const summary = new Summary().heading(`Deploy to ${env.name}`).text(`❌ **The deploy to ${env.name} failed**: ${errorMessage(e)}`);
  const sha = failed?.sha ?? '';
  if (e instanceof IsolationRefused) {
    summary.list([
      `Nothing was started: ${env.name} still runs what it ran before, and its checkout is back where it was.`,
      ...e.findings.map((f) => `${f.check}: ${f.message}. Fix: ${f.fix}`),
      `Next: fix the compose files or env file of this commit and push again (a check in preflight.warn-only only warns).`,
    ]);
  } else if (e instanceof SwarmDeployFailed) {
    summary.list(swarmFailureLines(env, e));
  } else if (e instanceof HealthError) {
    summary.list([
      `service \`${e.service}\` is ${e.state}`,
      `${env.name} now runs the new containers of ${sha ? `\`${short(sha)}\`` : 'the new commit'}, which are not healthy.`,
      `Next: fix and push again, or run the rollback workflow to return ${env.name} to its previous release.`,
    ]);
    if (e.logs) summary.detailsCode(`last log lines of ${e.service}`, e.logs);
  } else {
    summary.list([`Next: read the error above; the ${env.name} host log records this failed run.`]);
  }
  if (failed?.drift.length) {
    summary.list([
      `The failed deploy (stage: ${failed.stage}) is recorded; ${env.name} no longer runs its recorded release: ${failed.drift.join('; ')}.`,
      `gate and promote refuse ${env.name} until a deploy or a rollback settles it.`,
    ]);
  }
  return summary;
}
