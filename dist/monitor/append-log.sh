#!/usr/bin/env bash
# Appends the record $LINE (one JSON line) to the host log $FILE in its directory $DIR (made when
# missing): one `>>` write, so a concurrent reader never sees half a record. Parameters are set in
# front by src/domain/host-log.ts.
# shellcheck disable=SC2174 # only the environment's directory is new: its parent is the state directory
mkdir -p -m 700 "$DIR" && printf '%s\n' "$LINE" >>"$FILE"
