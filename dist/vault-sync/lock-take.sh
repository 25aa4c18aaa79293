#!/usr/bin/env bash
# Takes an environment's lock (src/domain/lock.ts, acquire): makes its directory $DIR, then waits up
# to $WAIT seconds for the flock of $LOCK_FILE (exit $TIMEOUT_EXIT when it did not come) and, once it
# holds it, prints $ACQUIRED and keeps it until its standard input closes.
# shellcheck disable=SC2174 # only the environment's directory is new: its parent is the state directory
mkdir -p -m 700 "$DIR" || exit 1
# shellcheck disable=SC2016 # $1 is the inner shell's own argument
exec flock -w "$WAIT" -E "$TIMEOUT_EXIT" "$LOCK_FILE" bash -c 'echo "$1"; exec cat >/dev/null' _ "$ACQUIRED"
