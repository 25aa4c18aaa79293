#!/usr/bin/env bash
# Prints `docker inspect` of every container (running or not) that carries the label
# $PROJECT_LABEL, and $SERVICE_LABEL too when it is set; `[]` when there is none. The labels are
# `label=<key>=<value>` filters written by src/infra/docker.ts.
filters=(--filter "$PROJECT_LABEL")
[ -z "${SERVICE_LABEL:-}" ] || filters+=(--filter "$SERVICE_LABEL")
# shellcheck disable=SC2086 # $ids is container ids, one a word
ids=$(docker ps -aq "${filters[@]}") && if [ -n "$ids" ]; then docker inspect $ids; else echo '[]'; fi
