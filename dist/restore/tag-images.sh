#!/bin/sh
# `docker tag` of each pair of positional parameters (source, then new name), in order, stopping at
# the first that fails (src/infra/docker.ts, tagImages).
while [ "$#" -ge 2 ]; do
  docker tag "$1" "$2" || exit
  shift 2
done
