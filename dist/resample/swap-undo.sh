#!/usr/bin/env bash
# The body of resample's swap undo (src/resample/swap.ts, swapUndoScript): a file left on the host
# while dev's databases are being swapped, run by the next operation on dev if the run was cut (bash
# -e, see undoPending in src/domain/operation.ts). It only acts while $PREVIOUS (dev's own database,
# set aside) exists: the half-swapped $DEV goes back to $STAGING, $PREVIOUS takes dev's name again
# and $STAGING is dropped. Then the app services stopped for the swap start again.
#   PSQL, PSQL_TUPLES   psql on dev's maintenance database (a command twinstack built), reading SQL
#                       from standard input; PSQL_TUPLES prints rows unaligned
#   DROP_STAGING, DEV_TO_STAGING, PREVIOUS_TO_DEV   the SQL of each step
#   RESTART_DIR, RESTART_PROJECT, RESTART           the compose command that starts the app ('' for none)
dbs=$(printf '%s' 'SELECT datname FROM pg_database;' | eval "$PSQL_TUPLES")
has() { printf '%s\n' "$dbs" | grep -qxF -- "$1"; }
sql() { printf '%s' "$1" | eval "$PSQL"; }
if has "$PREVIOUS"; then
  if has "$DEV"; then
    if has "$STAGING"; then sql "$DROP_STAGING"; fi
    sql "$DEV_TO_STAGING"
  fi
  sql "$PREVIOUS_TO_DEV"
  sql "$DROP_STAGING"
fi
if [ -n "$RESTART" ]; then
  cd "$RESTART_DIR" && COMPOSE_PROJECT_NAME=$RESTART_PROJECT eval "$RESTART"
fi
