/**
 * The logger every core module writes to. Under GitHub Actions it is backed by @actions/core
 * (see actions-io.ts); in tests and the sandbox by plain streams. Every implementation redacts
 * registered secrets before a line leaves the process, so masking does not depend on the runner.
 */

export interface Annotation {
  title?: string;
  file?: string;
  startLine?: number;
}

export interface Logger {
  info(message: string): void;
  /** A line a remote command printed: shown as text, never read as a workflow command. */
  output(line: string): void;
  warning(message: string, annotation?: Annotation): void;
  error(message: string, annotation?: Annotation): void;
  debug(message: string): void;
  startGroup(name: string): void;
  endGroup(): void;
  /** Registers a secret: it is masked by the runner and redacted from everything logged. */
  secret(value: string): void;
  redact(text: string): string;
}

const MIN_SECRET_LENGTH = 4;

/** Replaces every registered secret (and each line of a multi-line one) with ***. */
export class Redactor {
  private readonly values = new Set<string>();

  add(value: string): string[] {
    const added: string[] = [];
    const parts = [value, ...value.split(/\r?\n/)].map((v) => v.trim());
    for (const part of parts) {
      if (part.length >= MIN_SECRET_LENGTH && !this.values.has(part)) {
        this.values.add(part);
        added.push(part);
      }
    }
    return added;
  }

  redact(text: string): string {
    if (this.values.size === 0) return text;
    // Longest first, so a secret containing another is replaced whole.
    const sorted = [...this.values].sort((a, b) => b.length - a.length);
    let out = text;
    for (const v of sorted) out = out.split(v).join('***');
    return out;
  }
}

/** Writes to a pair of functions (console, a test's array); used by tests and the sandbox. */
export class StreamLogger implements Logger {
  protected readonly redactor = new Redactor();
  private depth = 0;

  constructor(
    private readonly write: (line: string) => void,
    private readonly showDebug = false,
  ) {}

  private emit(prefix: string, message: string): void {
    const indent = '  '.repeat(this.depth);
    for (const line of this.redactor.redact(message).split('\n')) this.write(`${indent}${prefix}${line}`);
  }

  output(line: string): void {
    this.info(line);
  }
  info(message: string): void {
    this.emit('', message);
  }
  warning(message: string, a?: Annotation): void {
    this.emit('warning: ', a?.file ? `${a.file}${a.startLine ? `:${a.startLine}` : ''}: ${message}` : message);
  }
  error(message: string, a?: Annotation): void {
    this.emit('error: ', a?.file ? `${a.file}${a.startLine ? `:${a.startLine}` : ''}: ${message}` : message);
  }
  debug(message: string): void {
    if (this.showDebug) this.emit('debug: ', message);
  }
  startGroup(name: string): void {
    this.emit('▸ ', name);
    this.depth++;
  }
  endGroup(): void {
    this.depth = Math.max(0, this.depth - 1);
  }
  secret(value: string): void {
    this.redactor.add(value);
  }
  redact(text: string): string {
    return this.redactor.redact(text);
  }
}

/** Keeps every line in memory; tests read `lines`. Debug lines are kept too, to prove they are redacted. */
export class MemoryLogger extends StreamLogger {
  readonly lines: string[] = [];
  constructor() {
    const lines: string[] = [];
    super((l) => lines.push(l), true);
    this.lines = lines;
  }
  get text(): string {
    return this.lines.join('\n');
  }
}

/**
 * A catch handler for a failure that must not stop the work around it (a best-effort read, a clean-up
 * after an error already reported): the failure is logged at debug with what was tried, never lost.
 */
export function ignored(log: Pick<Logger, 'debug'>, what: string): (e: unknown) => undefined;
/** The same, standing in `fallback` (an empty list, an empty map) for what could not be read. */
export function ignored<T>(log: Pick<Logger, 'debug'>, what: string, fallback: T): (e: unknown) => T;
export function ignored<T>(log: Pick<Logger, 'debug'>, what: string, fallback?: T): (e: unknown) => T | undefined {
  return (e: unknown) => {
    log.debug(`${what} failed (ignored): ${e instanceof Error ? e.message : String(e)}`);
    return fallback;
  };
}
