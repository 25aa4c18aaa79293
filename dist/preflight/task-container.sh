#!/usr/bin/env bash
# Prints the id of one running container of a stack service's task on this node (the manager
# twinstack reaches). $STACK_FILTER and $SERVICE_FILTER are `label=` filters (src/infra/swarm.ts),
# $SERVICE the swarm service's name. When none runs here, it says on standard error where the
# service's running tasks are, and exits 3: this version reaches only the manager's node.
c=$(docker ps -q --filter "$STACK_FILTER" --filter "$SERVICE_FILTER") || exit
if [ -n "$c" ]; then
  printf '%s\n' "${c%%$'\n'*}"
  exit 0
fi
here=$(docker node inspect self --format '{{.Description.Hostname}}' 2>/dev/null)
elsewhere=$(docker service ps --filter desired-state=running --format '{{.Node}}' "$SERVICE" 2>/dev/null | sort -u | grep -vxF -- "${here:-}" | tr '\n' ' ')
if [ -n "$elsewhere" ]; then
  echo "service $SERVICE runs its task on node ${elsewhere% }, not on the manager's node${here:+ ($here)}: this version of twinstack reaches only the manager's node; constrain the service to it" >&2
else
  echo "no running task of service $SERVICE on the manager's node${here:+ ($here)}; deploy the environment first" >&2
fi
exit 3
