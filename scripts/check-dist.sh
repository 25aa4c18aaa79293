#!/usr/bin/env bash
# Fails when an action.yml's connection inputs, dist/ or action-types.d.ts differ from what
# `npm run bundle` makes of the sources.
set -euo pipefail
cd "$(dirname "$0")/.."
# Before the bundle rewrites them: one line per action.yml naming the input that was edited by hand.
npx tsx scripts/action-inputs.ts --check
bash scripts/bundle.sh >/dev/null
changes=$(git status --porcelain -- actions dist action-types.d.ts)
if [ -n "$changes" ]; then
  echo "actions/, dist/ or action-types.d.ts is stale; run 'npm run bundle' and commit the result:" >&2
  echo "$changes" >&2
  exit 1
fi
echo "action.yml connection inputs, dist/ and action-types.d.ts match the sources"
