#!/usr/bin/env bash
# vault-sync on the host: copy the files dev's database references from the production vault into
# the dev vault (rsync, only new or changed files) and delete the dev vault's files nothing
# references. Everything it needs arrives in the environment, never pasted into the script:
#   PROD_VAULT, DEV_VAULT   the two vault directories (checked apart by twinstack beforehand)
#   LIST_COMMAND            prints `p<TAB>path` (referenced), `v<TAB>path` (variant), `i<TAB>` (refused)
#   DRY_RUN, DELETE         1 or 0
# Names in the dev vault are written by dev's code, so they are handled NUL-delimited from the
# moment they are listed, and a file is deleted only when its resolved location is inside the dev
# vault. Paths from the database never hold control characters (the listing query refuses them).
set -euo pipefail

[ -d "$PROD_VAULT" ] || { echo "the production vault $PROD_VAULT does not exist" >&2; exit 3; }
mkdir -p "$DEV_VAULT"
dev_real=$(realpath -e -- "$DEV_VAULT")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

eval "$LIST_COMMAND" > "$work/all"

# Present files to one list, missing primaries to another: one open per list, no fork per line.
tab=$(printf '\t')
while IFS="$tab" read -r kind p; do
  case "$kind" in
    p) if [ -f "$PROD_VAULT/$p" ]; then printf '%s\n' "$p"; else printf '%s\n' "$p" >&3; fi ;;
    v) if [ -f "$PROD_VAULT/$p" ]; then printf '%s\n' "$p"; fi ;;
  esac
done < "$work/all" > "$work/files" 3> "$work/missing"
sort -u -o "$work/files" "$work/files"

dry=()
[ "$DRY_RUN" = 1 ] && dry=(--dry-run)
# A symlink in the dev vault is never a vault file, and rsync could write through one: gone first.
links=0
if [ "$DRY_RUN" != 1 ]; then
  links=$(find "$DEV_VAULT" -mindepth 1 -type l -print -delete | wc -l)
fi
rsync -rlt "${dry[@]}" --files-from="$work/files" --stats "$PROD_VAULT/" "$DEV_VAULT/" > "$work/stats"
copied=$(sed -n 's/^Number of regular files transferred: *//p' "$work/stats" | tr -d ',')
bytes=$(sed -n 's/^Total transferred file size: *\([0-9,]*\).*/\1/p' "$work/stats" | tr -d ',')

deleted=0
deleted_bytes=0
outside=0
if [ "$DELETE" = 1 ]; then
  # Referenced names (no control characters) and dev's files, both NUL-delimited and sorted alike.
  cut -f2 "$work/all" | tr '\n' '\0' | LC_ALL=C sort -z -u > "$work/keep"
  (cd "$DEV_VAULT" && find . -mindepth 1 -type f -printf '%P\0') | LC_ALL=C sort -z -u > "$work/dev"
  LC_ALL=C comm -z -23 "$work/dev" "$work/keep" > "$work/delete"
  while IFS= read -r -d '' rel; do
    real=$(realpath -e -- "$DEV_VAULT/$rel" 2>/dev/null) || continue
    case "$real" in
      "$dev_real"/*) ;;
      *) outside=$((outside + 1)); continue ;;
    esac
    size=$(stat -c %s -- "$real")
    if [ "$DRY_RUN" != 1 ]; then rm -f -- "$real"; fi
    deleted=$((deleted + 1))
    deleted_bytes=$((deleted_bytes + size))
  done < "$work/delete"
  if [ "$DRY_RUN" != 1 ]; then find "$DEV_VAULT" -mindepth 1 -type d -empty -delete; fi
fi

referenced=$(grep -c '^p' "$work/all" || true)
invalid=$(grep -c '^i' "$work/all" || true)
echo "ts-vault referenced=$referenced copied=${copied:-0} bytes=${bytes:-0} deleted=$deleted deleted_bytes=$deleted_bytes missing=$(wc -l < "$work/missing") invalid=$invalid links=$links outside=$outside"
head -n 10 "$work/missing" | sed 's/^/ts-missing /'
