#!/usr/bin/env bash
# Prints the VPS's clock and the mtime of $FILE (a completed WAL segment: when the receiver finished
# it), in epoch seconds on one line (src/domain/wal-offsite.ts, offsitePoint). Fails when it is gone.
set -eu
now=$(date +%s)
mtime=$(stat -c %Y -- "$FILE")
printf '%s %s\n' "$now" "$mtime"
