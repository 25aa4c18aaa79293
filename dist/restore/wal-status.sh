#!/usr/bin/env bash
# What the WAL archive holds and whether its receiver runs, one fact a line:
#   now <epoch seconds>
#   receiver <running|restarting|exited|...|absent> <started at>
#   segment <mtime epoch> <bytes> <name>   the newest completed segment, when there is one
#   partial <mtime epoch> <bytes> <name>   the segment being received, when there is one
# $DIR is the WAL directory, $NAME the receiver container.
set -u
echo "now $(date +%s)"
state=$(docker inspect --type container --format '{{.State.Status}} {{.State.StartedAt}}' "$NAME" 2>/dev/null) || state=absent
echo "receiver $state"
[ -d "$DIR" ] || exit 0
newest() { find "$DIR" -maxdepth 1 -type f -name "$1" -printf '%T@ %s %f\n' | sort -n | tail -n 1; }
s=$(newest '????????????????????????') && [ -n "$s" ] && echo "segment $s"
p=$(newest '????????????????????????.partial') && [ -n "$p" ] && echo "partial $p"
exit 0
