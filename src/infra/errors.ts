/** A failure the user can fix by changing an input, the config file or the host's setup. */
export class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

/** A command on the host exited non-zero (or was killed). Carries what an operator needs to see. */
export class RemoteCommandError extends Error {
  override name = 'RemoteCommandError';
  /** The command's stderr, with the row values PostgreSQL quotes taken out (scrubRowValues). */
  readonly stderr: string;
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    readonly stdout: string,
    stderr: string,
    readonly timedOut = false,
    readonly label?: string,
  ) {
    const scrubbed = scrubRowValues(stderr);
    super(RemoteCommandError.describe(command, exitCode, signal, scrubbed, timedOut, label));
    this.stderr = scrubbed;
  }

  static describe(command: string, exitCode: number | null, signal: string | null, stderr: string, timedOut: boolean, label?: string): string {
    const what = label ?? shorten(command, 200);
    const how = timedOut
      ? 'timed out and was killed'
      : signal
        ? `was killed by ${signal}`
        : exitCode === null
          ? 'ended without an exit status (sshd or the connection closed it)'
          : `exited with code ${exitCode}`;
    const tail = tailLines(stderr, 5);
    return `${what} ${how}${tail ? `: ${tail}` : ''}`;
  }
}

/**
 * PostgreSQL quotes row values in its errors ("Failing row contains (...)", "Key (email)=(...)",
 * a COPY's failing line). An error goes to the job log, the summary and the host log, which may be
 * public: the values are replaced by where to look, and the table, constraint and line stay.
 */
export function scrubRowValues(text: string): string {
  return (
    text
      .replace(/Failing row contains \(.*\)\.?/g, 'Failing row contains (values not shown; find the row on the host with the constraint named above).')
      // The key may be an expression (lower(email)); "is duplicated" comes from building a unique index.
      .replace(
        /Key \((.*?)\)=\((.*?)\)( already exists| is duplicated| is not present in table| is still referenced from table| conflicts with)/g,
        'Key ($1)=(values not shown)$3',
      )
      .replace(/(COPY [^,\n]+, line \d+)(, column [^:\n]+)?: .*/g, '$1$2 (line content not shown)')
  );
}

/** The environment's lock could not be taken in time. */
export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** A failure of the operation itself that has been reported already (summary written); ends the run. */
export class OperationFailed extends Error {
  override name = 'OperationFailed';
}

export function tailLines(text: string, n: number): string {
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
