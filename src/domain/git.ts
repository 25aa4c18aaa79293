/**
 * The environment's checkout on the host: fetched, then put on exactly one commit, detached.
 * Untracked files (the env files) are left alone; local changes to tracked files stop the deploy.
 */
import type { Environment } from './environment';
import { ConfigurationError, RemoteCommandError } from '../infra/errors';
import type { Host } from '../infra/host';
import { sh } from '../infra/shell';
import { gitRef } from '../infra/validate';

/** A script line printing the checkout's HEAD commit, or nothing when it cannot be read. */
export function headScript(checkout: string): string {
  return sh`git -C ${checkout} rev-parse --verify --quiet HEAD 2>/dev/null || true`;
}

/** Fetches and resolves a branch, tag or sha to the full commit sha; the sha is what gets recorded. */
export async function resolveRef(host: Host, env: Environment, ref: string): Promise<string> {
  gitRef(ref);
  const { checkout, remote } = env.cfg;
  const exists = await host.run(sh`test -d ${`${checkout}/.git`}`, { check: false, quiet: true, timeoutSeconds: 30 });
  if (exists.exitCode !== 0) {
    throw new ConfigurationError(
      `${env.name} checkout ${checkout} is not a git repository on the host: clone the app there first (git clone <repo> ${checkout})`,
    );
  }
  await host.run(sh`git fetch --prune --tags --force ${remote}`, { cwd: checkout, label: `git fetch in ${checkout}`, timeoutSeconds: 600 });
  // A branch name means the remote's branch; a tag or sha means itself.
  const r = await host.run(
    sh`git rev-parse --verify --quiet ${`refs/remotes/${remote}/${ref}^{commit}`} || git rev-parse --verify --quiet ${`refs/tags/${ref}^{commit}`} || git rev-parse --verify --quiet ${`${ref}^{commit}`}`,
    { cwd: checkout, check: false, quiet: true, timeoutSeconds: 60 },
  );
  const sha = r.stdout.trim().split('\n')[0];
  if (r.exitCode !== 0 || !/^[0-9a-f]{40}$/.test(sha)) {
    throw new ConfigurationError(`ref ${ref} is not a branch, tag or commit of ${remote} in ${checkout}: push it first, or check the ref input`);
  }
  return sha;
}

export async function checkoutCommit(host: Host, env: Environment, sha: string): Promise<void> {
  try {
    await host.run(sh`git -c advice.detachedHead=false checkout --quiet --detach ${sha}`, {
      cwd: env.cfg.checkout,
      label: `git checkout ${sha.slice(0, 12)} in ${env.cfg.checkout}`,
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
  const { checkout, envFile } = env.cfg;
  const target = `${dir}/${envFile}`;
  await host.run(
    sh`git -C ${checkout} worktree remove --force ${dir} 2>/dev/null; rm -rf ${dir}; git -C ${checkout} worktree prune && ` +
      sh`mkdir -p ${dir.slice(0, dir.lastIndexOf('/')) || '/'} && git -C ${checkout} worktree add --force --detach ${dir} ${sha} >/dev/null && ` +
      sh`if [ -e ${`${checkout}/${envFile}`} ]; then mkdir -p ${target.slice(0, target.lastIndexOf('/'))} && cp -p ${`${checkout}/${envFile}`} ${target}; fi`,
    { label: `${env.name}: scratch checkout of ${sha.slice(0, 12)}`, quiet: true, timeoutSeconds: 600 },
  );
  return dir;
}

export async function removeScratchCheckout(host: Host, env: Environment, dir: string): Promise<void> {
  await host.run(sh`git -C ${env.cfg.checkout} worktree remove --force ${dir} 2>/dev/null; rm -rf ${dir}; git -C ${env.cfg.checkout} worktree prune`, {
    check: false,
    quiet: true,
    timeoutSeconds: 300,
  });
}
