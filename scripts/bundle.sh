#!/usr/bin/env bash
# Writes the connection inputs into every action.yml, then rebuilds action-types.d.ts (read from
# those files) and one ncc bundle per action in dist/<name>/index.js.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsx scripts/action-inputs.ts
npx tsx scripts/action-types.ts
rm -rf dist
for dir in actions/*/; do
  name=$(basename "$dir")
  [ -f "src/actions/$name/index.ts" ] || { echo "actions/$name has no src/actions/$name/index.ts" >&2; exit 1; }
  npx ncc build "src/actions/$name/index.ts" -o "dist/$name" --quiet --no-source-map-register --license licenses.txt
  # PostgreSQL's parser (libpg-query) is WebAssembly that its loader reads from beside the bundle.
  cp node_modules/libpg-query/wasm/libpg-query.wasm "dist/$name/"
  # Host scripts and SQL live in files of their own, read beside the module that uses them
  # (`__dirname + '/x.sh'`). ncc relocates some of those reads and leaves others as they are; every
  # file the bundle reads is copied beside it here, so none is missing at run time.
  grep -oE "(__dirname \+ '/|__nccwpck_require__\.ab \+ \")[A-Za-z0-9_.-]+\.(sh|sql)" "dist/$name/index.js" | sed -E "s/.*[\"'/]//" | sort -u |
    while read -r asset; do
      [ -f "dist/$name/$asset" ] && continue
      found=$(find src -name "$asset" -type f)
      [ "$(printf '%s\n' "$found" | grep -c .)" = 1 ] || { echo "dist/$name reads $asset, found ${found:-nowhere} in src (it must be exactly one file)" >&2; exit 1; }
      cp "$found" "dist/$name/$asset"
    done
done
echo "bundled: $(find dist -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort | tr '\n' ' ')"
