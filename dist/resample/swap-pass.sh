#!/usr/bin/env bash
# The end of resample's swap in one round trip (src/resample/swap.ts, swapIn), once dev runs on the
# sample: the finish script $FINISH replaces the undo at $MARKER (atomically: $TMP, then moved into
# place), runs as the next operation on dev would run it, and is removed once it has run through.
# Exit 5: it could not be written (the undo is still there). Exit 6: it failed (the database dev had
# before was not dropped); it stays for the next operation on dev.
#   MARKER, DIR, TMP   the pending file's path, its directory, its temporary name
#   FINISH             the finish script (see swap-finish.sh)
# shellcheck disable=SC2015 # the clean-up is meant to run when any step of the chain fails
umask 077 && mkdir -p "$DIR" && printf '%s' "$FINISH" >"$TMP" && chmod 600 "$TMP" && mv -f "$TMP" "$MARKER" || {
  rm -f "$TMP"
  exit 5
}
bash -o pipefail -e "$MARKER" || exit 6
rm -f "$MARKER"
