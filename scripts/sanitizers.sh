#!/usr/bin/env bash
# Sanitizer builds of agentd (clang-14, Ninja, lld). CI (.ci/run) uses all three steps.
#
#   scripts/sanitizers.sh configure-asan [dir]   configure `dir` (default build) for ASan+UBSan with
#                                                 the libFuzzer harnesses; the README's test command
#                                                 then builds it and runs the whole suite under ASan
#   scripts/sanitizers.sh fuzz [dir] [runs]       run every fuzz harness of that tree (default 200000
#                                                 executions each; scripts/fuzz.sh)
#   scripts/sanitizers.sh tsan [dir]              configure + build `dir` (default build-tsan) for
#                                                 TSan and run the concurrency tests under it
#
# Sanitizer reports are fatal: ASan/LSan abort, UB aborts (-fno-sanitize-recover), TSan exits 66,
# so the test that hit one fails. .ci/run exports the ASan/UBSan/LSan options; `tsan` sets TSan's.
set -euo pipefail
cd "$(dirname "$0")/.."

# The runtime's concurrency tests: racing turns/CAS, the session manager and executor, the store's
# concurrent writers, the router's timers and hedging, tool limiters, streaming watchers, replicas
# sharing one PostgreSQL (claims, waiting turns, the commit feed, watcher fetches).
TSAN_TESTS=(concurrency_race_test runtime_units_test rocksdb_store_test backend_test
  tool_safety_test session_integration_test pg_store_test replicas_test)

need_clang() {
  for tool in clang-14 clang++-14 ld.lld ninja; do
    command -v "$tool" >/dev/null || {
      echo "sanitizers: $tool not found (bash scripts/setup.sh installs it)" >&2
      exit 2
    }
  done
}

# configure <dir> <sanitizer> <optimization> [extra cmake args...]
configure() {
  local dir=$1 san=$2 opt=$3
  shift 3
  need_clang
  CC=clang-14 CXX=clang++-14 cmake -S . -B "$dir" -G Ninja \
    -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_C_FLAGS_DEBUG="$opt -gline-tables-only" -DCMAKE_CXX_FLAGS_DEBUG="$opt -gline-tables-only" \
    -DCMAKE_EXE_LINKER_FLAGS="-fuse-ld=lld" -DCMAKE_SHARED_LINKER_FLAGS="-fuse-ld=lld" \
    -DAGENTD_SANITIZE="$san" -DAGENTD_BUILD_BENCH=OFF "$@"
}

cmd=${1:-}
case "$cmd" in
  configure-asan)
    # -O1: the fuzzers need the speed; the tests build at -O0 anyway (tests/CMakeLists.txt)
    configure "${2:-build}" address -O1 -DAGENTD_BUILD_FUZZERS=ON
    ;;
  fuzz)
    FUZZ_BUILD_DIR="${2:-build}" FUZZ_SKIP_BUILD=1 exec bash scripts/fuzz.sh "${3:-200000}"
    ;;
  tsan)
    dir=${2:-build-tsan}
    # -O0: halves this tree's build time; the tests it runs take ~2 min either way
    configure "$dir" thread -O0
    start=$(date +%s)
    cmake --build "$dir" -j2 --target tsan_selftest "${TSAN_TESTS[@]}"
    echo "tsan: build took $(( $(date +%s) - start )) s"
    # Debian's gRPC, RocksDB and Abseil are not instrumented: ignore what happens inside them
    # (tests/sanitizers/absl_sync_annotations.cc makes absl::Mutex visible to TSan; tsan.supp lists
    # what stays invisible).
    export TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/sanitizers/tsan.supp ${TSAN_OPTIONS:-}"
    # The check can fail: an unlocked race must be reported, and absl's locks must order.
    set +e
    "$dir/bin/tsan_selftest" race >"$dir/selftest.log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -ne 66 ] || ! grep -q "WARNING: ThreadSanitizer: data race" "$dir/selftest.log"; then
      echo "tsan: FAIL (the self-test's deliberate race was not reported; exit $rc)"
      exit 1
    fi
    for mode in mutex condvar await lockwhen; do
      "$dir/bin/tsan_selftest" "$mode" >"$dir/selftest.log" 2>&1 || {
        echo "tsan: FAIL (self-test '$mode' reported a race through absl::Mutex)"
        cat "$dir/selftest.log"
        exit 1
      }
    done
    echo "tsan: self-test ok (a deliberate race is reported; absl Mutex/CondVar/Await/LockWhen order)"
    failed=()
    for t in "${TSAN_TESTS[@]}"; do
      t0=$(date +%s)
      if "$dir/bin/$t" --gtest_brief=1 >"$dir/$t.tsan.log" 2>&1; then
        echo "tsan: $t passed ($(grep -m1 -o '[0-9]* tests\? from [0-9]* test suites\? ran' "$dir/$t.tsan.log" || true); $(( $(date +%s) - t0 )) s)"
      else
        failed+=("$t")
        echo "tsan: $t FAILED ($(( $(date +%s) - t0 )) s); its log:"
        grep -E -A40 "WARNING: ThreadSanitizer|\[  FAILED  \]|Failure" "$dir/$t.tsan.log" | head -120
      fi
    done
    if [ "${#failed[@]}" -gt 0 ]; then
      echo "tsan: FAIL (${failed[*]})"
      exit 1
    fi
    echo "tsan: PASS (${#TSAN_TESTS[@]} test binaries, 0 reports)"
    ;;
  *)
    sed -n '2,13p' "$0" >&2
    exit 2
    ;;
esac
