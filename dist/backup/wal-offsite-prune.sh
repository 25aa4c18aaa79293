#!/usr/bin/env bash
# Deletes, on the backup host, the sealed WAL segments in $DIR (<segment>.age) older than $START,
# the segment the oldest kept off-host base backup starts from, and the upload records of pushes
# that ended before it (upload-<segment>.json); prints each name it deleted, one a line. Run by the
# runner with the admin key (src/domain/wal-offsite-retention.ts), never from the VPS.
# Segments compare by log and segment number (the last 16 hex digits), as wal-prune.sh does. Only a
# file that arrived no later than $REF (that base backup's upload.json, by the backup host's own
# ctime, which the VPS cannot set) is deleted: a record a stolen VPS wrote cannot reach newer WAL.
set -euo pipefail
if [[ ! $START =~ ^[0-9A-F]{24}$ ]]; then
  echo "wal-offsite-prune: START is not a WAL segment name" >&2
  exit 2
fi
[ -f "$REF" ] || { echo "wal-offsite-prune: $REF is missing" >&2; exit 2; }
cd -- "$DIR" 2>/dev/null || exit 0
while IFS= read -r -d '' f; do
  f=${f#./}
  if [[ $f == upload-* ]]; then seg=${f#upload-}; seg=${seg%.json}; else seg=${f%.age}; fi
  if [[ ${seg:8} < ${START:8} ]]; then
    rm -f -- "$f"
    printf '%s\n' "$f"
  fi
done < <(find . -mindepth 1 -maxdepth 1 -type f -regextype posix-extended -regex '\./([0-9A-F]{24}\.age|upload-[0-9A-F]{24}\.json)' ! -newercc "$REF" -print0)
