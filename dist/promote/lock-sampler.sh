#!/usr/bin/env bash
# The rehearsal's pg_locks sampler (src/domain/rehearsal.ts): one psql session ($PSQL, a command
# twinstack built) fed the query $SAMPLE every 100 ms until the file $STOP_FILE appears.
while [ ! -e "$STOP_FILE" ]; do
  printf '%s\n' "$SAMPLE"
  sleep 0.1
done | eval "$PSQL"
