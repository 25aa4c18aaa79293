#!/usr/bin/env bash
# Brings this machine to what the sandbox and the tests need, doing only what is missing: the
# system packages (.ci/install.sh), the node packages (npm ci), the Docker engine
# (.ci/start-docker.sh) and the fixture base image (test/e2e/support/base-image.sh). One progress
# line per stage, with its time. As root (or with a sudo that asks no password) it does the work;
# otherwise it says the one command to run. Safe to run any number of times.
# Usage: scripts/setup-machine.sh [--no-docker]   (--no-docker: packages only, for unit tests)
set -euo pipefail
cd "$(dirname "$0")/.."

docker_too=1
[ "${1:-}" = "--no-docker" ] && docker_too=0

as_root=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    as_root=(false)
  fi
fi

stage() { # <name> <check command> <do command...>
  local name=$1 check=$2
  shift 2
  if bash -c "$check" >/dev/null 2>&1; then
    echo "setup: ${name}: ready"
    return
  fi
  if [ "${as_root[0]:-}" = false ] && [ "$1" != npm ]; then
    echo "setup: ${name} is missing; run this once as root: sudo bash scripts/setup-machine.sh" >&2
    exit 1
  fi
  local started=$SECONDS
  echo "setup: ${name}: setting up..."
  if [ "$1" = npm ]; then "$@"; else "${as_root[@]}" "$@"; fi
  echo "setup: ${name}: done in $((SECONDS - started)) s"
}

stage "system packages" "bash .ci/install.sh --check" bash .ci/install.sh
stage "docker compose v2 plugin" "docker compose version" bash .ci/install-compose-v2.sh
stage "node packages" "[ -x node_modules/.bin/tsc ] && [ -x node_modules/.bin/tsx ]" npm ci --no-audit --no-fund
if [ "$docker_too" = 1 ]; then
  stage "Docker engine" "docker info" bash .ci/start-docker.sh
  stage "fixture base image" "docker image inspect twinstack-fixture-base:latest" bash test/e2e/support/base-image.sh
fi
