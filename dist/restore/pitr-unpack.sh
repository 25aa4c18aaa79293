#!/bin/sh
# Runs as root in a throwaway container of prod's db image (src/domain/pitr.ts), never on the
# host: unpacks the base backup /base/base.tar into /pitr/data, copies the archived WAL segments
# named in "$@" from /wal (the archive, mounted read-only: it is never changed) into /pitr/archive,
# and the segment being received ($1, or '') without its .partial suffix, so its writes replay too,
# unless the archive already holds that segment whole. Then the scratch directory goes to the
# image's postgres user, which the scratch server runs as (the archive is the SSH user's, 0700).
set -eu
partial=$1
shift
mkdir -m 700 /pitr/data /pitr/archive
tar -xf /base/base.tar -C /pitr/data
# A cluster whose configuration lives outside its data directory (Debian's layout) has none here.
[ -f /pitr/data/postgresql.conf ] || : >/pitr/data/postgresql.conf
[ -d /pitr/data/pg_wal ] || mkdir -m 700 /pitr/data/pg_wal
for f in "$@"; do cp "/wal/$f" "/pitr/archive/$f"; done
if [ -n "$partial" ] && [ ! -e "/pitr/archive/${partial%.partial}" ]; then
  cp "/wal/$partial" "/pitr/archive/${partial%.partial}"
fi
# A recovery that ends and promotes, even when the backup is of a standby.
rm -f /pitr/data/standby.signal
: >/pitr/data/recovery.signal
# Only docker exec reaches the scratch server (it has no network): trust on its socket.
printf 'local all all trust\n' >/pitr/hba.conf
chown -R "$(id -u postgres):$(id -g postgres)" /pitr
chmod 700 /pitr
