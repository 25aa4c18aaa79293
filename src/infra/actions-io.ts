/**
 * The adapter for @actions/core and @actions/github: inputs, outputs, masking, the job summary,
 * and the run's identity. Nothing else in twinstack imports the toolkit.
 */
import { randomBytes } from 'node:crypto';
import * as core from '@actions/core';
import * as github from '@actions/github';
import { ConfigurationError } from './errors';
import { Redactor, type Annotation, type Logger } from './logger';

export class ActionsLogger implements Logger {
  private readonly redactor = new Redactor();
  info(message: string): void {
    core.info(this.redactor.redact(message));
  }
  output(line: string): void {
    const text = this.redactor.redact(line);
    if (!text.includes('::')) return core.info(text);
    // Remote output could carry workflow commands (::error, ::add-mask, ::stop-commands itself):
    // the runner ignores every command between stop-commands and its token, unguessable per line.
    const token = randomBytes(16).toString('hex');
    core.info(`::stop-commands::${token}`);
    core.info(text);
    core.info(`::${token}::`);
  }
  warning(message: string, a?: Annotation): void {
    core.warning(this.redactor.redact(message), a);
  }
  error(message: string, a?: Annotation): void {
    core.error(this.redactor.redact(message), a);
  }
  debug(message: string): void {
    core.debug(this.redactor.redact(message));
  }
  startGroup(name: string): void {
    core.startGroup(this.redactor.redact(name));
  }
  endGroup(): void {
    core.endGroup();
  }
  secret(value: string): void {
    for (const part of this.redactor.add(value)) core.setSecret(part);
  }
  redact(text: string): string {
    return this.redactor.redact(text);
  }
}

/** Who is running: recorded with every lock and host log entry. */
export interface RunInfo {
  url: string;
  actor: string;
  sha: string;
  workflow: string;
}

export function runInfo(): RunInfo {
  const ctx = github.context;
  const server = process.env.GITHUB_SERVER_URL || 'https://github.com';
  const repo = process.env.GITHUB_REPOSITORY || '';
  const url = repo && ctx.runId ? `${server}/${repo}/actions/runs/${ctx.runId}` : `local run ${process.pid}`;
  return { url, actor: ctx.actor || process.env.USER || 'unknown', sha: ctx.sha || '', workflow: ctx.workflow || '' };
}

/** Inputs and outputs typed by the action's generated interfaces (action-types.d.ts). */
export class ActionIO<I, O> {
  constructor(readonly log: Logger) {}

  /** An input's value, trimmed; '' when not given. */
  input(name: keyof I & string): string {
    return core.getInput(name, { trimWhitespace: true });
  }

  /**
   * An input whose default is written in action.yml, and only there: the runner passes that default
   * when a workflow leaves the input out, so it is empty only when a workflow passed '' (an unset
   * secret or variable, say). That is refused rather than read as some default of the code's own.
   */
  defaulted(name: keyof I & string): string {
    const v = this.input(name);
    if (!v) throw new ConfigurationError(`input ${name} is empty: give it a value, or leave it out of the step's with: to use its default (action.yml)`);
    return v;
  }

  required(name: keyof I & string, hint = ''): string {
    const v = this.input(name);
    if (!v) throw new ConfigurationError(`input ${name} is required${hint ? `: ${hint}` : ''}`);
    return v;
  }

  /** Reads an input that is a secret and masks it before anything else happens. */
  secret(name: keyof I & string, required = false, hint = ''): string {
    const v = core.getInput(name, { trimWhitespace: false });
    if (v) this.log.secret(v);
    if (required && !v.trim()) throw new ConfigurationError(`input ${name} is required${hint ? `: ${hint}` : ''}`);
    return v;
  }

  output(name: keyof O & string, value: string | number | boolean): void {
    core.setOutput(name, String(value));
  }

  async summary(markdown: string): Promise<void> {
    const text = this.log.redact(markdown);
    if (process.env.GITHUB_STEP_SUMMARY) {
      await core.summary.addRaw(text).write();
    } else {
      // Outside a runner (the sandbox, tests): print it.
      process.stdout.write(`\n${text}\n`);
    }
  }

  fail(message: string): void {
    core.setFailed(this.log.redact(message));
  }
}
