#!/usr/bin/env bash
# Prints the host log $FILE whole (nothing when there is none yet; src/domain/host-log.ts). A log
# of more than $MAX_BYTES bytes is never read in part: its size goes to stderr and the exit status
# is $TOO_BIG. Parameters are set in front by host-log.ts.
if [ -f "$FILE" ]; then
  size=$(wc -c <"$FILE") || exit 1
  if [ "$size" -gt "$MAX_BYTES" ]; then
    echo "$size" >&2
    exit "$TOO_BIG"
  fi
  cat "$FILE"
fi
