#!/usr/bin/env bash
# The full crash test (issue #9, docs/reliability.md): kill -9 a real agentd under a turn load
# CYCLES times (default 200) at random moments 50-400 ms apart, restart it on the same data dir,
# and check after every restart that no acknowledged turn was lost, seqs are gap-free, no session
# is stuck RUNNING and idempotent retries duplicate nothing. Then the control run: the same
# checker against `durability: none` (no WAL) must report lost turns.
#
#   scripts/crash-test.sh [CYCLES] [CONTROL_CYCLES]     (env: BUILD_DIR=build, AGENTD_CRASH_SEED)
#
# Builds crash_test (and agentd) in BUILD_DIR if needed. Prints one figures line per run.
# Exit 0: both runs passed; 1: a run failed (violations are listed above the figures).
set -euo pipefail

cycles=${1:-200}
control_cycles=${2:-10}
cd "$(dirname "$0")/.."
build=${BUILD_DIR:-build}
[[ $cycles =~ ^[1-9][0-9]*$ ]] || { echo "crash-test: CYCLES must be a positive integer, got '$cycles'" >&2; exit 2; }
[[ $control_cycles =~ ^[1-9][0-9]*$ ]] || { echo "crash-test: CONTROL_CYCLES must be a positive integer" >&2; exit 2; }
[[ -d $build ]] || { echo "crash-test: no build dir '$build' (cmake -S . -B $build first)" >&2; exit 2; }

lock=()
command -v flock >/dev/null && lock=(flock /tmp/agentd-build.lock)
"${lock[@]}" cmake --build "$build" --target crash_test agentd -j2 >/dev/null

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
AGENTD_CRASH_CYCLES=$cycles AGENTD_CRASH_CONTROL_CYCLES=$control_cycles \
  "$build/bin/crash_test" >"$log" 2>&1 || status=1
grep -E '^(crash test|  violation|  detected)' "$log" || true
if [[ $status -ne 0 ]]; then
  grep -E 'Failure|Expected|Which is|actual|FAILED' "$log" | head -40 >&2 || true
  echo "crash-test: FAILED (full output: rerun $build/bin/crash_test with the same env)" >&2
  exit 1
fi
echo "crash-test: passed ($cycles cycles, control $control_cycles cycles)"
