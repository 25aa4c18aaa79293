#!/usr/bin/env bash
# Prints `<id> <endpoint>` of one running container of a stack service's task: on this node (the
# manager twinstack reaches) with an empty endpoint, else on the node of a running task, through
# the endpoint config's swarm.nodes gives for that node's hostname. $STACK_FILTER and
# $SERVICE_FILTER are `label=` filters (src/infra/swarm.ts), $SERVICE the swarm service's name,
# $NODES lines of `<hostname> <endpoint>`. When no container can be reached, it says on standard
# error why (naming a node without an entry and the key to add), and exits 3.
c=$(docker ps -q --filter "$STACK_FILTER" --filter "$SERVICE_FILTER") || exit
if [ -n "$c" ]; then
  printf '%s \n' "${c%%$'\n'*}"
  exit 0
fi
here=$(docker node inspect self --format '{{.Description.Hostname}}' 2>/dev/null)
elsewhere=$(docker service ps --filter desired-state=running --format '{{.Node}}' "$SERVICE" 2>/dev/null | sort -u | grep -vxF -- "${here:-}")
if [ -z "$elsewhere" ]; then
  echo "no running task of service $SERVICE on the manager's node${here:+ ($here)} or any other; deploy the environment first" >&2
  exit 3
fi
unmapped=()
while IFS= read -r node; do
  endpoint=$(awk -v n="$node" '$1 == n { print $2; exit }' <<<"${NODES:-}")
  if [ -z "$endpoint" ]; then
    unmapped+=("$node")
    continue
  fi
  # Its errors kept for the message (ssh's own, such as a host key it does not know, among them).
  if ! out=$(docker -H "$endpoint" ps -q --filter "$STACK_FILTER" --filter "$SERVICE_FILTER" 2>&1); then
    echo "service $SERVICE runs its task on node $node, and the manager could not reach that node's engine at $endpoint (swarm.nodes.$node): $(tail -n 1 <<<"$out")" >&2
    exit 1
  fi
  c=$(grep -m 1 -xE '[0-9a-f]{12,64}' <<<"$out")
  if [ -n "$c" ]; then
    printf '%s %s\n' "$c" "$endpoint"
    exit 0
  fi
done <<<"$elsewhere"
if [ "${#unmapped[@]}" -gt 0 ]; then
  echo "service $SERVICE runs its task on node ${unmapped[0]}, not on the manager's node${here:+ ($here)}, and config has no swarm.nodes.${unmapped[0]}: add it (the Docker endpoint the manager reaches that node's engine by, e.g. ssh://user@${unmapped[0]})" >&2
else
  echo "service $SERVICE has a running task on node(s) $(tr '\n' ' ' <<<"$elsewhere"), but no container of it runs there yet; run again once the task has started" >&2
fi
exit 3
