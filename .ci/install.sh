#!/usr/bin/env bash
# Install the system packages the end-to-end tests need (Debian 12).
# Idempotent: does nothing but check when everything is already present. --check: check only.
set -euo pipefail

packages=(
  openssh-server
  docker.io
  docker-compose
  debootstrap
  rsync
  age
  git
  curl
  util-linux
  coreutils
  postgresql-15
  postgresql-client-15
  shellcheck
  caddy
  docker-registry
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install: all packages present: ${packages[*]}"
  exit 0
fi
# --check: only say whether anything is missing.
if [ "${1:-}" = "--check" ]; then
  echo "install: missing: ${missing[*]}"
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
echo "install: apt-get update"
apt-get update -qq
echo "install: installing ${missing[*]}"
apt-get install -y -qq "${missing[@]}" >/dev/null
# The tests run caddy's binary in a container of their own; the package's service (listening on
# port 80 of every address) is not wanted.
if [[ " ${missing[*]} " == *" caddy "* ]] && [ -d /run/systemd/system ]; then
  systemctl disable --now caddy.service >/dev/null 2>&1 || true
fi
# The same for docker-registry: the tests start their own on a free loopback port (test/harness/
# registry.ts); the package's service would listen on port 5000 of every address. Without systemd
# its init script may have started it.
if [[ " ${missing[*]} " == *" docker-registry "* ]]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  else
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    update-rc.d docker-registry disable >/dev/null 2>&1 || true
  fi
fi
echo "install: done"
