/**
 * Work to do if the run is cancelled (SIGINT, SIGTERM from the runner): release a lock, stop a
 * fenced remote process, remove a key file. Modules register here; the action runner
 * (src/actions/runner.ts) owns the signals and runs what is registered.
 */
import { cleanupScope } from './host';

type Cleanup = () => Promise<void>;
const cleanups = new Set<Cleanup>();

/** Registers work to do if the run is cancelled; returns a function that unregisters it. */
export function onCancel(fn: Cleanup): () => void {
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

/** Runs every registered clean-up, each in the clean-up scope (its commands ignore the run's cancellation). */
export function runCancelCleanups(): Promise<PromiseSettledResult<void>[]> {
  return Promise.allSettled([...cleanups].map((c) => cleanupScope.run(true, c)));
}
