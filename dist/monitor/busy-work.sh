#!/usr/bin/env bash
# Whether remote work of earlier runs still holds an environment's busy file (src/domain/lock.ts).
# Prints IDLE or BUSY, then one line per live process group recorded in $ENTRIES_DIR:
# `<process group><TAB><its entry, JSON>`; the entries of dead groups are removed.
# $BUSY_FILE is the busy file. Parameters are set in front by lock.ts. It leaves $idle set (1 or 0;
# unset when the directory could not be made) for lock-claim.sh, which lock.ts may send after it.
# shellcheck disable=SC2174 # only the entries directory itself is new: its parent is the lock directory
# shellcheck disable=SC2034 # idle is read by lock-claim.sh when it follows this script
mkdir -p -m 700 "$ENTRIES_DIR" && touch "$BUSY_FILE" && if flock -x -n "$BUSY_FILE" true; then idle=1; echo IDLE; else idle=0; echo BUSY; fi
for f in "$ENTRIES_DIR"/*.json; do
  [ -e "$f" ] || continue
  pg=${f##*/}
  pg=${pg%.json}
  if kill -0 -- "-$pg" 2>/dev/null; then
    printf '%s\t' "$pg"
    head -c 2000 "$f"
  else
    rm -f "$f"
  fi
done
