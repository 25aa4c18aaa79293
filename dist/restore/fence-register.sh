#!/usr/bin/env bash
# The opening of a fenced command (src/infra/ssh.ts): its process group, and
# `__twinstack_register <entries dir> <entry>`, which writes the entry (one JSON line) to
# `<entries dir>/<process group>.json`, where the next run looks when it finds the busy file still
# held. A record that cannot be written does not fail the command.
read -r _ _ _ _ __twinstack_pg _ </proc/$$/stat
__twinstack_register() {
  printf '%s\n' "$2" >"$1/$__twinstack_pg.json" 2>/dev/null || true
}
