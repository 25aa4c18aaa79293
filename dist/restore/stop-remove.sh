#!/usr/bin/env bash
# Stops the containers given as arguments with $DRAIN_SECONDS between SIGTERM and SIGKILL, then
# removes them, even when the stop failed; the exit status is the removal's. Parameters are set in
# front by src/infra/docker.ts.
docker stop -t "$DRAIN_SECONDS" "$@" >/dev/null
docker rm -f "$@" >/dev/null
