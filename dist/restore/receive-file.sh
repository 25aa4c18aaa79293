#!/usr/bin/env bash
# Writes standard input to $FILE, a new file in a private staging directory on the VPS
# (src/domain/offsite-restore.ts: a decrypted off-host copy, streamed from the runner), and
# prints the sha256 of what it wrote, so the runner compares it with the upload record.
set -eu
umask 077
tee "$FILE" | sha256sum
