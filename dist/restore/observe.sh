#!/usr/bin/env bash
# What an environment runs, in one round trip (src/domain/state.ts reads it): three parts, each
# after a line $SEP but the first.
#   1. the HEAD commit of the checkout $CHECKOUT (nothing when it cannot be read)
#   2. `docker inspect` of every container of the compose project ($PROJECT_LABEL), or []
#   3. where those containers were started from, outside the checkout: `<dir><TAB><its HEAD>`, the
#      HEAD being `missing` when the directory is gone ($WORKING_DIR is compose's label for it)
# Parameters are set in front by state.ts.
git -C "$CHECKOUT" rev-parse --verify --quiet HEAD 2>/dev/null || true
echo "$SEP"
# shellcheck disable=SC2086 # $ids is container ids, one a word
ids=$(docker ps -aq --filter "$PROJECT_LABEL") && if [ -n "$ids" ]; then docker inspect $ids; else echo '[]'; fi
echo "$SEP"
# The checkout without its trailing slashes, as the labels write it.
co=${CHECKOUT%"${CHECKOUT##*[!/]}"}
# shellcheck disable=SC2086
[ -z "$ids" ] || docker inspect --format "{{index .Config.Labels \"$WORKING_DIR\"}}" $ids | sort -u |
  while IFS= read -r d; do
    case "$d" in '' | "$co" | "$co"/*) continue ;; esac
    if [ -d "$d" ]; then h=$(git -C "$d" rev-parse --verify --quiet HEAD 2>/dev/null); else h=missing; fi
    printf '%s\t%s\n' "$d" "$h"
  done
