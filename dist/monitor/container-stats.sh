#!/usr/bin/env bash
# One compose project's containers for the monitor (src/actions/monitor/monitor.ts reads it):
# `docker stats` of the running ones (JSON lines), a line $SPLIT, then `docker inspect` of all of
# them, or []. $PROJECT_LABEL is the project's `label=` filter (src/infra/docker.ts).
# shellcheck disable=SC2086 # $running and $all are container ids, one a word
running=$(docker ps -q --filter "$PROJECT_LABEL") && all=$(docker ps -aq --filter "$PROJECT_LABEL") &&
  if [ -n "$running" ]; then docker stats --no-stream --format '{{json .}}' $running; fi && echo "$SPLIT" &&
  if [ -n "$all" ]; then docker inspect $all; else echo '[]'; fi
