#!/usr/bin/env bash
# Once the lock's flock is held, the rest of taking it in one round trip (src/domain/lock.ts, acquire).
# Sent after busy-work.sh, as one script: that says whether remote work of earlier runs still holds
# the busy file (IDLE or BUSY, then one line per live process group); when none does, this prints the
# line $MARKER, the holder file $FILE as it was (one left there is the trace of a run that died
# holding the lock), and this run's holder, read on standard input, written in its place
# (atomically: $TMP, then moved). When BUSY nothing is written.
# shellcheck disable=SC2154 # idle is set by busy-work.sh, sent in front of this script
[ -n "${idle:-}" ] || exit 1
[ "$idle" = 1 ] || exit 0
printf '%s\n' "$MARKER"
if [ -f "$FILE" ]; then cat "$FILE"; fi
# shellcheck disable=SC2015 # the clean-up is meant to run when any step of the chain fails
umask 077 && cat >"$TMP" && chmod 600 "$TMP" && mv -f "$TMP" "$FILE" || {
  s=$?
  rm -f "$TMP"
  exit "$s"
}
