#!/usr/bin/env bash
# Settles what an interrupted `compose up` left of a recreate (src/infra/docker.ts, settleRecreate).
# compose v2 recreates a container by creating the new one as `<first 12 of the old id>_<name>`,
# stopping and removing the old one, then renaming the new one to <name>. Cut in between (a cancel,
# a lost connection), the next `up` trips over the pair ("Error when allocating new name: Conflict").
# For each such container of the project ($PROJECT_LABEL): while the old one still holds <name>,
# the half-made new one is removed (the old one is what ran); when nothing holds <name> any more,
# the new one is given it (compose's own last step). Anything else is left alone. One line per change.
docker ps -a --filter "$PROJECT_LABEL" --format '{{.ID}} {{.Names}}' | while read -r id name; do
  prefix=${name%%_*}
  canonical=${name#*_}
  [[ $name == *_* && $prefix =~ ^[0-9a-f]{12}$ && -n $canonical ]] || continue
  if holder=$(docker container inspect --format '{{.Id}}' "$canonical" 2>/dev/null); then
    [[ $holder == "$prefix"* ]] || continue
    docker rm -f "$id" >/dev/null && printf 'removed %s, the unfinished new container of a recreate of %s\n' "$name" "$canonical"
  else
    docker rename "$id" "$canonical" && printf 'renamed %s to %s, finishing a recreate\n' "$name" "$canonical"
  fi
done
