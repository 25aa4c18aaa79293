#!/usr/bin/env bash
# Runs the test suites with node's test runner: unit, orchestration and integration files side by
# side, then the end-to-end files one at a time (they share one Docker engine) with the swarm
# integration files beside them. Prints one closing line with the totals of every run.
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

# The swarm files run engines of their own and never touch the shared one, so when the end-to-end
# files run (one at a time, on the shared engine) the swarm files run beside them, two at a time,
# instead of before them. Otherwise they start the parallel run. (The two compete for the CPU: the
# end-to-end files run about 2.5 times slower while the swarm files run, about 10 minutes, and the
# whole run still ends about 3 minutes sooner. nice does not help: each engine's containers sit in
# a cgroup of their own, and cgroups share the CPU whatever their processes' nice value.)
swarm=()
rest=()
for f in "${parallel[@]}"; do case "$f" in test/integration/swarm-*) swarm+=("$f") ;; *) rest+=("$f") ;; esac; done
beside=()
if [ ${#serial[@]} -gt 0 ] && [ ${#swarm[@]} -gt 0 ]; then
  beside=("${swarm[@]}")
  swarm=()
fi
# The longest files start first, so the short ones fill the slots around them instead of the run
# ending on one long file: the swarm files, then the other integration files, then orchestration
# and unit.
ordered=("${swarm[@]}")
for f in "${rest[@]}"; do case "$f" in test/integration/*) ordered+=("$f") ;; esac; done
for f in "${rest[@]}"; do case "$f" in test/integration/*) ;; *) ordered+=("$f") ;; esac; done
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
beside_pid=
if [ ${#beside[@]} -gt 0 ]; then
  # The swarm files load the fixture base image from an archive saved now, never from the shared
  # engine while an end-to-end file may be restarting it (test/harness/private-engine.ts).
  archives=$(mktemp -d)
  if ! docker save -o "$archives/twinstack-fixture-base_latest.tar" twinstack-fixture-base:latest; then
    echo "saving the fixture base image for the swarm files failed; they ask the shared engine instead" >&2
  fi
  beside_log=$(mktemp)
  echo "# the swarm files run beside the end-to-end files; their report follows the end-to-end report"
  TWINSTACK_IMAGE_ARCHIVES="$archives" node --import tsx --import ./test/harness/preload.mjs --test --test-concurrency=2 \
    --test-timeout="$parallel_timeout_ms" "${beside[@]}" >"$beside_log" 2>&1 &
  beside_pid=$!
fi
if [ ${#serial[@]} -gt 0 ]; then
  node --import tsx --import ./test/harness/preload.mjs --test --test-concurrency=1 --test-timeout="$serial_timeout_ms" "${serial[@]}" 2>&1 | tee -a "$log" || status=1
fi
if [ -n "$beside_pid" ]; then
  wait "$beside_pid" || status=1
  echo "# the swarm files' report"
  tee -a "$log" <"$beside_log"
  rm -rf "$beside_log" "$archives"
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
