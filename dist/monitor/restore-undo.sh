#!/usr/bin/env bash
# The body of the undo of a restore (src/domain/backup.ts, restoreBackup): a file left on the host
# while the database is replaced, run by the next operation on the environment if the run was cut
# (bash -e, see undoPending in src/domain/operation.ts). Only when the database was set aside and
# what holds its name is missing or this restore's unfinished one ($UNDO_CHECK prints 1) does it put
# the database back ($PUT_BACK): an older set-aside copy must never replace a live database. Then
# the services stopped for the restore start again.
#   PSQL, PSQL_TUPLES   psql on the maintenance database (a command twinstack built), reading SQL
#                       from standard input; PSQL_TUPLES prints rows unaligned
#   RESTART_DIR, RESTART_PROJECT, RESTART   the compose command that starts the services ('' for none)
if printf '%s' "$UNDO_CHECK" | eval "$PSQL_TUPLES" | grep -q 1; then printf '%s' "$PUT_BACK" | eval "$PSQL"; fi
if [ -n "$RESTART" ]; then
  cd "$RESTART_DIR" && COMPOSE_PROJECT_NAME=$RESTART_PROJECT eval "$RESTART"
fi
