/**
 * What the lock leaves on the host, read back with a schema: the holder file (who holds or last
 * held the lock) and the busy entries (which process group of which run holds the busy file). A
 * file of another shape is refused with a message naming it; lock.ts then reports it as such
 * rather than block the environment, since a run that died while writing one leaves it cut short.
 */
import { z } from 'zod';
import { HostDataError } from '../infra/errors';
import { parseHostJson } from '../infra/json';
import type { BusyEntry, LockHolder } from './lock';

const lockHolder = z.object({
  run: z.string(),
  actor: z.string(),
  sha: z.string(),
  action: z.string(),
  op: z.string(),
  since: z.string(),
}) satisfies z.ZodType<LockHolder>;

/** The holder file's JSON; `file` is its path on the host. Throws HostDataError naming the file. */
export function parseLockHolder(text: string, file: string): LockHolder {
  return parseHostJson(lockHolder, text, `the lock holder ${file}`);
}

const busyEntry = z.object({ op: z.string(), run: z.string(), label: z.string(), since: z.string() });

/**
 * One line of busy-work.sh: `<process group><TAB><entry JSON>`; `dir` is the entries directory the
 * line was read from. Throws HostDataError naming the entry.
 */
export function parseBusyEntry(line: string, dir: string): BusyEntry {
  const tab = line.indexOf('\t');
  const group = tab < 0 ? '' : line.slice(0, tab);
  if (!/^[1-9]\d*$/.test(group)) throw new HostDataError(`a busy entry in ${dir} does not start with a process group and a tab: ${line.slice(0, 80)}`);
  return { pgid: Number(group), ...parseHostJson(busyEntry, line.slice(tab + 1), `the busy entry ${dir}/${group}.json`) };
}
