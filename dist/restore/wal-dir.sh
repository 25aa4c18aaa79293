#!/usr/bin/env bash
# Makes the WAL directory $DIR (0700, the login user's) and writes the .pgpass file the WAL tools
# read, from standard input, only when it differs: a second ensure changes nothing.
set -eu
umask 077
mkdir -p "$DIR"
chmod 700 "$DIR"
cat >"$DIR/.pgpass.new"
if cmp -s "$DIR/.pgpass.new" "$DIR/.pgpass"; then rm -f "$DIR/.pgpass.new"; else mv -f "$DIR/.pgpass.new" "$DIR/.pgpass"; fi
