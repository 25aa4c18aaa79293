#!/usr/bin/env bash
# Once the lock's flock is held, the rest of taking it in one round trip (src/domain/lock.ts, acquire):
# whether remote work of earlier runs still holds the busy file $BUSY_FILE (as busy-work.sh says it,
# IDLE or BUSY, then one line per live process group recorded in $ENTRIES_DIR); when none does, the
# line $MARKER, the holder file $FILE as it was (one left there is the trace of a run that died
# holding the lock), and this run's holder, read on standard input, written in its place
# (atomically: $TMP, then moved). When BUSY nothing is written.
# shellcheck disable=SC2174 # only the entries directory itself is new: its parent is the lock directory
mkdir -p -m 700 "$ENTRIES_DIR" && touch "$BUSY_FILE" || exit 1
if flock -x -n "$BUSY_FILE" true; then idle=1; echo IDLE; else idle=0; echo BUSY; fi
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
[ "$idle" = 1 ] || exit 0
printf '%s\n' "$MARKER"
if [ -f "$FILE" ]; then cat "$FILE"; fi
# shellcheck disable=SC2015 # the clean-up is meant to run when any step of the chain fails
umask 077 && cat >"$TMP" && chmod 600 "$TMP" && mv -f "$TMP" "$FILE" || {
  s=$?
  rm -f "$TMP"
  exit "$s"
}
