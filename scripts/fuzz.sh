#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) with clang-14 + ASan + UBSan in build-fuzz/ and runs
# each one for a bounded number of executions on a copy of its seed corpus (fuzz/corpus/<name>,
# which stays untouched).
#
#   scripts/fuzz.sh [runs] [harness...]     runs defaults to 200000 (the CI bound); harness names
#                                           are the fuzz/<name>_fuzzer.cc stems (default: all)
# Environment:
#   FUZZ_MAX_TIME   per-harness wall-clock cap in seconds (default 600); hitting it before
#                   `runs` executions counts as a failure (the bound was not met)
#   FUZZ_BUILD_DIR  build dir (default build-fuzz)
#   FUZZ_LOCK       if set, the build step runs under `flock $FUZZ_LOCK` (shared build machines)
#   FUZZ_SKIP_BUILD=1  run the already-built harnesses
# Prints one line per harness (executions, exec/s, seconds, result) and a final PASS/FAIL; exits
# non-zero when any harness crashed, leaked, hit UB or failed an invariant. Crash inputs and logs
# are kept in $FUZZ_BUILD_DIR/fuzz-out/<harness>/ (add a crash input to fuzz/corpus/<harness>/ as
# regress-<what> once it is fixed).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-200000}
shift || true
ALL=(request_validation auth_header config sse_parser stored_records openai_request)
if [ "$#" -gt 0 ]; then HARNESSES=("$@"); else HARNESSES=("${ALL[@]}"); fi
MAX_TIME=${FUZZ_MAX_TIME:-600}
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}

for tool in clang-14 clang++-14; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }
done
if [ ! -e "$(clang-14 -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ]; then
  echo "fuzz: libFuzzer runtime missing (apt-get install libclang-rt-14-dev)" >&2
  exit 2
fi

if [ "${FUZZ_SKIP_BUILD:-0}" != 1 ]; then
  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer"
  LOCK=()
  [ -n "${FUZZ_LOCK:-}" ] && LOCK=(flock "$FUZZ_LOCK")
  start=$(date +%s)
  "${LOCK[@]}" env CC=clang-14 CXX=clang++-14 cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DAGENTD_BUILD_FUZZERS=ON -DAGENTD_BUILD_TESTS=OFF -DAGENTD_BUILD_BENCH=OFF \
    -DCMAKE_C_FLAGS="$SAN" -DCMAKE_CXX_FLAGS="$SAN" >/dev/null
  targets=()
  for h in "${HARNESSES[@]}"; do targets+=("${h}_fuzzer"); done
  "${LOCK[@]}" cmake --build "$BUILD" --target "${targets[@]}" -j2
  echo "fuzz: build took $(( $(date +%s) - start )) s"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

OUT="$BUILD/fuzz-out"
failed=0
printf '%-20s %12s %10s %8s  %s\n' harness executions exec/s seconds result
for h in "${HARNESSES[@]}"; do
  bin="$BUILD/bin/${h}_fuzzer"
  seeds="fuzz/corpus/$h"
  work="$OUT/$h"
  rm -rf "$work"
  mkdir -p "$work/corpus"
  [ -d "$seeds" ] && cp -r "$seeds/." "$work/corpus/"
  log="$work/fuzz.log"
  t0=$(date +%s.%N)
  set +e
  "$bin" -runs="$RUNS" -max_total_time="$MAX_TIME" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$work/" "$work/corpus" >"$log" 2>&1
  rc=$?
  set -e
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  execs=$(sed -n "s/^stat::number_of_executed_units: *//p" "$log" | tail -1)
  rate=$(sed -n "s/^stat::average_exec_per_sec: *//p" "$log" | tail -1)
  execs=${execs:-0}
  rate=${rate:-0}
  if [ "$rc" -ne 0 ]; then
    result="FAIL (exit $rc; see $log)"
    failed=1
  elif [ "$execs" -lt "$RUNS" ]; then
    result="FAIL (only $execs of $RUNS executions in ${MAX_TIME}s)"
    failed=1
  else
    result="ok, 0 crashes"
  fi
  printf '%-20s %12s %10s %8s  %s\n' "$h" "$execs" "$rate" "$secs" "$result"
  if [ "$rc" -ne 0 ]; then
    grep -m1 -E "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant broken|deadly signal" "$log" | sed 's/^/    /' || true
    ls "$work" | grep -E '^(crash|leak|timeout|oom)-' | sed "s|^|    input: $work/|" || true
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FAIL"
  exit 1
fi
echo "fuzz: PASS"
