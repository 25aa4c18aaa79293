#!/usr/bin/env bash
# Prints `docker inspect` of every container (running or not) that carries the label
# $PROJECT_LABEL, and $SERVICE_LABEL too when it is set; `[]` when there is none. The labels are
# `label=<key>=<value>` filters written by src/infra/docker.ts. $DOCKER_ENDPOINT, when set, is the
# engine to ask (`docker -H`: a swarm node's, config swarm.nodes); else the host's own.
filters=(--filter "$PROJECT_LABEL")
[ -z "${SERVICE_LABEL:-}" ] || filters+=(--filter "$SERVICE_LABEL")
docker=(docker)
[ -z "${DOCKER_ENDPOINT:-}" ] || docker+=(-H "$DOCKER_ENDPOINT")
# shellcheck disable=SC2086 # $ids is container ids, one a word
ids=$("${docker[@]}" ps -aq "${filters[@]}") && if [ -n "$ids" ]; then "${docker[@]}" inspect $ids; else echo '[]'; fi
