/**
 * resample: dev gets a fresh, anonymized, referentially complete sample of production.
 * The steps (plan, staging, stream, checks, swap or swap back) are in src/resample/engine.ts;
 * this file reads the inputs and reports.
 */
import type { ResampleInputs, ResampleOutputs } from '../../../action-types';
import type { ActionDefinition, Prepared } from '../runner';
import { ConfigurationError, errorMessage } from '../../infra/errors';
import { boolean, printable } from '../../infra/validate';
import { ResampleFailed, resample, type ResampleParams } from '../../resample/engine';
import { planLines, resampleSummary } from '../../resample/report';
import { readCatalog } from '../../resample/catalog';
import { initSample } from '../../resample/init';
import { productionReader } from '../../resample/reader';
import { SwapBackFailed } from '../../resample/swap';
import { IsolationRefused, isolationGate } from '../../safety/preflight';

export function readParams(ctx: Prepared<ResampleInputs, ResampleOutputs>): ResampleParams {
  const { io } = ctx;
  const params: ResampleParams = { dryRun: boolean(io.defaulted('dry-run'), 'input dry-run') };
  if (boolean(io.defaulted('init'), 'input init')) params.init = true;
  const fraction = io.input('fraction');
  if (fraction) {
    if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(fraction))
      throw new ConfigurationError(`input fraction "${printable(fraction)}" must be a number from 0 to 1, such as 0.1`);
    params.fraction = Number(fraction);
  }
  const seed = io.input('seed');
  if (seed) {
    if (seed.length > 200 || /[\0\n]/.test(seed)) throw new ConfigurationError('input seed must be one line of at most 200 characters');
    params.seed = seed;
  }
  const password = io.secret('dev-password');
  if (password) params.devPassword = password;
  const maskKey = io.secret('mask-key');
  if (maskKey) params.maskKey = maskKey;
  return params;
}

export const resampleAction: ActionDefinition<ResampleInputs, ResampleOutputs, ResampleParams> = {
  name: 'resample',
  prepare: readParams,
  async execute(ctx) {
    const { log, io } = ctx;
    io.output('url', ctx.config.environments.dev.url);
    if (ctx.plan.init) {
      // Reads production's catalog only: no lock, no staging, dev untouched.
      const { yaml } = initSample(await readCatalog(ctx.host, await productionReader(ctx.host, ctx.config, ctx.log)), ctx.config.sample);
      for (const line of yaml.trimEnd().split('\n')) log.info(line);
      io.output('sample-config', yaml);
      io.output('swapped', false);
      await io.summary(
        `## Resample init: a starter sample section\n\nNothing ran and nothing changed. Paste this into the config file, review each line marked "keep only if", then run resample with dry-run: true.\n\n\`\`\`\`yaml\n${yaml}\`\`\`\`\n`,
      );
      return;
    }
    try {
      // Production's data goes into dev only while the two are kept apart (dev's running
      // configuration, as the isolation checks see it). A dry run changes nothing and skips it.
      if (!ctx.plan.dryRun) await isolationGate(ctx.host, ctx.config, log, 'dev before it receives production data');
      const report = await resample(ctx, ctx.plan);
      if (report.dryRun) for (const line of planLines(report)) log.info(line);
      else log.info(`Dev now runs on the sample: ${report.rowsCopied} rows, ${report.sshBytes.sent + report.sshBytes.received} bytes over SSH.`);
      io.output('rows-copied', report.rowsCopied || report.tables.reduce((a, t) => a + t.copied, 0));
      io.output('swapped', report.swapped);
      io.output('report', JSON.stringify({ ...report, plan: undefined }));
      await io.summary(resampleSummary(report, { ok: true }).toMarkdown());
    } catch (e) {
      if (e instanceof IsolationRefused) {
        io.output('swapped', false);
        await io.summary(
          `## Resample refused\n\n**❌ ${errorMessage(e)}**\n\nNothing was read from production and dev is unchanged. Fix the findings (the preflight step lists them all), then run again.\n`,
        );
        throw e;
      }
      if (e instanceof ResampleFailed) {
        io.output('swapped', false);
        io.output('report', JSON.stringify({ ...e.report, plan: undefined }));
        await io.summary(resampleSummary(e.report, { ok: false, error: e.message }).toMarkdown());
        throw e;
      }
      if (e instanceof ConfigurationError) throw e;
      io.output('swapped', false);
      if (e instanceof SwapBackFailed) {
        await io.summary(
          `## Resample failed, and dev's database could not be put back\n\n**❌ ${errorMessage(e)}**\n\nDev's services may be stopped. Run resample again (it restores dev's own database before anything else), or rename the database by hand.\n`,
        );
      } else {
        await io.summary(
          `## Resample failed\n\n**❌ ${errorMessage(e)}**\n\nDev keeps its previous database (a failure after the swap began is undone). Run resample again once the cause is fixed.\n`,
        );
      }
      throw e;
    }
  },
};
