/**
 * The append-only host log: one JSON object per line in <state-dir>/<env>/log.jsonl on the host.
 * Every action that changes the host records what it did, for which sha, by which run, and how it
 * ended. Appends are single `>>` writes of one line, so concurrent readers never see half a record.
 */
import type { Host } from '../infra/host';
import type { Logger } from '../infra/logger';
import { sh } from '../infra/shell';

export type Outcome = 'success' | 'failure' | 'cancelled' | 'interrupted';

export interface LogRecord {
  v: 1;
  time: string;
  env: string;
  action: string;
  /** started | finished | release | gate | backup | rollback | interrupted | ... */
  event: string;
  op: string;
  run?: string;
  actor?: string;
  sha?: string;
  outcome?: Outcome;
  [key: string]: unknown;
}

export function stateDirOf(stateDir: string, env: string): string {
  return `${stateDir}/${env}`;
}

export class HostLog {
  readonly file: string;

  constructor(
    private readonly host: Host,
    readonly stateDir: string,
    readonly env: string,
  ) {
    this.file = `${stateDirOf(stateDir, env)}/log.jsonl`;
  }

  async append(record: Omit<LogRecord, 'v' | 'time' | 'env'> & { time?: string }): Promise<LogRecord> {
    const full = { v: 1, time: new Date().toISOString(), env: this.env, ...record } as LogRecord;
    const line = JSON.stringify(full);
    await this.host.run(sh`mkdir -p -m 700 ${stateDirOf(this.stateDir, this.env)} && printf '%s\n' ${line} >> ${this.file}`, {
      label: `appending to the ${this.env} host log`,
      quiet: true,
      timeoutSeconds: 60,
    });
    return full;
  }

  /** All records, oldest first. Lines that do not parse are counted and skipped, never fatal. */
  async read(log?: Logger): Promise<LogRecord[]> {
    const r = await this.host.run(sh`if [ -f ${this.file} ]; then cat ${this.file}; fi`, {
      label: `reading the ${this.env} host log`,
      quiet: true,
      timeoutSeconds: 120,
    });
    return parseLog(r.stdout, this.file, log);
  }
}

export function parseLog(text: string, file: string, log?: Logger): LogRecord[] {
  const records: LogRecord[] = [];
  let bad = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line);
      if (r && typeof r === 'object' && r.v === 1 && typeof r.event === 'string') records.push(r as LogRecord);
      else bad++;
    } catch {
      bad++;
    }
  }
  if (bad && log) log.warning(`${file}: ${bad} line(s) are not twinstack records and were skipped`);
  return records;
}

/** Operations that were started and never finished (their run died or lost the connection). */
export function unfinishedOperations(records: LogRecord[]): LogRecord[] {
  const closed = new Set(records.filter((r) => r.event === 'finished' || r.event === 'interrupted').map((r) => r.op));
  return records.filter((r) => r.event === 'started' && !closed.has(r.op));
}

/** The newest record of an event, optionally filtered. */
export function latest(records: LogRecord[], event: string, where: (r: LogRecord) => boolean = () => true): LogRecord | undefined {
  for (let i = records.length - 1; i >= 0; i--) if (records[i].event === event && where(records[i])) return records[i];
  return undefined;
}
