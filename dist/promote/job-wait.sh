#!/usr/bin/env bash
# Waits for the task of the one-off job $SERVICE (src/infra/swarm.ts, jobWait) to end, and prints
# its id. The job has one task and never restarts it; the caller's time limit bounds the wait.
while :; do
  line=$(docker service ps --no-trunc --format '{{.ID}} {{.CurrentState}}' "$SERVICE") || exit
  line=${line%%$'\n'*}
  case "${line#* }" in
    Complete* | Failed* | Rejected* | Shutdown* | Orphaned* | Remove*)
      printf '%s\n' "${line%% *}"
      exit 0
      ;;
  esac
  sleep 1
done
