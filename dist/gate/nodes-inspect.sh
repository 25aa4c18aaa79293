#!/usr/bin/env bash
# `docker node inspect` of every node of the swarm (src/infra/swarm.ts, inspectNodes): the labels
# that place each environment's tasks are only in the inspect output, not in `docker node ls`.
ids=$(docker node ls -q) || exit
if [ -z "$ids" ]; then
  echo '[]'
  exit 0
fi
# Word splitting on purpose: one node id per line.
# shellcheck disable=SC2086
docker node inspect $ids
