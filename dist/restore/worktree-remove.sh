#!/usr/bin/env bash
# Removes the worktree $DIR of the checkout $CHECKOUT (or whatever is there) and forgets it in the
# checkout; the exit status is the prune's. Parameters are set in front by src/infra/git.ts.
git -C "$CHECKOUT" worktree remove --force "$DIR" 2>/dev/null
rm -rf "$DIR"
git -C "$CHECKOUT" worktree prune
