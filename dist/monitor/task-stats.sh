#!/usr/bin/env bash
# One stack's task containers on one engine for the monitor (src/actions/monitor/monitor.ts reads
# it), as container-stats.sh does for a compose project: `docker stats` of the running ones (JSON
# lines), a line $SPLIT, then `docker inspect` of the same ones, or []. Only running containers:
# the engine keeps the containers of the tasks it replaced, and restarts a failed task itself.
# $STACK_FILTER is the stack's `label=` filter (src/infra/swarm.ts); $DOCKER_ENDPOINT, when set,
# the engine of the node to read (`docker -H`, config swarm.nodes), else this node's.
docker=(docker)
[ -z "${DOCKER_ENDPOINT:-}" ] || docker+=(-H "$DOCKER_ENDPOINT")
# shellcheck disable=SC2086 # $running is container ids, one a word
running=$("${docker[@]}" ps -q --filter "$STACK_FILTER") &&
  if [ -n "$running" ]; then "${docker[@]}" stats --no-stream --format '{{json .}}' $running; fi && echo "$SPLIT" &&
  if [ -n "$running" ]; then "${docker[@]}" inspect $running; else echo '[]'; fi
