#!/usr/bin/env bash
# Build the fixture base image `twinstack-fixture-base:<key>` and tag it
# `twinstack-fixture-base:latest`.
#
# No container registry is reachable from the test host, so the image is made
# from scratch: debootstrap a minimal Debian bookworm with PostgreSQL 15,
# Python 3, pytest, alembic, psycopg2, SQLAlchemy and curl, then
# `docker import` the tree.
#
# <key> is a short hash of the package list, the suite and this script, so a
# change to either gives a new tag. Steps, cheapest first:
#   1. the image with that tag exists            -> only (re)tag :latest
#   2. /var/cache/twinstack/fixture-base-<key>.tar.gz exists -> docker import it
#   3. otherwise debootstrap (~1 min, needs the Debian mirror), write the
#      tarball to the cache, import it.
#
# Environment:
#   DEBOOTSTRAP_MIRROR  Debian mirror (default: the first bookworm mirror in
#                       /etc/apt/sources.list*; nothing else is guessed)
#   TWINSTACK_CACHE_DIR cache directory (default /var/cache/twinstack)
#   FIXTURE_BASE_IMAGE  repository name (default twinstack-fixture-base)
#
# Prints the image reference on the last line of stdout.
set -euo pipefail

suite=bookworm
packages="postgresql-15,python3,python3-pytest,python3-alembic,alembic,python3-psycopg2,python3-sqlalchemy,curl,ca-certificates"
image="${FIXTURE_BASE_IMAGE:-twinstack-fixture-base}"
cache_dir="${TWINSTACK_CACHE_DIR:-/var/cache/twinstack}"

started=$SECONDS
self="${BASH_SOURCE[0]}"
key="$( { printf '%s\n%s\n' "$suite" "$packages"; cat "$self"; } | sha256sum | cut -c1-12)"
ref="$image:$key"
tarball="$cache_dir/fixture-base-$key.tar.gz"

say() { echo "base-image: $*" >&2; }
elapsed() { echo "$((SECONDS - started))s"; }

if ! docker info >/dev/null 2>&1; then
  say "ERROR: docker daemon not reachable (run .ci/start-docker.sh)"
  exit 1
fi

mkdir -p "$cache_dir"
# Two test runs on one machine must not build the same image at once.
exec 9>"$cache_dir/.fixture-base.lock"
flock 9

tag_latest() {
  docker tag "$ref" "$image:latest"
}

if docker image inspect "$ref" >/dev/null 2>&1; then
  tag_latest
  say "image $ref already present; tagged $image:latest (took $(elapsed))"
  echo "$ref"
  exit 0
fi

import_tarball() {
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "twinstack fixture base ($suite: $packages)" \
    "$tarball" "$ref" >/dev/null
  tag_latest
}

if [ -s "$tarball" ]; then
  say "importing cached $tarball"
  import_tarball
  say "imported $ref from cache; tagged $image:latest (took $(elapsed))"
  echo "$ref"
  exit 0
fi

find_mirror() {
  if [ -n "${DEBOOTSTRAP_MIRROR:-}" ]; then
    echo "$DEBOOTSTRAP_MIRROR"
    return
  fi
  local f uri=""
  # deb822 .sources files: a stanza with "URIs:" and a "Suites:" naming the suite.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri="$(awk -v suite="$suite" '
      BEGIN { RS=""; FS="\n" }
      {
        u=""; s=""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/)   { u = $i; sub(/^URIs:[ \t]*/, "", u); sub(/[ \t].*/, "", u) }
          if ($i ~ /^Suites:/) { s = " " $i " " }
        }
        if (u != "" && s ~ (" " suite " ")) { print u; exit }
      }' "$f")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  # one-line format: "deb [opts] URI bookworm main"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri="$(awk -v suite="$suite" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite) { print $i; exit }
      }' "$f")"
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  echo "base-image: no bookworm source in /etc/apt/sources.list*; set DEBOOTSTRAP_MIRROR to this machine's Debian mirror" >&2
  exit 1
}

mirror="$(find_mirror)"
rootfs="$(mktemp -d /var/tmp/twinstack-fixture-base.XXXXXX)"
cleanup() { rm -rf "$rootfs"; rm -f "$tarball.partial"; }
trap cleanup EXIT

say "debootstrap $suite from $mirror into $rootfs"
say "packages: $packages"
t0=$SECONDS
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" \
    >"$rootfs.debootstrap.log" 2>&1; then
  say "ERROR: debootstrap failed; last lines of $rootfs.debootstrap.log:"
  tail -n 30 "$rootfs.debootstrap.log" >&2
  exit 1
fi
rm -f "$rootfs.debootstrap.log"
say "debootstrap done in $((SECONDS - t0))s"

# Slim the tree: downloaded .debs, apt lists, and the "main" cluster that the
# postgresql-15 package creates (the fixture db runs initdb on its own volume).
rm -rf "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/etc/postgresql/15/main \
       "$rootfs"/var/lib/postgresql/15/main
# Containers run with network_mode: host and a host resolv.conf; keep none baked in.
: >"$rootfs/etc/resolv.conf"

t0=$SECONDS
if command -v pigz >/dev/null 2>&1; then gz=(pigz -1); else gz=(gzip -1); fi
tar --numeric-owner -C "$rootfs" -c . | "${gz[@]}" >"$tarball.partial"
mv "$tarball.partial" "$tarball"
say "wrote $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - t0))s"

t0=$SECONDS
import_tarball
say "imported $ref in $((SECONDS - t0))s"
say "built $ref; tagged $image:latest (took $(elapsed))"
echo "$ref"
