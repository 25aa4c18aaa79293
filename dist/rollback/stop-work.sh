#!/usr/bin/env bash
# Stops the remote work of one operation (src/domain/lock.ts, EnvironmentLock.stopWork): TERM to
# each of its process groups, and to the processes it started with docker exec inside the
# containers of its compose project, then KILL to what is left after $GRACE seconds.
#   OP            the operation id
#   ENTRIES_DIR   where each fenced command wrote its process group (<pgid>.json)
#   BUSY_FILE     the environment's busy file, held (shared) by every fenced command
#   PROJECT_LABEL the compose project's `label=` filter (src/infra/docker.ts)
#   ENDPOINTS     on a swarm, the other nodes' engines (config swarm.nodes), one a line: their task
#                 containers are signalled too (`docker -H`); empty for the host's own engine only
#   SIGNAL_TERM   the in-container script that sends TERM to the operation's docker exec processes,
#   SIGNAL_KILL   and KILL (src/infra/docker.ts, signalExecs: each only while it is the process that wrote its pid file)
# Prints `still-busy` when the busy file is still held after the KILL, then how many groups it stopped.

# An entry is the JSON line twinstack wrote ({"op":"<id>",...}): matched on that exact pair, as fixed text.
groups() {
  for f in "$ENTRIES_DIR"/*.json; do
    [ -e "$f" ] || continue
    grep -qF -- "\"op\":\"$OP\"" "$f" || continue
    pg=${f##*/}
    echo "${pg%.json}"
  done
}
engine() {
  # Another node's engine is bounded by the grace period: an unreachable node must not hold back
  # the KILL of this host's own groups.
  local bound=()
  [ $# -eq 0 ] || bound=(timeout "$GRACE")
  for c in $("${bound[@]}" docker "$@" ps -q --filter "$PROJECT_LABEL" 2>/dev/null); do
    "${bound[@]}" docker "$@" exec "$c" sh -c "$SIGNAL" 2>/dev/null &
  done
}
containers() {
  SIGNAL=$1
  engine
  while IFS= read -r endpoint; do
    [ -z "$endpoint" ] || engine -H "$endpoint" &
  done <<<"${ENDPOINTS:-}"
  wait
}
n=0
for pg in $(groups); do kill -TERM -- "-$pg" 2>/dev/null && n=$((n + 1)); done
containers "$SIGNAL_TERM" >/dev/null
if ! flock -x -w "$GRACE" "$BUSY_FILE" true; then
  for pg in $(groups); do kill -KILL -- "-$pg" 2>/dev/null; done
  containers "$SIGNAL_KILL" >/dev/null
  flock -x -w 2 "$BUSY_FILE" true || echo "still-busy"
fi
# A stopped group's leader may linger until its parent reaps it: its entry goes once it has (or at the next busyWork).
for pg in $(groups); do
  for _ in 1 2 3 4 5; do
    kill -0 -- "-$pg" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 -- "-$pg" 2>/dev/null || rm -f "$ENTRIES_DIR/$pg.json"
done
echo "stopped $n process group(s)"
