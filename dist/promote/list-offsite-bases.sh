#!/usr/bin/env bash
# Lists the base backups under $BASE on the backup host (src/domain/wal-offsite-retention.ts), run
# with the admin key: for each <stamp> directory a line `@@ <stamp> complete <ctime>` followed by its
# upload.json, or `@@ <stamp> partial 0` when that record is missing (a push cut short). ctime is the
# backup host's own clock (when the record arrived), which the VPS cannot set. Nothing when $BASE is missing.
cd "$BASE" 2>/dev/null || exit 0
for d in */; do
  [ -d "$d" ] || continue
  s=${d%/}
  if [ -f "$s/upload.json" ]; then
    echo "@@ $s complete $(stat -c %Z -- "$s/upload.json")"
    cat -- "$s/upload.json"
  else
    echo "@@ $s partial 0"
  fi
done
