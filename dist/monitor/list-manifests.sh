#!/usr/bin/env bash
# Prints every backup manifest under $BASE (src/domain/backup.ts, listBackups), each followed by a
# line @@twinstack-manifest@@; nothing when there is none.
for f in "$BASE"/b*/manifest.json; do [ -f "$f" ] && cat "$f" && echo '@@twinstack-manifest@@'; done
true
