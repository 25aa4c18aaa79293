/**
 * Runs an action's prepare and execute against a fake host, as src/actions/runner.ts runs them
 * against the real one: inputs from a map, outputs and the job summary kept, the failure line as
 * the runner would print it.
 */
import type { ActionDefinition, ConnectionInputs, Prepared } from '../../src/actions/runner';
import { failureLine } from '../../src/actions/runner';
import { ActionIO, type RunInfo } from '../../src/infra/actions-io';
import { MemoryLogger } from '../../src/infra/logger';
import type { Config } from '../../src/domain/config';
import type { Host } from '../../src/infra/host';
import type { FakeVps } from './fake-vps';
import { withDefaults } from '../harness/action-defaults';

class FakeIO<I, O> extends ActionIO<I, O> {
  readonly outputs: Record<string, string> = {};
  summaryText = '';
  failed = '';
  constructor(
    log: MemoryLogger,
    private readonly inputs: Record<string, string>,
  ) {
    super(log);
  }
  override input(name: keyof I & string): string {
    return (this.inputs[name] ?? '').trim();
  }
  override secret(name: keyof I & string): string {
    return this.inputs[name] ?? '';
  }
  override output(name: keyof O & string, value: string | number | boolean): void {
    this.outputs[name] = String(value);
  }
  override summary(markdown: string): Promise<void> {
    this.summaryText += markdown;
    return Promise.resolve();
  }
  override fail(message: string): void {
    this.failed = message;
  }
}

export interface ActionRun {
  outputs: Record<string, string>;
  summary: string;
  /** The error the action ended with (undefined: it succeeded). */
  error?: unknown;
  /** The line the runner would fail the step with ('' on success). */
  failure: string;
  log: MemoryLogger;
}

export const RUN: RunInfo = { url: 'https://github.com/makapix/makapix/actions/runs/1', actor: 'carol', sha: '', workflow: 'test' };

/** Runs an action on the fake VPS, or on any host with its config (a real sshd in the integration tests). */
export async function runOnFake<I extends ConnectionInputs, O, P>(
  def: ActionDefinition<I, O, P>,
  vps: Pick<FakeVps, 'config' | 'host'> | { config: Config; host: Host },
  inputs: Record<string, string> = {},
  run: RunInfo = RUN,
): Promise<ActionRun> {
  const log = new MemoryLogger();
  const io = new FakeIO<I, O>(log, withDefaults(def.name, inputs));
  const prepared: Prepared<I, O> = { io, log, config: vps.config, run, lockTimeoutSeconds: 5 };
  let error: unknown;
  try {
    const plan = await def.prepare(prepared);
    await def.execute({ ...prepared, plan, host: vps.host });
  } catch (e) {
    error = e;
  }
  return { outputs: io.outputs, summary: io.summaryText, error, failure: error === undefined ? '' : failureLine(def.name, error), log };
}
