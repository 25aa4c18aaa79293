#!/usr/bin/env bash
# Runs the test suites with node's test runner: unit, orchestration and integration files side by
# side, then the end-to-end files one at a time (they share one Docker engine). Prints one closing
# line with the totals of both runs.
# Usage: scripts/test.sh [unit] [orchestration] [integration] [e2e]  (default: all four)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit orchestration integration e2e)

parallel=()
serial=()
for s in "${suites[@]}"; do
  case "$s" in
    unit|orchestration|integration) for f in test/"$s"/*.test.ts; do [ -e "$f" ] && parallel+=("$f"); done ;;
    e2e) for f in test/e2e/*.test.ts; do [ -e "$f" ] && serial+=("$f"); done ;;
    *) echo "unknown suite: $s (use unit, orchestration, integration, e2e)" >&2; exit 2 ;;
  esac
done

# The longest files start first, so the short ones fill the slots around them instead of the run
# ending on one long file: the swarm files (each runs an engine of its own), then the other
# integration files, then orchestration and unit.
ordered=()
for f in "${parallel[@]}"; do case "$f" in test/integration/swarm-*) ordered+=("$f") ;; esac; done
for f in "${parallel[@]}"; do case "$f" in test/integration/swarm-*) ;; test/integration/*) ordered+=("$f") ;; esac; done
for f in "${parallel[@]}"; do case "$f" in test/integration/*) ;; *) ordered+=("$f") ;; esac; done
parallel=("${ordered[@]}")

# No test file may hang the run: node's runner ends a file that runs longer than this (its tests
# count as cancelled, so failed, and the run goes on). Unit and orchestration files take under a
# minute here, integration files under ten (the swarm end-to-end file about eight, side by side
# with three others), end-to-end files under eight.
parallel_timeout_ms=${TWINSTACK_TEST_FILE_TIMEOUT_MS:-1200000}
serial_timeout_ms=${TWINSTACK_E2E_FILE_TIMEOUT_MS:-1800000}

log=$(mktemp)
status=0
if [ ${#parallel[@]} -gt 0 ]; then
  node --import tsx --import ./test/harness/preload.mjs --test --test-concurrency=4 --test-timeout="$parallel_timeout_ms" "${parallel[@]}" 2>&1 | tee -a "$log" || status=1
fi
if [ ${#serial[@]} -gt 0 ]; then
  node --import tsx --import ./test/harness/preload.mjs --test --test-concurrency=1 --test-timeout="$serial_timeout_ms" "${serial[@]}" 2>&1 | tee -a "$log" || status=1
fi
pass=$(awk '/^# pass /{s+=$3} END{print s+0}' "$log")
fail=$(awk '/^# fail /{s+=$3} END{print s+0}' "$log")
skip=$(awk '/^# skipped /{s+=$3} END{print s+0}' "$log")
# A test cancelled because its suite's set-up failed counts as failed.
cancelled=$(awk '/^# cancelled /{s+=$3} END{print s+0}' "$log")
fail=$((fail + cancelled))
rm -f "$log"
if [ $((pass + fail)) -eq 0 ]; then echo "no tests ran" >&2; status=1; fi
echo "tests: ${pass} passed, ${fail} failed, ${skip} skipped"
exit $status
