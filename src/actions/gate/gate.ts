/**
 * gate: is the commit on dev good enough for production? Under the dev lock, inside the dev api
 * container: alembic (exactly one head, upgrade head, check for model changes without a migration,
 * current equals head), then pytest with a JUnit report. Migrations run first because the tests
 * run against the migrated schema. The result is recorded for the sha in the dev host log, which
 * is what promote checks.
 */
import type { GateInputs, GateOutputs } from '../../../action-types';
import type { ActionDefinition } from '../runner';
import type { Config } from '../../domain/config';
import { Environment } from '../../domain/environment';
import { OperationFailed, RemoteCommandError, errorMessage, tailLines } from '../../infra/errors';
import type { Host } from '../../infra/host';
import { parseJUnit, type TestReport } from '../../infra/junit';
import { ignored, type Logger } from '../../infra/logger';
import { underLock } from '../../domain/operation';
import { currentRelease } from '../../domain/release';
import { drift, driftMessage, observe, shortId } from '../../domain/state';
import { alembicCheck, migrationPlan, upgradeHead } from '../../domain/alembic';
import { dockerExec, type ContainerRef } from '../../infra/docker';
import { short } from '../../infra/sha';
import { Summary } from '../../infra/summary';
import * as validate from '../../infra/validate';

interface Plan {
  sha?: string;
}

export interface AlembicResult {
  head: string;
  current: string;
  checkSupported: boolean;
  problems: string[];
}

export interface GateResult {
  sha: string;
  release: string;
  /** Service → image id of what the tests ran against. */
  images: Record<string, string>;
  alembic?: AlembicResult;
  tests?: TestReport;
  problems: string[];
}

function exec(container: ContainerRef, command: readonly string[]): string {
  return dockerExec(container, command);
}

/** alembic inside the container: one head, upgrade, check, current == head. */
export async function runAlembic({
  host,
  env,
  service,
  log,
  timeoutSeconds,
}: {
  host: Host;
  env: Environment;
  service: string;
  log: Logger;
  timeoutSeconds: number;
}): Promise<AlembicResult> {
  const result: AlembicResult = { head: '', current: '', checkSupported: true, problems: [] };
  const plan = await migrationPlan(host, env, timeoutSeconds, service);
  log.info(`alembic heads: ${plan.heads.join(', ') || 'none'}; current: ${plan.current || 'none'}`);
  if (plan.heads.length !== 1) {
    result.problems.push(
      plan.heads.length === 0
        ? 'alembic reports no head revision'
        : `alembic has ${plan.heads.length} heads (${plan.heads.join(', ')}): merge them with "alembic merge heads" and commit the merge migration`,
    );
    return result;
  }
  result.head = plan.heads[0];
  await upgradeHead(host, env, plan, timeoutSeconds);
  const check = await alembicCheck(host, env, plan, timeoutSeconds);
  if (check.exitCode !== 0) {
    if (/invalid choice: 'check'|No such command/i.test(check.stderr)) {
      result.checkSupported = false;
      log.warning(
        'alembic check is not available in this alembic (it came in 1.9): model changes without a migration are not detected; upgrade alembic in the api image',
      );
    } else {
      result.problems.push(`alembic check failed: ${tailLines(check.stderr || check.stdout, 3)}`);
    }
  }
  result.current = (await migrationPlan(host, env, timeoutSeconds, service)).current;
  if (result.current !== result.head) result.problems.push(`alembic current is ${result.current || 'empty'}, not the head ${result.head}`);
  return result;
}

/** pytest inside the container with a JUnit report, brought out and parsed. */
export async function runPytest({
  host,
  container,
  config,
  opId,
  timeoutSeconds,
}: {
  host: Host;
  /** dev's api container (on a swarm, possibly on another node, through its endpoint). */
  container: ContainerRef;
  config: Config;
  /** The operation's id, which names the JUnit report's file. */
  opId: string;
  timeoutSeconds: number;
}): Promise<{ report: TestReport; problems: string[] }> {
  const xml = `/tmp/twinstack-junit-${opId}.xml`;
  const cmd = [...config.gate['pytest-command'], `--junitxml=${xml}`, '-o', 'junit_family=xunit1', '-p', 'no:cacheprovider', ...config.gate['pytest-args']];
  const r = await host.run(exec(container, cmd), { label: 'pytest', timeoutSeconds, check: false });
  const problems: string[] = [];
  const out = await host.run(exec(container, ['sh', '-c', `cat ${xml} && rm -f ${xml}`]), { check: false, quiet: true, timeoutSeconds: 120 });
  if (out.exitCode !== 0 || !out.stdout.trim()) {
    throw new OperationFailed(`pytest exited with code ${r.exitCode} and wrote no JUnit report: ${tailLines(r.stderr || r.stdout, 3)}`);
  }
  const report = parseJUnit(out.stdout);
  if (r.exitCode === 5 || report.cases.length === 0) problems.push('pytest collected no tests');
  else if (r.exitCode !== 0 && report.failed === 0) problems.push(`pytest exited with code ${r.exitCode}: ${tailLines(r.stderr || r.stdout, 3)}`);
  if (report.failed > 0)
    problems.push(
      `${report.failed} test(s) failed: ${report.cases
        .filter((c) => c.result === 'failed' || c.result === 'error')
        .map((c) => c.id)
        .slice(0, 5)
        .join(', ')}`,
    );
  return { report, problems };
}

export function gateSummary(env: Environment, g: GateResult): Summary {
  const ok = g.problems.length === 0;
  const s = new Summary().heading(`Gate on ${env.name}`);
  s.text(
    `${ok ? '✅' : '❌'} **Commit \`${short(g.sha)}\` (release \`${g.release}\`) ${ok ? 'passed' : 'did not pass'} the gate.** ${ok ? 'It can be promoted to prod as long as dev keeps running exactly these images.' : 'Promote will refuse it.'}`,
  );
  const tested = Object.entries(g.images);
  if (tested.length) s.list([`tested images: ${tested.map(([svc, id]) => `${svc} \`${shortId(id)}\``).join(', ')}`]);
  if (!ok) s.list(g.problems);
  if (g.tests) {
    s.table(
      ['passed', 'failed', 'skipped', 'total'],
      [[String(g.tests.passed), String(g.tests.failed), String(g.tests.skipped), String(g.tests.cases.length)]],
    );
    const failed = g.tests.cases.filter((c) => c.result === 'failed' || c.result === 'error');
    if (failed.length)
      s.table(
        ['failed test', 'where', 'message'],
        failed.map((c) => [c.id, c.file ? `${c.file}${c.line ? `:${c.line}` : ''}` : '', c.message ?? '']),
      );
    const slowest = [...g.tests.cases].sort((a, b) => b.seconds - a.seconds).slice(0, 5);
    s.table(
      ['slowest tests', 'seconds'],
      slowest.map((c) => [c.id, c.seconds.toFixed(2)]),
    );
  }
  if (g.alembic) {
    s.list([
      `alembic head: \`${g.alembic.head || '?'}\`, current: \`${g.alembic.current || '?'}\``,
      g.alembic.checkSupported ? 'alembic check: run' : 'alembic check: not available in this alembic (needs 1.9 or later); skipped',
    ]);
  }
  return s;
}

/** What the gate runs, in dev's api: the migrations (when gate.alembic), then pytest if they passed; a failure is a problem of the result. */
async function testRelease(
  c: { host: Host; env: Environment; config: Config; log: Logger; service: string; timeoutSeconds: number; opId: string },
  g: GateResult,
): Promise<void> {
  const { host, env, config, log, service, timeoutSeconds } = c;
  try {
    if (config.gate.alembic) {
      log.startGroup('alembic');
      try {
        g.alembic = await runAlembic({ host, env, service, log, timeoutSeconds });
        g.problems.push(...g.alembic.problems);
      } finally {
        log.endGroup();
      }
    }
    if (g.problems.length === 0) {
      log.startGroup('pytest');
      try {
        const container = await env.serviceContainer(host, service);
        const t = await runPytest({ host, container, config, opId: c.opId, timeoutSeconds });
        g.tests = t.report;
        g.problems.push(...t.problems);
      } finally {
        log.endGroup();
      }
    } else {
      log.info('pytest skipped: the migrations did not pass');
    }
  } catch (e) {
    g.problems.push(e instanceof RemoteCommandError || e instanceof OperationFailed ? e.message : errorMessage(e));
  }
}

export const gateAction: ActionDefinition<GateInputs, GateOutputs, Plan> = {
  name: 'gate',
  prepare({ io }) {
    const sha = io.input('sha');
    return { sha: sha ? validate.sha(sha, 'input sha') : undefined };
  },

  async execute({ host, config, plan, io, log, run, lockTimeoutSeconds }) {
    const env = new Environment('dev', config);
    const service = config.gate.service ?? env.cfg.apiService;
    const timeoutSeconds = config.gate['timeout-seconds'];
    const result = await underLock(
      {
        host,
        stateDir: config['state-dir'],
        env: env.name,
        ...env.workScope,
        action: 'gate',
        sha: plan.sha,
        run,
        log,
        lockTimeoutSeconds,
      },
      async (op): Promise<GateResult> => {
        const release = currentRelease(op.records);
        if (!release) throw new OperationFailed('dev has no release recorded: deploy dev first');
        // The gate judges what runs, and only when it is exactly the release on record.
        const observed = await observe(host, env);
        const drifted = drift(observed, release);
        if (drifted.length) {
          throw new OperationFailed(
            `${driftMessage('dev', release, drifted)} ` +
              `Nothing was tested. Settle it with a deploy of dev (ref ${plan.sha ?? 'the commit to test'}) or a rollback of dev, then run the gate again.`,
          );
        }
        if (plan.sha && plan.sha !== release.sha) {
          throw new OperationFailed(`dev runs ${short(release.sha)} (release ${release.release}), not the requested ${short(plan.sha)}: deploy it first`);
        }
        const g: GateResult = { sha: release.sha, release: release.release, problems: [], images: observed.images };
        await testRelease({ host, env, config, log, service, timeoutSeconds, opId: op.id }, g);
        // What was tested: the commit and the image ids (the api's first), read again after the tests.
        const after = await observe(host, env).catch(ignored(log, 'reading dev again after the tests'));
        if (after && (after.head !== g.sha || after.images[service] !== g.images[service])) {
          g.problems.push(
            `dev changed while the gate ran (checkout ${short(after.head)}, ${service} image ${after.images[service] ?? 'none'}): the result cannot be bound to one release`,
          );
        }
        await op.record('gate', {
          sha: g.sha,
          release: g.release,
          apiImage: g.images[service],
          images: g.images,
          passed: g.problems.length === 0,
          tests: g.tests ? { passed: g.tests.passed, failed: g.tests.failed, skipped: g.tests.skipped } : undefined,
          alembicHead: g.alembic?.head,
          problems: g.problems,
        });
        return g;
      },
    );
    for (const c of result.tests?.cases ?? []) {
      if (c.result === 'failed' || c.result === 'error')
        log.error(c.message ?? `${c.id} failed`, { title: `test failed: ${c.id}`, file: c.file, startLine: c.line });
    }
    io.output('passed', result.tests?.passed ?? 0);
    io.output('failed', result.tests?.failed ?? 0);
    io.output('skipped', result.tests?.skipped ?? 0);
    io.output('alembic-head', result.alembic?.head ?? '');
    io.output('sha', result.sha);
    await io.summary(gateSummary(env, result).toMarkdown());
    if (result.problems.length) throw new OperationFailed(`commit ${short(result.sha)} did not pass: ${result.problems.join('; ')}`);
  },
};
