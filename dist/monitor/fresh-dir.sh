#!/usr/bin/env bash
# Makes $DIR an empty directory that only its owner may read (src/domain/offsite.ts): whatever was
# there is removed first, and the directories made are 0700.
umask 077 && rm -rf "$DIR" && mkdir -p "$DIR"
