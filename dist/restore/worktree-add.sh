#!/usr/bin/env bash
# Makes $DIR a detached worktree of the checkout $CHECKOUT at commit $SHA, replacing whatever was
# there ($PARENT is the directory it goes in, made when missing). Parameters are set in front by
# src/infra/git.ts.
git -C "$CHECKOUT" worktree remove --force "$DIR" 2>/dev/null
rm -rf "$DIR"
git -C "$CHECKOUT" worktree prune && mkdir -p "$PARENT" && git -C "$CHECKOUT" worktree add --force --detach "$DIR" "$SHA" >/dev/null
