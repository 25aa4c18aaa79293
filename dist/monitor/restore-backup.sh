#!/usr/bin/env bash
# Restores a backup as the environment's database (src/domain/backup.ts, restoreBackup): the undo
# ($UNDO) is left at $MARKER in $PENDING_DIR before anything moves; the database is set aside
# ($SET_ASIDE, its rename the last statement: if anything before it fails, nothing was moved, exit
# 3), a new one is created ($CREATE), the dump restored into it ($RESTORE), the settings copied ($SETTINGS) and the restore's tag removed ($UNTAG). If any
# step after the set-aside fails, or the run is stopped, the database $DB is put back ($PUT_BACK).
# The marker goes once the database is in either state. $PSQL is psql on the maintenance database;
# it and $RESTORE are commands twinstack built.
set -e
# shellcheck disable=SC2174 # only the pending directory itself is new: its parent is the environment's state directory
mkdir -p -m 700 "$PENDING_DIR"
printf '%s' "$UNDO" >"$MARKER.tmp" && mv -f "$MARKER.tmp" "$MARKER"
if ! printf '%s' "$SET_ASIDE" | eval "$PSQL"; then
  rm -f "$MARKER"
  exit 3
fi
ok=0
put_back() {
  if [ "$ok" != 1 ]; then
    echo "restore failed: putting $DB back" >&2
    printf '%s' "$PUT_BACK" | eval "$PSQL" && rm -f "$MARKER"
  fi
}
trap put_back EXIT
trap 'exit 143' TERM INT HUP
printf '%s' "$CREATE" | eval "$PSQL"
eval "$RESTORE"
printf '%s' "$SETTINGS" | eval "$PSQL"
printf '%s' "$UNTAG" | eval "$PSQL"
ok=1
rm -f "$MARKER"
