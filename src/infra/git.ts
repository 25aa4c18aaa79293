/**
 * The one place a git command line is built. Every command names its repository (`-C <dir>`) or
 * is run with the checkout as its working directory (RunOptions.cwd), as its doc says.
 */
import * as fs from 'node:fs';
import { argv, hostScript, sh } from './shell';

/** Whether `dir` is a git checkout (it has a .git directory). */
export function isRepository(dir: string): string {
  return argv('test', '-d', `${dir}/.git`);
}

/** Fetches every branch and tag of `remote`, moving tags that moved and dropping branches that are gone. Run in the checkout. */
export function fetch(remote: string): string {
  return argv('git', 'fetch', '--prune', '--tags', '--force', remote);
}

/**
 * Prints the commit `ref` names, in this order: the remote's branch of that name, a tag, anything
 * else git resolves (a sha). Exits non-zero when none does. Run in the checkout.
 */
export function resolveCommit(remote: string, ref: string): string {
  return hostScript(RESOLVE_COMMIT, { REMOTE: remote, REF: ref });
}

const RESOLVE_COMMIT = fs.readFileSync(__dirname + '/resolve-commit.sh', 'utf8');

/** Puts the checkout on `sha`, detached; refuses to overwrite local changes. Run in the checkout. */
export function checkoutDetached(sha: string): string {
  return argv('git', '-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', sha);
}

/** The commit `dir` is at; fails when it is not a checkout. */
export function head(dir: string): string {
  return sh`git -C ${dir} rev-parse HEAD 2>/dev/null`;
}

/** Succeeds when the repository has `sha` as a commit (not only as some object). */
export function hasCommit(sha: string): string {
  return argv('git', 'cat-file', '-e', `${sha}^{commit}`);
}

/**
 * Prints the name (after `refs/remotes/<remote>/`) of `branchRef` when it contains `sha`, nothing
 * when it does not. Run in the checkout.
 */
export function branchContains(sha: string, branchRef: string): string {
  return sh`git for-each-ref --contains ${sha} --format='%(refname:strip=3)' ${branchRef}`;
}

const WORKTREE_ADD = fs.readFileSync(__dirname + '/worktree-add.sh', 'utf8');

/** Makes `dir` a detached worktree of `checkout` at `sha`, replacing what was there. */
export function addWorktree(checkout: string, dir: string, sha: string): string {
  const parent = dir.slice(0, dir.lastIndexOf('/')) || '/';
  return hostScript(WORKTREE_ADD, { CHECKOUT: checkout, DIR: dir, PARENT: parent, SHA: sha });
}

const WORKTREE_REMOVE = fs.readFileSync(__dirname + '/worktree-remove.sh', 'utf8');

/** Removes the worktree `dir` of `checkout` (or whatever is there) and forgets it in the checkout. */
export function removeWorktree(checkout: string, dir: string): string {
  return hostScript(WORKTREE_REMOVE, { CHECKOUT: checkout, DIR: dir });
}
