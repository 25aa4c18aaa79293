#!/usr/bin/env bash
# Deletes the WAL segments in $DIR older than $START, the segment the oldest kept base backup starts
# from (src/domain/wal-retention.ts), and prints the name of each one it deleted, one a line.
# Segments compare by their log and segment numbers (the last 16 hex digits), whatever their
# timeline, as pg_archivecleanup compares them. Never deleted: the newest segment, a .partial, a
# .history file, anything not named like a completed segment. Names are read NUL-separated.
set -euo pipefail
if [[ ! $START =~ ^[0-9A-F]{24}$ ]]; then
  echo "wal-prune: START is not a WAL segment name" >&2
  exit 2
fi
cd -- "$DIR"
segments=()
while IFS= read -r -d '' f; do
  segments+=("${f#./}")
done < <(find . -mindepth 1 -maxdepth 1 -type f -regextype posix-extended -regex '\./[0-9A-F]{24}' -print0)
newest=''
for f in "${segments[@]}"; do
  if [[ -z $newest || ${f:8} > ${newest:8} || (${f:8} == "${newest:8}" && $f > $newest) ]]; then newest=$f; fi
done
for f in "${segments[@]}"; do
  [[ $f == "$newest" ]] && continue
  if [[ ${f:8} < ${START:8} ]]; then
    rm -f -- "$f"
    printf '%s\n' "$f"
  fi
done
