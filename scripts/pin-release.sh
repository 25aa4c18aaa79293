#!/usr/bin/env bash
# Pins the reusable workflows' inner actions to one commit, for a release. A movable ref (@v1)
# inside a reusable workflow would let whoever moves that ref change what prod's jobs run; a
# commit sha cannot move. Usage: scripts/pin-release.sh [<commit>] [<workflows dir>]
#   1. commit the release's code; 2. run this (default: HEAD); 3. commit the pinned workflows;
#   4. tag that commit (v1.x.y) and move v1 to it.
set -euo pipefail
cd "$(dirname "$0")/.."
sha=$(git rev-parse --verify "${1:-HEAD}^{commit}")
dir=${2:-.github/workflows}
changed=0
for f in "$dir"/*.yml; do
  before=$(cat "$f")
  sed -E -i "s#(uses: [A-Za-z0-9_.-]+/twinstack/actions/[A-Za-z0-9_-]+)@[A-Za-z0-9_.-]+#\\1@${sha}#g" "$f"
  [ "$before" = "$(cat "$f")" ] || changed=$((changed + 1))
done
echo "pinned the inner actions of ${changed} workflow file(s) to ${sha}"
