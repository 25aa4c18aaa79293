#!/usr/bin/env bash
# The nodes a stack's tasks run on (src/infra/swarm.ts, stackNodes): the manager's own hostname on
# the first line, then the hostname of each node with a task of $STACK that should run, once each.
# A task the scheduler has not placed yet names no node.
here=$(docker node inspect self --format '{{.Description.Hostname}}') || exit
printf '%s\n' "$here"
docker stack ps --filter desired-state=running --format '{{.Node}}' "$STACK" | grep -v '^$' | sort -u
