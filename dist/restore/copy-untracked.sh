#!/usr/bin/env bash
# Copies files from outside git into a release directory (src/domain/git.ts, copyUntracked), never
# through a symlink. The arguments: every path that must not be a link, then `--`, then one
# `<from> <to> <to's parent>` triple per file. All links are looked for before the first copy: the
# first found prints `$LINK <its index> <its target>` and stops the script (status 3). A file missing
# at <from> is skipped; the exit status is the last copy's.
umask 077
i=0
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
  if [ -L "$1" ]; then
    printf '%s %s ' "$LINK" "$i"
    readlink -- "$1" | head -c 300 | tr '\n' ' '
    echo
    exit 3
  fi
  i=$((i + 1))
  shift
done
shift
while [ "$#" -ge 3 ]; do
  from=$1 to=$2 parent=$3
  shift 3
  if [ -e "$from" ]; then mkdir -p "$parent" && rm -rf "$to" && cp -PpR -- "$from" "$to" && chmod -R u=rwX,go= "$to"; fi
done
