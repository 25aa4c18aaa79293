/**
 * Releases: what an environment runs. A release is a commit plus the image of every service, each
 * image tagged `twinstack/<project>-<service>:<release-id>` so a rollback can start it again without
 * rebuilding. The host log's `release` records are the history; the newest is what runs now.
 */
import type { EnvContext, Environment, ContainerState } from './environment';
import { OperationFailed } from '../infra/errors';
import type { Host } from '../infra/host';
import type { LogRecord, RecordOf } from './host-log';
import { ignored, type Logger } from '../infra/logger';
import { imageIdsCommand, listImages, logsTail, settleRecreate, tagImages } from '../infra/docker';
import { short } from '../infra/sha';
import { argv } from '../infra/shell';
import { pruneReleaseDirs, usesReleaseDirs } from './git';
import { errorMessage } from '../infra/errors';
import { utcStamp } from '../infra/stamp';

export interface ServiceImage {
  /** The image name compose runs the service from (Config.Image). */
  name: string;
  /** The image id (sha256:...). */
  id: string;
  /** twinstack's tag of that image for this release. */
  tag: string;
}

export interface Release {
  release: string;
  sha: string;
  kind: 'deploy' | 'promote' | 'rollback';
  images: Record<string, ServiceImage>;
  time: string;
  run?: string;
  /** The release this one replaced when it was first deployed or promoted. */
  previous?: string;
  /** A swarm release: each service pinned by digest (repo@sha256:...), what drift judges and a rollback deploys again. */
  digests?: Record<string, string>;
}

export function newReleaseId(sha: string, now = new Date()): string {
  return `r${utcStamp(now)}-${sha.slice(0, 7)}`;
}

function asRelease(r: RecordOf<'release'>): Release {
  return {
    release: r.release,
    sha: r.sha,
    kind: r.kind,
    images: r.images,
    time: r.time,
    run: r.run,
    previous: r.previous || undefined,
    ...(r.digests ? { digests: r.digests } : {}),
  };
}

/**
 * The release stack. Each release knows the release it replaced when it was first deployed or
 * promoted (its `previous`; for records written before that field, the release that ran just
 * before it). A rollback goes to the release the current one replaced, skipping every release
 * that was rolled back from: rolling back twice never lands on the broken release just left.
 */
export interface ReleaseStack {
  current?: Release;
  /** Where a rollback without release-id goes, if anywhere. */
  target?: Release;
  /** Releases passed over because a rollback left them. */
  skipped: string[];
  /** Every release id that a rollback left. */
  rolledBackFrom: Set<string>;
  /** The newest record of each release id. */
  byId: Map<string, Release>;
}

export function releaseStack(records: LogRecord[]): ReleaseStack {
  const replaced = new Map<string, string | undefined>();
  const byId = new Map<string, Release>();
  const rolledBackFrom = new Set<string>();
  let running: string | undefined;
  for (const r of records) {
    if (r.event !== 'release') continue;
    const rel = asRelease(r);
    if (!replaced.has(rel.release) && rel.kind !== 'rollback') replaced.set(rel.release, rel.previous ?? running);
    if (rel.kind === 'rollback') {
      const from = r.rolledBackFrom ?? (typeof r.from === 'string' ? r.from : running);
      if (from && from !== rel.release) rolledBackFrom.add(from);
    }
    byId.set(rel.release, rel);
    running = rel.release;
  }
  const current = running ? byId.get(running) : undefined;
  const skipped: string[] = [];
  const seen = new Set<string>(current ? [current.release] : []);
  let t = current ? replaced.get(current.release) : undefined;
  while (t && (rolledBackFrom.has(t) || seen.has(t))) {
    if (!seen.has(t)) skipped.push(t);
    seen.add(t);
    t = replaced.get(t);
  }
  return { current, target: t ? byId.get(t) : undefined, skipped, rolledBackFrom, byId };
}

/** The release an environment runs now: the newest release record. */
export function currentRelease(records: LogRecord[]): Release | undefined {
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i];
    if (r.event === 'release') return asRelease(r);
  }
  return undefined;
}

/** Every release ever recorded, newest first, each id once. */
export function releaseHistory(records: LogRecord[]): Release[] {
  const seen = new Set<string>();
  const out: Release[] = [];
  for (let i = records.length - 1; i >= 0; i--) {
    const r = records[i];
    if (r.event !== 'release' || seen.has(r.release)) continue;
    seen.add(r.release);
    out.push(asRelease(r));
  }
  return out;
}

/** A service that did not come up: the step fails naming it, with its state and last log lines. */
export class HealthError extends OperationFailed {
  constructor(
    message: string,
    readonly service: string,
    readonly state: string,
    readonly logs: string,
  ) {
    super(message);
  }
}

export async function composeBuildAndUp(host: Host, env: Environment, build: boolean, log: Logger): Promise<void> {
  if (build) {
    log.startGroup(`${env.name}: compose build`);
    try {
      await host.run(env.compose('build'), env.composeOptions({ label: `${env.name} compose build` }));
    } finally {
      log.endGroup();
    }
  }
  log.startGroup(`${env.name}: compose up`);
  try {
    // A recreate a cancelled or cut run left half-done would make this up fail on a name conflict.
    const settled = await host.run(settleRecreate(env.project), { quiet: true, label: `${env.name}: settling an interrupted recreate`, timeoutSeconds: 120 });
    for (const line of settled.stdout.split('\n').filter(Boolean)) log.info(`${env.name}: ${line}`);
    await host.run(env.compose('up', '-d', '--remove-orphans', ...(build ? [] : ['--no-build'])), env.composeOptions({ label: `${env.name} compose up` }));
  } catch (e) {
    // compose v2 gives up when a dependency turns unhealthy ("dependency failed to start"): name the
    // container and show its own last lines, which say why, instead of compose's progress lines.
    throw (await failedContainerError(host, env, 'compose up failed', log)) ?? e;
  } finally {
    log.endGroup();
  }
}

/** A HealthError for the first container of the project that has failed, with its last log lines; undefined when none has. */
async function failedContainerError(host: Host, env: Environment, what: string, log: Logger): Promise<HealthError | undefined> {
  // Only sharpens the error already being raised: without the list, the caller's own error stands.
  const containers = await env.containers(host).catch(ignored(log, `listing ${env.name}'s containers`, [] as ContainerState[]));
  const failed = containers.find((c) => verdict(c) === 'failed');
  return failed ? healthError(host, env, failed, `${env.name}: ${what}`) : undefined;
}

async function healthError(host: Host, env: Environment, failed: ContainerState, prefix: string): Promise<HealthError> {
  const logs = await containerLogs(host, failed);
  const state = failed.status === 'exited' ? `exited with code ${failed.exitCode}` : failed.status === 'running' ? failed.health : failed.status;
  return new HealthError(`${prefix}: service ${failed.service} is ${state} (container ${failed.name})`, failed.service, state, logs);
}

export async function containerLogs(host: Host, c: ContainerState, lines = 30): Promise<string> {
  const r = await host.run(logsTail(c.id, lines), { check: false, quiet: true, timeoutSeconds: 60 });
  return r.stdout.trimEnd();
}

function verdict(c: ContainerState): 'ok' | 'wait' | 'failed' {
  if (c.status === 'restarting' || c.status === 'dead') return 'failed';
  if (c.status === 'exited') return c.exitCode === 0 ? 'ok' : 'failed';
  if (c.status !== 'running') return 'wait';
  if (!c.hasHealthcheck) return 'ok';
  if (c.health === 'healthy') return 'ok';
  if (c.health === 'unhealthy') return 'failed';
  return 'wait';
}

/**
 * Waits until every service with a healthcheck is healthy and the rest run. A service that turns
 * unhealthy, exits non-zero or restarts fails at once.
 */
export async function waitHealthy(host: Host, env: Environment, log: Logger, timeoutSeconds = env.cfg.healthTimeoutSeconds): Promise<ContainerState[]> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    const last = await env.containers(host);
    if (last.length === 0) throw new OperationFailed(`${env.name}: no containers of compose project ${env.project} are running after compose up`);
    const failed = last.find((c) => verdict(c) === 'failed');
    if (failed) throw await healthError(host, env, failed, env.name);
    if (last.every((c) => verdict(c) === 'ok')) {
      log.info(`${env.name}: all ${last.length} services are up (${last.filter((c) => c.hasHealthcheck).length} with healthy healthchecks)`);
      return last;
    }
    if (Date.now() > deadline) {
      const waiting = last.filter((c) => verdict(c) === 'wait');
      const first = waiting[0];
      const logs = first ? await containerLogs(host, first) : '';
      throw new HealthError(
        `${env.name}: ${waiting.map((c) => `${c.service} (${c.status === 'running' ? c.health : c.status})`).join(', ')} not healthy after ${timeoutSeconds}s`,
        first?.service ?? '',
        first ? (first.status === 'running' ? first.health : first.status) : '',
        logs,
      );
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** Probes the environment's health URL from the host, expecting 2xx; retries while it is not. */
export async function probeHealthUrl(host: Host, env: Environment, log: Logger, attempts = 10): Promise<number> {
  const url = `${env.cfg.url}${env.cfg.healthPath}`;
  let code = 0;
  let detail = '';
  for (let i = 1; i <= attempts; i++) {
    const r = await host.run(argv('curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', url), {
      check: false,
      quiet: true,
      timeoutSeconds: 30,
    });
    code = Number(r.stdout.trim()) || 0;
    detail = r.stderr.trim();
    if (code >= 200 && code < 300) {
      log.info(`${env.name}: ${url} answered ${code}`);
      return code;
    }
    if (i < attempts) await new Promise((res) => setTimeout(res, 3000));
  }
  throw new OperationFailed(
    `${env.name}: health URL ${url} answered ${code ? code : `nothing (${detail || 'no response'})`} after ${attempts} tries; expected 2xx`,
  );
}

function tagRepository(env: Environment, service: string): string {
  return `twinstack/${env.project}-${service}`.toLowerCase();
}

/** Tags every running service's image with the release id. */
export async function tagRelease(host: Host, env: Environment, releaseId: string, containers: ContainerState[]): Promise<Record<string, ServiceImage>> {
  const images: Record<string, ServiceImage> = {};
  for (const c of containers) {
    if (!c.service || images[c.service]) continue;
    images[c.service] = { name: c.image, id: c.imageId, tag: `${tagRepository(env, c.service)}:${releaseId}` };
  }
  const script = tagImages(Object.values(images).map((i) => ({ from: i.id, to: i.tag })));
  if (script) await host.run(script, { label: `tagging ${env.name} images as ${releaseId}`, quiet: true, timeoutSeconds: 300 });
  return images;
}

/** Removes release tags beyond the newest `keep` releases (never one named in `protect`). Returns the pruned release ids. */
export async function pruneReleaseTags({ host, env, keep, protect, log }: Omit<EnvContext, 'config'> & { keep: number; protect: string[] }): Promise<string[]> {
  const r = await host.run(listImages(`twinstack/${env.project}-*`, '{{.Repository}}:{{.Tag}}'), { quiet: true, timeoutSeconds: 120 });
  const tags = r.stdout.split('\n').filter((l) => l.includes(':') && !l.endsWith(':<none>'));
  const ids = [...new Set(tags.map((t) => t.slice(t.lastIndexOf(':') + 1)))]
    .filter((t) => /^r\d{8}T\d{6}Z-/.test(t))
    .sort()
    .reverse();
  const pruned = ids.slice(keep).filter((id) => !protect.includes(id));
  if (pruned.length === 0) return [];
  const doomed = tags.filter((t) => pruned.includes(t.slice(t.lastIndexOf(':') + 1)));
  // Untagging only: an image still used by a container stays (docker refuses), which is right.
  const rm = await host.run(argv('docker', 'rmi', doomed), { check: false, quiet: true, timeoutSeconds: 600 });
  if (rm.exitCode !== 0) log.warning(`${env.name}: some old release images were kept: ${rm.stderr.trim().split('\n').slice(-1)[0]}`);
  log.info(`${env.name}: pruned release tags ${pruned.join(', ')} (keeping the newest ${keep})`);
  return pruned;
}

/**
 * Housekeeping once a release is recorded (deploy and promote): old release tags beyond
 * keep-releases, and on prod with promote.release-dirs the directories of releases no longer kept.
 * A failure here is a warning, never a failed deploy or a rollback.
 */
export async function pruneOldReleases({
  host,
  config,
  env,
  current,
  previous,
  log,
}: EnvContext & { current: { release: string; sha: string }; previous: { release: string; sha: string } | undefined }): Promise<void> {
  try {
    await pruneReleaseTags({ host, env, keep: config['keep-releases'], protect: [current.release, previous?.release ?? ''], log });
    if (usesReleaseDirs(config, env)) {
      const pruned = await pruneReleaseDirs(host, config['state-dir'], env, [current.sha, previous?.sha ?? '']);
      if (pruned.length) log.info(`${env.name}: removed the release directories of ${pruned.map((d) => short(d)).join(', ')} (no release of theirs is kept)`);
    }
  } catch (e) {
    log.warning(`${env.name}: could not prune old releases (${errorMessage(e)}); they stay until the next deploy or promote`);
  }
}

/** Points each service's image name back at a release's images, so `up --no-build` starts them unchanged. */
export async function restoreReleaseImages(host: Host, env: Environment, release: Release): Promise<void> {
  const entries = Object.values(release.images);
  if (entries.length === 0) throw new OperationFailed(`release ${release.release} recorded no images; it cannot be started without a rebuild`);
  const check = await host.run(imageIdsCommand(entries.map((i) => i.tag)), { check: false, quiet: true, timeoutSeconds: 120 });
  if (check.exitCode !== 0) {
    throw new OperationFailed(
      `release ${release.release}'s images are gone from the host (${check.stderr.trim().split('\n')[0]}); it was pruned or never tagged`,
    );
  }
  const script = tagImages(entries.map((i) => ({ from: i.tag, to: i.name })));
  await host.run(script, { label: `restoring ${release.release}'s images`, quiet: true, timeoutSeconds: 300 });
}
