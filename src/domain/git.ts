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
    throw new ConfigurationError(`${env.name} checkout ${checkout} is not a git repository on the host: clone the app there first (git clone <repo> ${checkout})`);
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
      throw new ConfigurationError(`${env.cfg.checkout} has local changes to tracked files: commit or discard them on the host (git -C ${env.cfg.checkout} status), then deploy again`);
    }
    throw e;
  }
}
