#!/usr/bin/env bash
# Prints each program named in the arguments that is not installed on the host, one a line
# (src/domain/offsite.ts).
for t in "$@"; do command -v "$t" >/dev/null || echo "$t"; done
