#!/usr/bin/env bash
# Removes a point-in-time recovery's scratch server ($NAME) and directory ($SCRATCH)
# (src/domain/pitr.ts). The directory's contents belong to the image's postgres user, so a
# throwaway container of the same image ($IMAGE) deletes them; the directory itself is in one of
# the SSH user's own.
set -eu
docker rm -f "$NAME" >/dev/null 2>&1 || true
[ -d "$SCRATCH" ] || exit 0
docker run --rm --network none --user 0:0 -v "$SCRATCH:/pitr" --entrypoint find "$IMAGE" /pitr -mindepth 1 -delete
rm -rf "$SCRATCH"
