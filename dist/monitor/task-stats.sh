#!/usr/bin/env bash
# One stack's task containers on this node for the monitor (src/actions/monitor/monitor.ts reads
# it), as container-stats.sh does for a compose project: `docker stats` of the running ones (JSON
# lines), a line $SPLIT, then `docker inspect` of the same ones, or []. Only running containers:
# the engine keeps the containers of the tasks it replaced, and restarts a failed task itself.
# $STACK_FILTER is the stack's `label=` filter (src/infra/swarm.ts).
# shellcheck disable=SC2086 # $running is container ids, one a word
running=$(docker ps -q --filter "$STACK_FILTER") &&
  if [ -n "$running" ]; then docker stats --no-stream --format '{{json .}}' $running; fi && echo "$SPLIT" &&
  if [ -n "$running" ]; then docker inspect $running; else echo '[]'; fi
