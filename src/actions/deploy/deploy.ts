/**
 * deploy: put one environment on exactly one commit. Under the environment's lock:
 * fetch and check out the commit (detached) → compose build → up -d → wait for healthchecks →
 * probe the health URL → tag the images with the release id and record the release → prune old tags.
 * A failure after `up` leaves the environment on the new, unhealthy containers; the summary says so
 * and names the rollback to run.
 */
import type { DeployInputs, DeployOutputs } from '../../../action-types';
import type { ActionDefinition } from '../../domain/action';
import type { EnvironmentName } from '../../domain/config';
import { Environment, type ContainerState } from '../../domain/environment';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import { checkoutCommit, releaseEnvironment, resolveRef } from '../../domain/git';
import { underLock } from '../../domain/operation';
import { drift, observe } from '../../domain/state';
import { HealthError, composeBuildAndUp, currentRelease, newReleaseId, probeHealthUrl, pruneOldReleases, tagRelease, waitHealthy } from '../../domain/release';
import { Summary } from '../../infra/summary';
import { IsolationRefused, isolationGate } from '../../safety/preflight';
import * as validate from '../../infra/validate';
import { environmentInput, servicesTable } from '../common';

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
    const build = validate.boolean(io.input('build') || 'true', 'input build');
    return { environment, ref, build };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const env = new Environment(plan.environment, config);
    io.output('url', env.cfg.url);
    const started = Date.now();
    const summary = new Summary().heading(`Deploy to ${env.name}`);
    let sha = '';
    let settled: string[] = [];
    let failedAt: { stage: string; drift: string[] } | undefined;
    try {
      const result = await underLock(
        { host, stateDir: config['state-dir'], env: env.name, project: env.cfg.project, action: 'deploy', run, log, lockTimeoutSeconds },
        async (op): Promise<DeployResult> => {
          const previous = currentRelease(op.records);
          // Start from what runs, not from the record: a deploy settles any drift.
          const before = await observe(host, env);
          settled = drift(before, previous);
          if (settled.length)
            log.info(`${env.name} had drifted from its recorded release ${previous?.release ?? '(none)'}: ${settled.join('; ')}. This deploy settles it.`);

          let stage: 'checkout' | 'isolation' | 'build and up' | 'health' = 'checkout';
          try {
            log.startGroup(`${env.name}: checkout ${plan.ref}`);
            try {
              sha = await resolveRef(host, env, plan.ref);
              log.info(`${plan.ref} is ${sha}`);
              await checkoutCommit(host, env, sha);
            } finally {
              log.endGroup();
            }

            // The isolation checks on the merged configuration of exactly this commit, before anything starts.
            stage = 'isolation';
            try {
              await isolationGate(host, config, log, `${env.name} at ${sha.slice(0, 12)}`);
            } catch (e) {
              // Nothing was started: the checkout goes back to what runs, so the refusal changes nothing.
              if (before.head && before.head !== sha)
                await checkoutCommit(host, env, before.head).catch((ce) =>
                  log.warning(`could not put the checkout back at ${before.head.slice(0, 12)}: ${errorMessage(ce)}`),
                );
              throw e;
            }

            stage = 'build and up';
            // prod with promote.release-dirs: started from the release's own directory, as promote and rollback do.
            await composeBuildAndUp(host, await releaseEnvironment(host, config, env, sha), plan.build, log);
            stage = 'health';
            const containers = await waitHealthy(host, env, log);
            await probeHealthUrl(host, env, log);

            const releaseId = newReleaseId(sha);
            const images = await tagRelease(host, env, releaseId, containers);
            const durationSeconds = Math.round((Date.now() - started) / 1000);
            await op.record('release', {
              release: releaseId,
              sha,
              kind: 'deploy',
              images,
              previous: previous?.release,
              durationSeconds,
              settled: settled.length ? settled : undefined,
            });
            await pruneOldReleases(host, config, env, { release: releaseId, sha }, previous, log);
            return { releaseId, sha, previousReleaseId: previous?.release ?? '', durationSeconds, containers };
          } catch (e) {
            // The record must never claim that the older release still runs: what runs now is written down.
            const after = await observe(host, env).catch(() => undefined);
            failedAt = { stage, drift: after ? drift(after, previous) : [] };
            await op
              .record('release-failed', {
                sha: sha || undefined,
                ref: plan.ref,
                stage,
                images: after?.images,
                head: after?.head,
                previous: previous?.release,
                error: log.redact(errorMessage(e)).slice(0, 500),
              })
              .catch(() => undefined);
            throw e;
          }
        },
      );
      io.output('release-id', result.releaseId);
      io.output('sha', result.sha);
      io.output('previous-release-id', result.previousReleaseId);
      io.output('duration-seconds', result.durationSeconds);
      summary
        .text(`✅ **${env.name} runs release \`${result.releaseId}\`** (commit \`${result.sha.slice(0, 12)}\`), deployed in ${result.durationSeconds}s.`)
        .list([
          `previous release: ${result.previousReleaseId ? `\`${result.previousReleaseId}\`` : 'none'}`,
          `health: ${env.cfg.url}${env.cfg.healthPath} answered 2xx`,
          ...(settled.length ? [`before this deploy, ${env.name} had drifted from its record (${settled.join('; ')}); it now runs this release exactly`] : []),
        ]);
      servicesTable(summary, result.containers);
    } catch (e) {
      summary.text(`❌ **The deploy to ${env.name} failed**: ${errorMessage(e)}`);
      if (e instanceof IsolationRefused) {
        summary.list([
          `Nothing was started: ${env.name} still runs what it ran before, and its checkout is back where it was.`,
          ...e.findings.map((f) => `${f.check}: ${f.message}. Fix: ${f.fix}`),
          `Next: fix the compose files or env file of this commit and push again (a check in preflight.warn-only only warns).`,
        ]);
      } else if (e instanceof HealthError) {
        summary.list([
          `service \`${e.service}\` is ${e.state}`,
          `${env.name} now runs the new containers of ${sha ? `\`${sha.slice(0, 12)}\`` : 'the new commit'}, which are not healthy.`,
          `Next: fix and push again, or run the rollback workflow to return ${env.name} to its previous release.`,
        ]);
        if (e.logs) summary.detailsCode(`last log lines of ${e.service}`, e.logs);
      } else {
        summary.list([`Next: read the error above; the ${env.name} host log records this failed run.`]);
      }
      if (failedAt?.drift.length) {
        summary.list([
          `The failed deploy (stage: ${failedAt.stage}) is recorded; ${env.name} no longer runs its recorded release: ${failedAt.drift.join('; ')}.`,
          `gate and promote refuse ${env.name} until a deploy or a rollback settles it.`,
        ]);
      }
      await io.summary(summary.toMarkdown());
      throw e;
    }
    await io.summary(summary.toMarkdown());
  },
};
