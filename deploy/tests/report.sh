# Sourced by the deploy tests: ok/fail counters and the summary line ctest prints.
#   source report.sh NAME   then   ok "what held"; fail "what did not"; finish
report_name=$1
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok   - $*"; }
fail() { failed=$((failed + 1)); echo "FAIL - $*"; }
finish() {
  echo "$report_name: $passed passed, $failed failed"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
  exit $?
}
