/**
 * A recording fake of the Host interface, for the orchestration tests: it answers the commands a
 * test scripted (rules: a pattern or predicate on the script → stdout, stderr, exit code), records
 * every command in the order it ran, and refuses any command no rule answers, so a test notices a
 * new remote call instead of passing over it. Files written with writeFile are kept in memory and
 * read back by readFile.
 *
 * It answers "which branch does this decision take"; whether a command does what it should on a
 * real host is proven by the integration and end-to-end suites.
 */
import { RemoteCommandError } from '../../src/infra/errors';
import type { CommandResult, Fence, Forward, Host, RemoteProcess, RunOptions, Traffic } from '../../src/infra/host';
import { cleanupScope } from '../../src/infra/host';

export interface Reply {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  timedOut?: boolean;
}

/** One command as the action asked for it. */
export interface Call {
  kind: 'run' | 'spawn';
  script: string;
  label?: string;
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  /** The rule that answered it ('' when none did). */
  rule: string;
  /** What the fake answered. */
  result: CommandResult;
  /** The fence the command ran under (its operation id), when one was set. */
  fencedBy?: string;
}

export type Matcher = RegExp | ((script: string, call: Call) => boolean);
export type Responder = Reply | ((call: Call, match: RegExpMatchArray | null) => Reply);

interface Rule {
  name: string;
  match: Matcher;
  reply: Responder;
  /** How many more times it answers (undefined: every time). */
  times?: number;
}

/** Thrown (and recorded) for a command that no rule answers. */
export class UnscriptedCommand extends Error {
  override name = 'UnscriptedCommand';
}

export class FakeHost implements Host {
  readonly name = 'fake-vps';
  deadline?: number;
  /** Every command, in the order it ran. */
  readonly calls: Call[] = [];
  /** Commands no rule answered (each was refused with an UnscriptedCommand error). */
  readonly unscripted: Call[] = [];
  /** The host's files, as writeFile left them or a test put them. */
  readonly files = new Map<string, Buffer>();
  private rules: Rule[] = [];
  private fences: Fence[] = [];
  private halted = false;
  closed = false;

  /**
   * Answers commands that match: the newest rule that matches wins, so a test adds the branch it
   * wants over a baseline. `times` limits how often it answers (then older rules answer again).
   */
  on(name: string, match: Matcher, reply: Responder, times?: number): this {
    this.rules.unshift({ name, match, reply, times });
    return this;
  }

  /** The recorded scripts, in order (optionally only those matching). */
  scripts(filter?: RegExp): string[] {
    return this.calls.map((c) => c.script).filter((s) => !filter || filter.test(s));
  }

  /** The recorded calls answered by the rule of that name. */
  ran(rule: string): Call[] {
    return this.calls.filter((c) => c.rule === rule);
  }

  /** Index of the first recorded call whose script matches, at or after `from` (-1: none). */
  indexOf(script: RegExp, from = 0): number {
    return this.calls.findIndex((c, i) => i >= from && script.test(c.script));
  }

  /** Index of the last recorded call whose script matches (-1: none). */
  lastIndexOf(script: RegExp): number {
    for (let i = this.calls.length - 1; i >= 0; i--) if (script.test(this.calls[i].script)) return i;
    return -1;
  }

  /** Fails naming every command that no rule answered. */
  assertAllScripted(): void {
    if (this.unscripted.length)
      throw new Error(`unscripted command(s):\n${this.unscripted.map((c) => `- ${c.label ?? ''}\n  ${c.script.slice(0, 600)}`).join('\n')}`);
  }

  halt(): void {
    this.halted = true;
  }

  addFence(fence: Fence): () => void {
    this.fences = [...this.fences, fence];
    return () => {
      this.fences = this.fences.filter((f) => f !== fence);
    };
  }

  private answer(kind: Call['kind'], script: string, options: RunOptions): Call {
    if (this.closed) throw new Error('the fake host is closed');
    if (this.halted && !cleanupScope.getStore()) throw new Error('the host is halted: no new command starts');
    const stdin = options.stdin === undefined ? undefined : options.stdin.toString();
    const call: Call = {
      kind,
      script,
      label: options.label,
      cwd: options.cwd,
      env: options.env,
      stdin,
      rule: '',
      result: { command: script, exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, durationMs: 0 },
      fencedBy: this.fences.at(-1)?.op,
    };
    this.calls.push(call);
    for (const rule of this.rules) {
      if (rule.times !== undefined && rule.times <= 0) continue;
      let m: RegExpMatchArray | null = null;
      if (rule.match instanceof RegExp) {
        m = script.match(rule.match);
        if (!m) continue;
      } else if (!rule.match(script, call)) continue;
      if (rule.times !== undefined) rule.times--;
      call.rule = rule.name;
      const r = typeof rule.reply === 'function' ? rule.reply(call, m) : rule.reply;
      call.result = { ...call.result, stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode: r.exitCode ?? 0, timedOut: r.timedOut ?? false };
      return call;
    }
    this.unscripted.push(call);
    throw new UnscriptedCommand(`the fake host has no rule for: ${options.label ?? ''} ${script.slice(0, 300)}`);
  }

  // eslint-disable-next-line @typescript-eslint/require-await -- async so a refused command rejects, as the real one does
  async run(script: string, options: RunOptions = {}): Promise<CommandResult> {
    const r = this.answer('run', script, options).result;
    if (r.stdout) options.onStdout?.(Buffer.from(r.stdout));
    if ((options.check ?? true) && r.exitCode !== 0) throw new RemoteCommandError({ ...r, command: script, label: options.label });
    return r;
  }

  /**
   * A process whose whole output is known when it starts: waitForLine finds the marker in the
   * scripted stdout, or fails as the real one does when the process exits without it.
   */
  spawn(script: string, options: Omit<RunOptions, 'stdin' | 'check'> = {}): RemoteProcess {
    const call = this.answer('spawn', script, options);
    const r = call.result;
    if (r.stdout) options.onStdout?.(Buffer.from(r.stdout));
    const exited = Promise.resolve(r);
    const failed = () => new RemoteCommandError({ ...r, command: script, label: options.label });
    return {
      waitForLine: (marker) => {
        const line = r.stdout.split('\n').find((l) => (typeof marker === 'string' ? l === marker : marker.test(l)));
        return line !== undefined ? Promise.resolve(line) : Promise.reject(failed());
      },
      write: (data) => {
        call.stdin = (call.stdin ?? '') + data.toString();
        return Promise.resolve();
      },
      end: () => exited,
      exited,
    };
  }

  writeFile(path: string, content: string | Buffer): Promise<void> {
    this.calls.push({
      kind: 'run',
      script: `# writeFile ${path}`,
      rule: 'writeFile',
      result: { command: '', exitCode: 0, signal: null, stdout: '', stderr: '', timedOut: false, durationMs: 0 },
    });
    this.files.set(path, Buffer.from(content));
    return Promise.resolve();
  }

  readFile(path: string): Promise<Buffer> {
    const f = this.files.get(path);
    if (!f)
      return Promise.reject(new RemoteCommandError({ command: `cat ${path}`, exitCode: 1, signal: null, stderr: `cat: ${path}: No such file or directory` }));
    return Promise.resolve(f);
  }

  forward(): Promise<Forward> {
    return Promise.reject(new UnscriptedCommand('the fake host forwards no port'));
  }

  traffic(): Traffic {
    return { received: 0, sent: 0 };
  }

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

/** The words of a script as sh would split them, for the simple quoting src/infra/shell.ts writes. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      cur += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}
