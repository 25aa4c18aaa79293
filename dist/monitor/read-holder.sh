#!/usr/bin/env bash
# Prints the lock holder file $FILE (src/domain/lock.ts), nothing when there is none.
if [ -f "$FILE" ]; then cat "$FILE"; fi
