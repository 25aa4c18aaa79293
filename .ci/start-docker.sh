#!/usr/bin/env bash
# Start the Docker daemon for the end-to-end fixture host, if it is not
# already answering. Safe to run any number of times.
#
# The daemon runs with networking features switched off: no default bridge,
# no iptables rules, no IP forwarding. Every fixture service uses
# `network_mode: host` and binds its own loopback port instead.
#
# Environment:
#   DOCKERD_LOG      log file for the daemon (default /var/log/twinstack-dockerd.log)
#   DOCKERD_TIMEOUT  seconds to wait for `docker info` (default 60)
set -euo pipefail

log_file="${DOCKERD_LOG:-/var/log/twinstack-dockerd.log}"
timeout_s="${DOCKERD_TIMEOUT:-60}"

if docker info >/dev/null 2>&1; then
  echo "start-docker: dockerd already running"
else
  if [ "$(id -u)" -ne 0 ]; then
    echo "start-docker: dockerd is not running and this script is not root" >&2
    exit 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    echo "start-docker: dockerd not installed (run .ci/install.sh)" >&2
    exit 1
  fi
  # A stale pid file from a killed daemon stops a new one from starting.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    rm -f /var/run/docker.pid
  fi
  if [ -f /var/run/docker.pid ]; then
    echo "start-docker: dockerd (pid $(cat /var/run/docker.pid)) exists but is not answering yet; waiting"
  else
    mkdir -p "$(dirname "$log_file")"
    echo "start-docker: starting dockerd (log: $log_file)"
    # A session of its own: a daemon left in the caller's process group dies when that group is
    # signalled (a job runner ending the shell that ran this script), taking every container with it.
    setsid nohup dockerd --bridge=none --iptables=false --ip-forward=false \
      >>"$log_file" 2>&1 </dev/null &
    disown || true
  fi

  deadline=$((SECONDS + timeout_s))
  until docker info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "start-docker: ERROR: dockerd did not answer 'docker info' within ${timeout_s}s" >&2
      echo "start-docker: last lines of $log_file:" >&2
      tail -n 30 "$log_file" >&2 || true
      exit 1
    fi
    sleep 1
  done
  echo "start-docker: dockerd is up"
fi

echo "docker client:  $(docker version --format '{{.Client.Version}} (API {{.Client.APIVersion}})' 2>/dev/null || echo '?')"
echo "docker server:  $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})' 2>/dev/null || echo '?')"
echo "storage driver: $(docker info --format '{{.Driver}}' 2>/dev/null || echo '?')"
if command -v docker-compose >/dev/null 2>&1; then
  echo "docker-compose: $(docker-compose version --short 2>/dev/null || docker-compose version | head -n1)"
else
  echo "docker-compose: not installed"
fi
