#!/usr/bin/env bash
# Lists the copies under $BASE on the backup host (src/domain/offsite.ts, listOffsite), one a line:
# `complete <id>` when its upload.json is there, else `partial <id>`; nothing when $BASE is missing.
cd "$BASE" 2>/dev/null || exit 0
for d in b*/; do
  [ -d "$d" ] || continue
  if [ -f "$d/upload.json" ]; then echo "complete ${d%/}"; else echo "partial ${d%/}"; fi
done
