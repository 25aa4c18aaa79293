#!/usr/bin/env bash
# Encrypts one backup file for the off-host copy (src/domain/offsite.ts): $ENCRYPT (the age command
# twinstack built) writes $SEALED from $PLAIN under umask 077; then prints the sha256 lines of
# $PLAIN and $SEALED, then their sizes, one a line. Nothing after a failed step runs.
umask 077 && eval "$ENCRYPT" && sha256sum -- "$PLAIN" "$SEALED" && stat -c %s -- "$PLAIN" "$SEALED"
