#!/usr/bin/env bash
# What a release directory needs, in one round trip (src/domain/git.ts, ensureReleaseDir): `missing
# <file>` for each argument not found in the checkout $CHECKOUT, `link <dir>` when $RELEASES or
# $ENV_ROOT is a symlink, then the commit the directory $DIR is at (nothing when it is not a checkout).
for f in "$@"; do [ -e "$CHECKOUT/$f" ] || echo "missing $f"; done
for d in "$RELEASES" "$ENV_ROOT"; do [ ! -L "$d" ] || echo "link $d"; done
git -C "$DIR" rev-parse HEAD 2>/dev/null
