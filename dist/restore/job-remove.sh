#!/usr/bin/env bash
# Removes the one-off job $SERVICE (src/infra/swarm.ts, jobRemove), stopping its live task first:
# engine 20.10 removes a replicated job without stopping the container of a task still running.
# A new iteration of the job, constrained to no node, makes the engine stop the old iteration's
# task (after its stop grace period); once it has stopped, the job goes. No such job: nothing to do.
tasks=$(docker service ps --no-trunc --format '{{.ID}} {{.CurrentState}}' "$SERVICE" 2>/dev/null) || exit 0
live=()
while read -r id state _; do
  case "$state" in New | Allocated | Pending | Assigned | Accepted | Preparing | Ready | Starting | Running) live+=("$id") ;; esac
done <<<"$tasks"
if [ "${#live[@]}" -gt 0 ]; then
  docker service update --quiet --detach --constraint-add node.id==twinstack-job-removed "$SERVICE" >/dev/null || exit
  for id in "${live[@]}"; do
    while s=$(docker inspect --type task --format '{{.Status.State}}' "$id" 2>/dev/null); do
      case "$s" in new | allocated | pending | assigned | accepted | preparing | ready | starting | running) sleep 1 ;; *) break ;; esac
    done
  done
fi
docker service rm "$SERVICE" >/dev/null
