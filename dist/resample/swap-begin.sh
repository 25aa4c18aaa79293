#!/usr/bin/env bash
# The start of resample's swap in one round trip (src/resample/swap.ts, swapIn): the undo script
# $UNDO is written to $MARKER first (atomically: $TMP, then moved into place), and only once it is
# there does one psql session run the renames it reads on standard input (dev's database aside,
# staging into its place), stopping at the first error. Exit 5: the undo could not be written and no
# database moved. Any other failure: the session stopped somewhere in the renames, with the undo
# in place; the caller reads from the server where it stopped.
#   MARKER, DIR, TMP   the undo's path, its directory, its temporary name
#   UNDO               the undo script (see swap-undo.sh)
#   PSQL               psql on dev's maintenance database (a command twinstack built)
# shellcheck disable=SC2015 # the clean-up is meant to run when any step of the chain fails
umask 077 && mkdir -p "$DIR" && printf '%s' "$UNDO" >"$TMP" && chmod 600 "$TMP" && mv -f "$TMP" "$MARKER" || {
  rm -f "$TMP"
  exit 5
}
eval "$PSQL"
