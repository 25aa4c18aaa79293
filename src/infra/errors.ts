/** A failure the user can fix by changing an input, the config file or the host's setup. */
export class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

/** How a command on the host ended; a CommandResult is one (`new RemoteCommandError({ ...r, label })`). */
export interface RemoteFailure {
  command: string;
  exitCode: number | null;
  signal: string | null;
  stdout?: string;
  stderr: string;
  timedOut?: boolean;
  /** What the command was for, shown instead of the command line. */
  label?: string;
}

/** A command on the host exited non-zero (or was killed). Carries what an operator needs to see. */
export class RemoteCommandError extends Error {
  override name = 'RemoteCommandError';
  readonly command: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  /** The command's stderr, with the row values PostgreSQL quotes taken out (scrubRowValues). */
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly label?: string;

  constructor(f: RemoteFailure) {
    const failure = { ...f, stderr: scrubRowValues(f.stderr) };
    super(RemoteCommandError.describe(failure));
    this.command = f.command;
    this.exitCode = f.exitCode;
    this.signal = f.signal;
    this.stdout = f.stdout ?? '';
    this.stderr = failure.stderr;
    this.timedOut = f.timedOut ?? false;
    this.label = f.label;
  }

  static describe({ command, exitCode, signal, stderr, timedOut, label }: RemoteFailure): string {
    const what = label ?? shorten(command, 200);
    const how = timedOut
      ? 'timed out and was killed'
      : signal
        ? `was killed by ${signal}`
        : exitCode === null
          ? 'ended without an exit status (sshd or the connection closed it)'
          : `exited with code ${exitCode}`;
    // stderr is scrubbed already (the constructor): a second scrub could only cut more.
    const tail = lastLines(stderr, 5);
    return `${what} ${how}${tail ? `: ${tail}` : ''}`;
  }
}

/** Where PostgreSQL quotes a value in an error, and how the quote ends. */
interface ValueQuote {
  start: RegExp;
  end: RegExp;
  /** The text that replaces the whole quote; `end` is the quote's own end when the cut stops there. */
  shown: (start: RegExpExecArray, end: RegExpExecArray | undefined) => string;
}

const AT_LINE_END = '(?=[ \\t\\r]*(?:\\n|$))';
const ROW_END = new RegExp(`\\)\\.?${AT_LINE_END}`, 'g');
const QUOTE_END = new RegExp(`"${AT_LINE_END}`, 'g');

const VALUE_QUOTES: ValueQuote[] = [
  {
    start: /Failing row contains \(/g,
    end: ROW_END,
    shown: () => 'Failing row contains (values not shown; find the row on the host with the constraint named above).',
  },
  {
    start: /Partition key of the failing row contains \(([^\n]*?)\) = \(/g,
    end: ROW_END,
    shown: (s) => `Partition key of the failing row contains (${s[1]}) = (values not shown).`,
  },
  // The key may be an expression (lower(email)); "is duplicated" comes from building a unique index.
  {
    start: /Key \(([^\n]*?)\)=\(/g,
    end: /\)( already exists| is duplicated| is not present in table| is still referenced from table| conflicts with)/g,
    shown: (s, e) => `Key (${s[1]})=(values not shown)${e?.[1] ?? ''}`,
  },
  // An exclusion constraint quotes the existing row's key too.
  {
    start: /(?<=conflicts with (?:existing )?)key \(([^\n]*?)\)=\(/g,
    end: ROW_END,
    shown: (s) => `key (${s[1]})=(values not shown).`,
  },
  {
    start: /(COPY [^,\n]+, line \d+)(, column [^:\n]+)?: "/g,
    end: QUOTE_END,
    shown: (s) => `${s[1]}${s[2] ?? ''} (line content not shown)`,
  },
  {
    start: /(invalid input (?:syntax|value) for [^:\n]+): "/g,
    end: QUOTE_END,
    shown: (s) => `${s[1]} (value not shown)`,
  },
];

/**
 * PostgreSQL quotes row values in its errors ("Failing row contains (...)", "Key (email)=(...)",
 * a COPY's failing line). An error goes to the job log, the summary and the host log, which may be
 * public: the values are replaced by where to look, and the table, constraint and line stay.
 *
 * A value may hold newlines and anything else, a fake end of the quote or the start of another one
 * included, so this runs on the whole text, before it is split into lines or joined: each quote is cut
 * up to the last place in the text where it could end (to the end of the text when nothing ends it),
 * and further while a quote starting inside the cut could end later. What is cut too much is
 * diagnostics, never a value left behind.
 */
export function scrubRowValues(text: string): string {
  // The last place each kind of quote could end, in the whole text.
  const lastEnd = VALUE_QUOTES.map((q) => {
    let last: RegExpExecArray | undefined;
    q.end.lastIndex = 0;
    for (let m = q.end.exec(text); m; m = q.end.exec(text)) last = m;
    return last;
  });
  const endOf = (k: number, after: number): { at: number; own?: RegExpExecArray } => {
    const e = lastEnd[k];
    return e && e.index >= after ? { at: e.index + e[0].length, own: e } : { at: text.length };
  };
  const nextStart = (from: number): { k: number; m: RegExpExecArray } | undefined => {
    let first: { k: number; m: RegExpExecArray } | undefined;
    VALUE_QUOTES.forEach((q, k) => {
      q.start.lastIndex = from;
      const m = q.start.exec(text);
      if (m && (!first || m.index < first.m.index)) first = { k, m };
    });
    return first;
  };
  let out = '';
  let from = 0;
  for (let s = nextStart(0); s; s = nextStart(from)) {
    let end = endOf(s.k, s.m.index + s.m[0].length);
    // A quote that starts inside the cut may end after it: the cut goes on to there.
    for (let inner = nextStart(s.m.index + 1); inner && inner.m.index < end.at; inner = nextStart(inner.m.index + 1)) {
      const e = endOf(inner.k, inner.m.index + inner.m[0].length);
      if (e.at > end.at) end = { at: e.at };
    }
    out += text.slice(from, s.m.index) + VALUE_QUOTES[s.k].shown(s.m, end.own);
    from = end.at;
  }
  out += text.slice(from);
  // A COPY line with no quoted value ("column b: null input").
  return out.replace(/(COPY [^,\n]+, line \d+)(, column [^:\n]+)?: .*/g, '$1$2 (line content not shown)');
}

/**
 * A command printed more than twinstack keeps of one command's output (MAX_CAPTURE_BYTES): it was
 * stopped, and its output is not used cut short.
 */
export class CaptureLimitError extends Error {
  override name = 'CaptureLimitError';
  constructor(
    readonly label: string,
    readonly stream: 'stdout' | 'stderr',
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(
      `${label} printed more than ${mib(limit)} on ${stream} (${mib(bytes)} read when it was stopped), more than twinstack keeps of one command's output; its output was not used cut short: make what it prints smaller on the host (rotate or archive the file it reads)`,
    );
  }
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The environment's lock could not be taken in time. */
export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** A failure of the operation itself that has been reported already (summary written); ends the run. */
export class OperationFailed extends Error {
  override name = 'OperationFailed';
}

/**
 * JSON read from the host (a manifest, the lock holder, docker inspect) that is not what twinstack
 * wrote or expects; the message names where it was read and what is wrong (src/infra/json.ts).
 */
export class HostDataError extends Error {
  override name = 'HostDataError';
}

/** The last `n` non-empty lines of a command's output, joined with " | ", row values taken out first (scrubRowValues). */
export function tailLines(text: string, n: number): string {
  return lastLines(scrubRowValues(text), n);
}

function lastLines(text: string, n: number): string {
  const lines = text
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.length > 0);
  return lines.slice(-n).join(' | ');
}

export function shorten(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
