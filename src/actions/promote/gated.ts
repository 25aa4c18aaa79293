/**
 * The first two steps of a promotion, before prod's lock is taken: the commit and what passed the
 * gate for it, read under dev's lock; and the two-person rule. Both refuse in one line, having
 * changed nothing.
 */
import { parseSha, short, type Sha } from '../../infra/sha';
import type { Config } from '../../domain/config';
import type { Environment } from '../../domain/environment';
import { HostLog, latest, type LogRecord, type RecordOf } from '../../domain/host-log';
import { EnvironmentLock } from '../../domain/lock';
import { currentRelease, releaseStack, type Release } from '../../domain/release';
import { drift, driftMessage, observe, shortId } from '../../domain/state';
import type { RunInfo } from '../../infra/actions-io';
import { OperationFailed, shorten } from '../../infra/errors';
import type { Host } from '../../infra/host';
import type { Logger } from '../../infra/logger';

export interface GatedRelease {
  sha: Sha;
  /** Service → image id the passing gate tested (or, without a gate, what dev runs). */
  images: Record<string, string>;
  gate?: RecordOf<'gate'>;
  /** dev's release, when it runs this commit. */
  devRelease?: Release;
  /** On a swarm dev: the digests (service → repo@sha256:…) of the release the gate tested (or that dev runs). */
  digests?: Record<string, string>;
  /** Who deployed the commit to dev (the pusher, for a push-triggered deploy). */
  pusher?: string;
}

export interface GatedReleaseOptions {
  host: Host;
  stateDir: string;
  dev: Environment;
  /** The commit asked for (the sha input); undefined: the commit dev runs. */
  wanted: string | undefined;
  /** Without a passing gate, refuse (true) or warn and promote what dev runs (false). */
  requireGate: boolean;
  run: RunInfo;
  log: Logger;
  lockTimeoutSeconds: number;
}

/**
 * The commit to promote and what passed the gate for it: `sha`, or what dev runs. When dev runs the
 * commit, it must run it undrifted and still run the gated images. Read under dev's lock, so no dev
 * deploy changes it halfway through the reading. Refuses in one line otherwise.
 */
export async function gatedRelease(o: GatedReleaseOptions): Promise<GatedRelease> {
  const { host, stateDir, dev, wanted, requireGate, run, log, lockTimeoutSeconds } = o;
  const lock = await EnvironmentLock.acquireToRead({
    host,
    stateDir,
    env: 'dev',
    run,
    action: 'promote (reading dev)',
    waitSeconds: lockTimeoutSeconds,
    log,
    sha: '',
  });
  try {
    const devRecords = await new HostLog(host, stateDir, 'dev').read(log);
    const devRelease = currentRelease(devRecords);
    const found = wanted ?? devRelease?.sha;
    if (!found) throw new OperationFailed('dev has no release recorded: deploy dev and run the gate first. Nothing was changed.');
    const sha = parseSha(found);
    if (!sha)
      throw new OperationFailed(`dev's host log names "${shorten(found, 80)}" as its commit, which is not a commit id: deploy dev again. Nothing was changed.`);
    const pusher = devRecords.filter((r) => r.event === 'release' && r.kind === 'deploy' && r.sha === sha).at(-1)?.actor;
    const gate = latest(devRecords, 'gate', (r) => r.sha === sha);
    const runsIt = devRelease?.sha === sha ? devRelease : undefined;
    const observed = runsIt ? await observe(host, dev) : undefined;
    if (runsIt && observed) {
      const drifted = drift(observed, runsIt);
      if (drifted.length) {
        throw new OperationFailed(
          `${driftMessage('dev', runsIt, drifted)} What runs on dev was not gated as such. Deploy dev again and run the gate, then promote. Nothing was changed.`,
        );
      }
    }
    if (!requireGate) {
      const images = gate?.passed ? (gate.images ?? {}) : runsIt ? Object.fromEntries(Object.entries(runsIt.images).map(([s, i]) => [s, i.id])) : undefined;
      if (!images)
        throw new OperationFailed(
          `dev never ran ${short(sha)} as a release twinstack knows, so there are no images to ship: deploy it to dev first. Nothing was changed.`,
        );
      log.warning(`require-gate is off: promoting ${short(sha)} without a passing gate`);
      return { sha, images, gate, devRelease: runsIt, pusher, digests: gatedDigests(devRecords, gate?.passed ? gate : undefined, runsIt) };
    }
    if (gate?.passed !== true) {
      throw new OperationFailed(
        `commit ${sha}${runsIt ? ` (dev release ${runsIt.release})` : ''} has no passing gate on dev${gate ? ` (its last gate failed at ${gate.time})` : ''}: ` +
          `${wanted && !runsIt ? 'only a commit that passed the gate can be promoted; deploy it to dev and run the gate' : 'run the gate on dev, or fix and deploy again'}. Nothing was changed.`,
      );
    }
    const tested = gate.images ?? {};
    if (!Object.keys(tested).length) {
      throw new OperationFailed(
        `the passing gate of ${short(sha)} (${gate.time}) does not say which images it tested: run the gate on dev again. Nothing was changed.`,
      );
    }
    if (observed) {
      const changed = Object.entries(tested).filter(([svc, id]) => observed.images[svc] !== id);
      if (changed.length) {
        throw new OperationFailed(
          `dev no longer runs what passed the gate at ${gate.time}: ${changed.map(([svc, id]) => `${svc} ran ${shortId(id)}, now ${observed.images[svc] ? shortId(observed.images[svc]) : 'nothing'}`).join('; ')}. ` +
            `Run the gate on dev again. Nothing was changed.`,
        );
      }
    }
    return { sha, images: tested, gate, devRelease: runsIt, pusher, digests: gatedDigests(devRecords, gate, runsIt) };
  } finally {
    await lock.release();
  }
}

/** The digests of the release a gate tested (the one it names, else what dev runs), when it has any: a swarm release. */
function gatedDigests(records: LogRecord[], gate: RecordOf<'gate'> | undefined, runsIt: Release | undefined): Record<string, string> | undefined {
  const tested = gate?.release ? releaseStack(records).byId.get(gate.release) : runsIt;
  return tested?.digests;
}

/** promote.require-different-actor: whoever deployed the commit to dev may not also promote it. */
export function checkTwoPersonRule(config: Config, gated: GatedRelease, run: RunInfo): void {
  if (config.promote['require-different-actor'] && gated.pusher && gated.pusher === run.actor) {
    throw new OperationFailed(
      `${run.actor} deployed ${short(gated.sha)} to dev and may not also promote it (promote.require-different-actor): ask another person to run flip-the-switch. Nothing was changed.`,
    );
  }
}
