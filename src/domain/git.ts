/**
 * The environment's checkout on the host: fetched, then put on exactly one commit, detached.
 * Untracked files (the env files) are left alone; local changes to tracked files stop the deploy.
 */
import * as fs from 'node:fs';
import type { Config } from './config';
import type { Environment } from './environment';
import { ConfigurationError, RemoteCommandError } from '../infra/errors';
import type { Host } from '../infra/host';
import { listImages } from '../infra/docker';
import * as git from '../infra/git';
import { isSha, short, type Sha } from '../infra/sha';
import { argv, hostScript, sh } from '../infra/shell';
import { gitRef, printable } from '../infra/validate';

const COPY_UNTRACKED = fs.readFileSync(__dirname + '/copy-untracked.sh', 'utf8');
const RELEASE_PROBE = fs.readFileSync(__dirname + '/release-probe.sh', 'utf8');

/** Fetches and resolves a branch, tag or sha to the full commit sha; the sha is what gets recorded. */
export async function resolveRef(host: Host, env: Environment, ref: string): Promise<Sha> {
  gitRef(ref);
  const { checkout, remote } = env.cfg;
  await fetchRemote(host, env);
  // A branch name means the remote's branch; a tag or sha means itself.
  const r = await host.run(git.resolveCommit(remote, ref), {
    cwd: checkout,
    check: false,
    quiet: true,
    timeoutSeconds: 60,
  });
  const line = r.stdout.trim().split('\n')[0];
  const sha = isSha(line) ? line : undefined;
  if (r.exitCode !== 0 || !sha) {
    throw new ConfigurationError(`ref ${ref} is not a branch, tag or commit of ${remote} in ${checkout}: push it first, or check the ref input`);
  }
  return sha;
}

/** The environment's checkout is a repository, and has fetched its remote's branches and tags. */
async function fetchRemote(host: Host, env: Environment): Promise<void> {
  const { checkout, remote } = env.cfg;
  const exists = await host.run(git.isRepository(checkout), { check: false, quiet: true, timeoutSeconds: 30 });
  if (exists.exitCode !== 0) {
    throw new ConfigurationError(
      `${env.name} checkout ${checkout} is not a git repository on the host: clone the app there first (git clone <repo> ${checkout})`,
    );
  }
  await host.run(git.fetch(remote), { cwd: checkout, label: `git fetch in ${checkout}`, timeoutSeconds: 600 });
}

/**
 * Checks that the environment's checkout has the commit `sha` after a fetch of its remote: for a
 * commit already known by its full id (promote's gated commit), where resolveRef would look up a
 * branch or tag by that name first.
 */
export async function ensureCommit(host: Host, env: Environment, sha: Sha): Promise<void> {
  await fetchRemote(host, env);
  const r = await host.run(git.hasCommit(sha), { cwd: env.cfg.checkout, check: false, quiet: true, timeoutSeconds: 60 });
  if (r.exitCode !== 0) {
    throw new ConfigurationError(`commit ${short(sha)} is not in ${env.cfg.checkout} after fetching ${env.cfg.remote}: push it there first`);
  }
}

export async function checkoutCommit(host: Host, env: Environment, sha: string): Promise<void> {
  try {
    await host.run(git.checkoutDetached(sha), {
      cwd: env.cfg.checkout,
      label: `git checkout ${short(sha)} in ${env.cfg.checkout}`,
      timeoutSeconds: 300,
    });
  } catch (e) {
    if (e instanceof RemoteCommandError && /would be overwritten|local changes/i.test(e.stderr)) {
      throw new ConfigurationError(
        `${env.cfg.checkout} has local changes to tracked files: commit or discard them on the host (git -C ${env.cfg.checkout} status), then deploy again`,
      );
    }
    throw e;
  }
}

/**
 * A scratch checkout of `sha` beside the environment's own (a `git worktree`, detached), with the
 * environment's env file copied in: compose commands run from it see the new commit's files while
 * the running containers keep the checkout they were started from. Code that the services
 * bind-mount from the checkout (Makapix's `../../api:/workspace/api`) therefore changes only at the
 * swap. Returns the directory; `removeScratchCheckout` takes it away again.
 */
export async function scratchCheckout(host: Host, env: Environment, sha: string, dir: string): Promise<string> {
  await addWorktree(host, env, sha, dir);
  await copyUntracked({ host, env, sha, dir, files: [] });
  return dir;
}

async function addWorktree(host: Host, env: Environment, sha: string, dir: string): Promise<void> {
  const { checkout } = env.cfg;
  await host.run(git.addWorktree(checkout, dir, sha), { label: `${env.name}: scratch checkout of ${short(sha)}`, quiet: true, timeoutSeconds: 600 });
}

function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf('/')) || '/';
}

/** Every path from `root` down to `root/rel`, one component more each: the ones a copy to `root/rel` goes through. */
function componentPaths(root: string, rel: string): string[] {
  const parts = rel.split('/').filter((c) => c && c !== '.');
  return parts.map((_, i) => `${root}/${parts.slice(0, i + 1).join('/')}`);
}

const LINK = '@twinstack-link';

/** A checkout of `sha` at `dir`, and the untracked files (besides the env file) it gets from the environment's checkout. */
export interface ReleaseDirOptions {
  host: Host;
  env: Environment;
  sha: string;
  dir: string;
  files: readonly string[];
}

/**
 * Copies the env file and `files` (promote.release-files; each must exist) from the environment's
 * checkout to the same paths under `dir`, a checkout of `sha`. That commit decides what its tree
 * holds: a directory it tracks as a symlink (to dev's vault, say) would carry prod's secrets out of
 * `dir`. So no component of a source or destination path may be a symlink: the first one found is
 * refused in one line and nothing is copied. cp never dereferences (-P), and the copies are private
 * (files 0600, directories 0700; an executable keeps its owner's x bit).
 */
async function copyUntracked({ host, env, sha, dir, files }: ReleaseDirOptions): Promise<void> {
  const { checkout, envFile } = env.cfg;
  const all = [envFile, ...files];
  // Every path that must not be a link, with what to say when it is one.
  const watched: Array<{ path: string; file: string; side: 'source' | 'destination' }> = [];
  for (const f of all) {
    for (const p of componentPaths(checkout, f)) watched.push({ path: p, file: f, side: 'source' });
    for (const p of componentPaths(dir, f)) watched.push({ path: p, file: f, side: 'destination' });
  }
  // All checks run before the first copy; a link found prints its index and target and stops the script.
  const copies = all.flatMap((f) => [`${checkout}/${f}`, `${dir}/${f}`, parentOf(`${dir}/${f}`)]);
  const r = await host.run(hostScript(COPY_UNTRACKED, { LINK }, [...watched.map((w) => w.path), '--', ...copies]), {
    label: `${env.name}: files outside git into ${dir}`,
    check: false,
    quiet: true,
    timeoutSeconds: 300,
  });
  const m = new RegExp(`^${LINK} (\\d+) ?(.*)$`, 'm').exec(r.stdout);
  const hit = m ? watched[Number(m[1])] : undefined;
  if (hit) {
    const target = printable(m?.[2]?.trim() ?? '');
    const isEnvFile = hit.file === envFile;
    const what = isEnvFile ? `the env file ${envFile}` : `promote.release-files entry ${hit.file}`;
    const rel = hit.path.slice(dir.length + 1);
    const fix =
      hit.path === componentPaths(dir, hit.file).at(-1)
        ? `remove ${rel} from the commit (it comes from the checkout, outside git)`
        : `make ${rel} a real directory in the commit${isEnvFile ? '' : ' (or drop the entry)'}`;
    throw new ConfigurationError(
      hit.side === 'destination'
        ? `${env.name}: ${what} was not copied into ${dir}: ${hit.path} is a symlink (to ${target}) in commit ${short(sha)}, and files outside git never go through a link; ${fix}`
        : `${env.name}: ${what} was not copied into ${dir}: ${hit.path} is a symlink (to ${target}), and files outside git are copied, never followed; put the file itself at ${hit.path}`,
    );
  }
  if (r.exitCode !== 0 || r.timedOut) throw new RemoteCommandError({ ...r, label: `${env.name}: files outside git into ${dir}` });
}

/** Whether `env`'s containers run from release directories (promote.release-dirs, prod only). */
export function usesReleaseDirs(config: Config, env: Environment): boolean {
  return env.name === 'prod' && config.promote['release-dirs'];
}

/** Where a release of `sha` runs from when promote.release-dirs is on. */
export function releaseDir(stateDir: string, env: Environment, sha: string): string {
  return `${stateDir}/releases/${env.name}/${sha}`;
}

/**
 * Where `env`'s containers of `sha` are started from: prod's release directory with
 * promote.release-dirs (made or refreshed here), else the environment's own checkout.
 */
export async function releaseEnvironment(host: Host, config: Config, env: Environment, sha: string): Promise<Environment> {
  if (!usesReleaseDirs(config, env)) return env;
  return ensureReleaseDir({ host, env, sha, dir: releaseDir(config['state-dir'], env, sha), files: config.promote['release-files'] });
}

/**
 * The release directory of `sha`, made if missing (a worktree, as scratchCheckout) and kept: the
 * containers started from it bind-mount its files. An existing one at the same commit is kept as it
 * is (its containers may be running), with the env file and `files` copied in again from the checkout
 * (copyUntracked: never through a symlink). `<state-dir>/releases` and its environment's directory are
 * 0700: a release directory holds prod's env file and secrets.
 */
export async function ensureReleaseDir({ host, env, sha, dir, files }: ReleaseDirOptions): Promise<Environment> {
  const { checkout } = env.cfg;
  const envRoot = parentOf(dir);
  const roots = [parentOf(envRoot), envRoot];
  // One round trip: the listed files missing from the checkout, a link where a releases directory
  // belongs, and the directory's commit if it exists.
  const probe = await host.run(hostScript(RELEASE_PROBE, { CHECKOUT: checkout, RELEASES: roots[0], ENV_ROOT: roots[1], DIR: dir }, files), {
    check: false,
    quiet: true,
    timeoutSeconds: 60,
  });
  const lines = probe.stdout.split('\n').map((l) => l.trim());
  const missing = lines.filter((l) => l.startsWith('missing ')).map((l) => l.slice('missing '.length));
  if (missing.length)
    throw new ConfigurationError(`promote.release-files: ${missing.join(', ')} not found in ${checkout}; fix the list or put the files there`);
  const link = lines.find((l) => l.startsWith('link '));
  if (link)
    throw new ConfigurationError(
      `${link.slice('link '.length)} is a symlink: release directories hold prod's secrets and go in a real directory; remove the link`,
    );
  await host.run(argv('mkdir', '-p', envRoot), { label: `${env.name}: release directories`, quiet: true, timeoutSeconds: 60 });
  await host.run(argv('chmod', '700', roots), { label: `${env.name}: release directories`, quiet: true, timeoutSeconds: 60 });
  if (!lines.includes(sha)) await addWorktree(host, env, sha, dir);
  await copyUntracked({ host, env, sha, dir, files });
  return env.at(dir);
}

/**
 * Removes the release directories of `env` that no kept release needs: a directory stays while a
 * release tag of its commit exists (a rollback may start it) or its commit is in `protect`.
 */
export async function pruneReleaseDirs(host: Host, stateDir: string, env: Environment, protect: readonly string[]): Promise<string[]> {
  const root = `${stateDir}/releases/${env.name}`;
  const r = await host.run(sh`ls -1 ${root} 2>/dev/null`, { check: false, quiet: true, timeoutSeconds: 60 });
  const tags = await host.run(listImages(`twinstack/${env.project}-*`, '{{.Tag}}'), { quiet: true, timeoutSeconds: 120 });
  const kept = tags.stdout
    .split('\n')
    .map((t) => /^r\d{8}T\d{6}Z-([0-9a-f]{7,40})$/.exec(t.trim())?.[1])
    .filter((x): x is string => !!x);
  const gone = r.stdout
    .split('\n')
    .map((l) => l.trim())
    // A release directory is named by its commit's full id.
    .filter((d) => isSha(d) && !protect.includes(d) && !kept.some((k) => d.startsWith(k)));
  for (const d of gone) await removeScratchCheckout(host, env, `${root}/${d}`);
  return gone;
}

export async function removeScratchCheckout(host: Host, env: Environment, dir: string): Promise<void> {
  await host.run(git.removeWorktree(env.cfg.checkout, dir), {
    check: false,
    quiet: true,
    timeoutSeconds: 300,
  });
}
