#!/usr/bin/env bash
# The body of the file resample leaves on the host once dev's swap has passed (src/resample/swap.ts):
# the next operation on dev runs it if this run was cut before it dropped the database dev had
# before. $DROP is that SQL, $PSQL psql on dev's maintenance database (a command twinstack built).
printf '%s' "$DROP" | eval "$PSQL"
