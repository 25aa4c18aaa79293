#!/usr/bin/env bash
# Lists the undo scripts a cut run left in $PENDING_DIR (src/domain/operation.ts), one a line:
# `<file><TAB><its first line>` (the first line says what it undoes).
for f in "$PENDING_DIR"/*.sh; do
  [ -e "$f" ] && printf '%s\t%s\n' "$f" "$(head -n 1 "$f")"
done
true
