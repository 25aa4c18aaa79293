#!/usr/bin/env bash
# Installs the docker compose v2 CLI plugin on Debian 12 from Debian's next release (trixie), whose
# docker-compose package holds one statically linked plugin binary. The trixie source uses this
# machine's own Debian mirror (read from its apt sources; no host is written here) in a private apt
# configuration, so the machine's apt setup is never changed. Idempotent: does nothing when
# `docker compose version` already answers.
set -euo pipefail

VERSION="${COMPOSE_V2_DEBIAN_VERSION:-2.26.1-4}"
PLUGIN_DIR=/usr/libexec/docker/cli-plugins

if docker compose version >/dev/null 2>&1; then
  echo "install-compose-v2: $(docker compose version) already installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-compose-v2: must run as root" >&2
  exit 1
fi

# The first Debian mirror of the machine's bookworm sources (deb822 or one-line format).
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  mirror="$(awk '/^URIs:/ { u = $2 } /^Suites:/ && / bookworm( |$)/ && u != "" { print u; exit }' "$f")"
  [ -n "$mirror" ] && break
done
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    mirror="$(awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } if ($(i + 1) == "bookworm") { print $i; exit } }' "$f")"
    [ -n "$mirror" ] && break
  done
fi
if [ -z "$mirror" ]; then
  echo "install-compose-v2: no bookworm mirror in this machine's apt sources" >&2
  exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/archives/partial"
printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie main\n' "$mirror" > "$work/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/lists"
  -o "Dir::Cache::Archives=$work/archives"
  -o "APT::Get::List-Cleanup=0"
  -o "APT::Sandbox::User=root"
)
echo "install-compose-v2: reading trixie's package list from $mirror"
apt-get "${apt_opts[@]}" update -qq
(cd "$work" && apt-get "${apt_opts[@]}" download -qq "docker-compose=$VERSION")
deb="$(find "$work" -maxdepth 1 -name 'docker-compose_*.deb' | head -n 1)"
[ -n "$deb" ] || { echo "install-compose-v2: docker-compose $VERSION was not downloaded" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/root"
install -D -m 0755 "$work/root$PLUGIN_DIR/docker-compose" "$PLUGIN_DIR/docker-compose"
echo "install-compose-v2: $(docker compose version)"
