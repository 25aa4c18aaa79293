#!/usr/bin/env bash
# Runs "$@" in DIR with the environment's variables in its environment (src/infra/swarm.ts). They
# come on standard input as NUL-separated KEY=VALUE pairs, parsed by twinstack from the env file as
# compose reads it: docker stack deploy and docker stack config read no env file of their own, and
# the values are secrets, so they never travel in a command line.
cd "$DIR" || exit
pairs=()
while IFS= read -r -d '' kv; do
  case "$kv" in
    [A-Za-z_]*=*) pairs+=("$kv") ;;
    *) echo "stack-env: a variable without a name came on standard input" >&2; exit 2 ;;
  esac
done
# env, not export: compose allows keys (with . or -) that the shell cannot export.
exec env -- "${pairs[@]}" "$@"
