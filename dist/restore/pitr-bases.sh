#!/usr/bin/env bash
# Lists the base backups under $ROOT (src/domain/pitr.ts): for each directory holding base.tar and
# backup_manifest, a line "@@base <manifest mtime, epoch seconds> <directory>", a line
# "@@tar <name>" for every other tar file (a tablespace), then its backup_label (the first member
# pg_basebackup writes: --occurrence stops reading the archive there).
set -u
[ -d "$ROOT" ] || exit 0
for d in "$ROOT"/*/; do
  d=${d%/}
  if [ ! -f "$d/base.tar" ] || [ ! -f "$d/backup_manifest" ]; then continue; fi
  echo "@@base $(stat -c %Y "$d/backup_manifest") $d"
  for t in "$d"/*.tar; do [ "$t" = "$d/base.tar" ] || echo "@@tar ${t##*/}"; done
  tar -xOf "$d/base.tar" --occurrence=1 backup_label 2>/dev/null || true
done
exit 0
