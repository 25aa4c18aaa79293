#!/usr/bin/env bash
# Writes standard input to $FILE atomically (src/infra/ssh.ts, SshHost.writeFile): to the
# temporary name $TMP, created under umask 077 in $DIR (made when missing), given the mode $MODE,
# then moved into place, so a reader sees the old file or the whole new one. On any failure the
# temporary file is removed and the exit status is the failed step's.
# shellcheck disable=SC2015 # the clean-up is meant to run when any step of the chain fails
umask 077 && mkdir -p "$DIR" && cat >"$TMP" && chmod "$MODE" "$TMP" && mv -f "$TMP" "$FILE" || {
  s=$?
  rm -f "$TMP"
  exit "$s"
}
