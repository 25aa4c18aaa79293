#!/usr/bin/env bash
# Rebuilds action-types.d.ts and one ncc bundle per action in dist/<name>/index.js.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsx scripts/action-types.ts
rm -rf dist
for dir in actions/*/; do
  name=$(basename "$dir")
  [ -f "src/actions/$name/index.ts" ] || { echo "actions/$name has no src/actions/$name/index.ts" >&2; exit 1; }
  npx ncc build "src/actions/$name/index.ts" -o "dist/$name" --quiet --no-source-map-register --license licenses.txt
  # PostgreSQL's parser (libpg-query) is WebAssembly that its loader reads from beside the bundle.
  cp node_modules/libpg-query/wasm/libpg-query.wasm "dist/$name/"
done
echo "bundled: $(find dist -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | tr '\n' ' ')"
