#!/bin/sh
# Prints the commit $REF names (src/infra/git.ts, resolveCommit), in this order: the branch of that
# name on $REMOTE, a tag, anything else git resolves (a sha). Exits non-zero when none does. Run in
# the checkout.
git rev-parse --verify --quiet "refs/remotes/$REMOTE/$REF^{commit}" ||
  git rev-parse --verify --quiet "refs/tags/$REF^{commit}" ||
  git rev-parse --verify --quiet "$REF^{commit}"
