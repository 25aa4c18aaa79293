#!/usr/bin/env bash
# Fails when dist/ or action-types.d.ts differ from what `npm run bundle` makes of the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bundle.sh >/dev/null
changes=$(git status --porcelain -- dist action-types.d.ts)
if [ -n "$changes" ]; then
  echo "dist/ or action-types.d.ts is stale; run 'npm run bundle' and commit the result:" >&2
  echo "$changes" >&2
  exit 1
fi
echo "dist/ and action-types.d.ts match the sources"
