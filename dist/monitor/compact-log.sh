#!/usr/bin/env bash
# Archives the host log $FILE whole to $ARCHIVE (gzip), then replaces it with standard input (the
# records kept); each file is written under a temporary name and renamed into place, and nothing
# after a failed step runs. Parameters are set in front by src/domain/host-log.ts.
gzip -c "$FILE" >"$ARCHIVE.tmp" && mv -f "$ARCHIVE.tmp" "$ARCHIVE" && cat >"$FILE.tmp" && mv -f "$FILE.tmp" "$FILE"
