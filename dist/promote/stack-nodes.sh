#!/usr/bin/env bash
# The nodes a stack's tasks run on (src/infra/swarm.ts, stackNodes): the manager's own hostname on
# the first line, then the hostname of each node with a task of $STACK that should run, once each.
# A task the scheduler has not placed yet names no node. A stack with no such task (not deployed,
# or scaled to 0: `docker stack ps` then says "Nothing found in stack", failing or not) has only the first line.
here=$(docker node inspect self --format '{{.Description.Hostname}}') || exit
printf '%s\n' "$here"
# Its standard error with its output, to tell "nothing found" from a failure; a hostname has no space.
if ! out=$(docker stack ps --filter desired-state=running --format '{{.Node}}' "$STACK" 2>&1); then
  case $out in
    *[Nn]"othing found in stack"*) exit 0 ;;
    *)
      printf '%s\n' "$out" >&2
      exit 1
      ;;
  esac
fi
printf '%s\n' "$out" | grep -vE '^$|[[:space:]]' | sort -u || true
