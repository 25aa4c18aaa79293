#!/usr/bin/env bash
# Prints what the off-host copies under $BASE (<backup.offsite.path>/<env>) hold, for a restore
# from them (src/domain/offsite-restore.ts), read on the backup host with the admin key:
#   "@@base <stamp>" for each base backup directory, followed by its upload.json when it is there;
#   "@@file <name>" for each file in wal/, and "@@record <name>" followed by the content of each
#   upload record there (upload*.json). Nothing when $BASE is missing.
set -u
if [ -d "$BASE/base" ]; then
  for d in "$BASE"/base/*/; do
    [ -d "$d" ] || continue
    s=${d%/}
    echo "@@base ${s##*/}"
    if [ -f "${d}upload.json" ]; then cat "${d}upload.json"; fi
  done
fi
[ -d "$BASE/wal" ] || exit 0
cd "$BASE/wal" || exit 1
for f in *; do
  [ -f "$f" ] || continue
  case $f in
    upload*.json)
      echo "@@record $f"
      cat "$f"
      ;;
    *) echo "@@file $f" ;;
  esac
done
exit 0
