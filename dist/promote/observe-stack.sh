#!/usr/bin/env bash
# What a stack runs, in one round trip on the swarm's manager (src/domain/state.ts reads it): five
# parts, each after a line $SEP but the first.
#   1. the HEAD commit of the checkout $CHECKOUT (nothing when it cannot be read)
#   2. `docker service inspect` of the stack's services ($STACK_FILTER, a `label=` filter), or []
#   3. `docker service ps` of their tasks, one JSON object a line, digests in full
#   4. `docker inspect` of the stack's task containers on this node, or []
#   5. this node's hostname (which of the tasks' nodes is this one; nothing when unreadable)
# Parameters are set in front by state.ts.
git -C "$CHECKOUT" rev-parse --verify --quiet HEAD 2>/dev/null || true
echo "$SEP"
services=$(docker service ls -q --filter "$STACK_FILTER") || exit
# shellcheck disable=SC2086 # $services and $ids are ids, one a word
if [ -n "$services" ]; then docker service inspect $services || exit; else echo '[]'; fi
echo "$SEP"
# shellcheck disable=SC2086
if [ -n "$services" ]; then docker service ps --no-trunc --format json $services || exit; fi
echo "$SEP"
# shellcheck disable=SC2086
ids=$(docker ps -aq --filter "$STACK_FILTER") && if [ -n "$ids" ]; then docker inspect $ids; else echo '[]'; fi
echo "$SEP"
docker node inspect self --format '{{.Description.Hostname}}' 2>/dev/null || true
