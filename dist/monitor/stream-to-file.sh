#!/usr/bin/env bash
# Streams the output of $COMMAND (a client tool's command line twinstack built) into $FILE,
# through $PARTIAL until it is whole, hashing it on the way (src/domain/backup.ts). Prints the
# sha256 line, then the file's size; pipefail (set by the host) makes a failed tool fail it all.
eval "$COMMAND" | tee "$PARTIAL" | sha256sum && mv -f "$PARTIAL" "$FILE" && stat -c %s "$FILE"
