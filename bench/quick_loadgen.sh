#!/usr/bin/env bash
# Quick load benchmark (issue #8 item 6), for CI: builds nothing. Starts build/bin/agentd
# (durability sync) on a temp data dir, with bench/mock-openai at 0 ms think time as its model
# (or the built-in echo model), runs build/bin/loadgen for a few seconds (closed loop, 16
# sessions × 20 steps by default) and prints its table and RESULT line. Exits non-zero only if
# the run itself failed (a process did not start, or a step failed), never on a timing.
#
#   bench/quick_loadgen.sh                    # mock model: step = tool call + tool result
#   bench/quick_loadgen.sh --model echo       # echo model: step = message + echo
#   bench/quick_loadgen.sh --sessions 64 --turns 50 -- --channels 8   # after --: loadgen flags
# AGENTD_BIN_DIR overrides build/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${AGENTD_BIN_DIR:-build/bin}
model=mock
sessions=16
turns=20
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --sessions) sessions=$2; shift 2 ;;
    --turns) turns=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "quick_loadgen: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $model == mock || $model == echo ]] || { echo "quick_loadgen: --model mock|echo" >&2; exit 2; }
for b in agentd loadgen mock-openai; do
  [[ -x $bin/$b ]] || { echo "quick_loadgen: $bin/$b is missing (build it first)" >&2; exit 2; }
done

tmp=$(mktemp -d /tmp/agentd-quick-loadgen.XXXXXX)
mock_pid=""
agentd_pid=""
cleanup() {
  [[ -n $agentd_pid ]] && kill "$agentd_pid" 2>/dev/null && wait "$agentd_pid" 2>/dev/null
  [[ -n $mock_pid ]] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits (up to 15 s) until file $1 has a line matching $2 while pid $3 lives; prints the line.
wait_for_line() {
  local deadline=$((SECONDS + 15))
  while ((SECONDS < deadline)); do
    if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  echo "quick_loadgen: no \"$2\" from pid $3; its output:" >&2
  cat "$1" >&2
  return 1
}

config=$tmp/agentd.yaml
printf 'durability: sync\nmetrics_listen: "127.0.0.1:0"\n' >"$config"
if [[ $model == mock ]]; then
  "$bin/mock-openai" --port 0 --think-ms 0 >"$tmp/mock.log" 2>&1 &
  mock_pid=$!
  mock_port=$(wait_for_line "$tmp/mock.log" '^LISTENING [0-9]+' "$mock_pid" | awk '{print $2}')
  cat >>"$config" <<EOF
backends:
  - { name: mock, type: openai, base_url: "http://127.0.0.1:$mock_port/v1", max_concurrency: 1024 }
models:
  - { name: mock, deployments: [{ backend: mock, model: mock-1 }] }
EOF
fi

key="agd-quick-loadgen-$RANDOM$RANDOM$RANDOM"
AGENTD_BOOTSTRAP_KEY=$key "$bin/agentd" --config "$config" --listen 127.0.0.1:0 \
  --data-dir "$tmp/data" --log-level info >"$tmp/agentd.log" 2>&1 &
agentd_pid=$!
line=$(wait_for_line "$tmp/agentd.log" 'agentd serving on 127\.0\.0\.1:[0-9]+' "$agentd_pid")
addr=$(grep -oE '127\.0\.0\.1:[0-9]+' <<<"$line" | head -1)
metrics=$(wait_for_line "$tmp/agentd.log" 'metrics on http://127\.0\.0\.1:[0-9]+' "$agentd_pid" |
  grep -oE '127\.0\.0\.1:[0-9]+' | head -1)

pids=(--server-pid "$agentd_pid" --metrics "$metrics")
[[ -n $mock_pid ]] && pids+=(--mock-pid "$mock_pid")
status=0
AGENTD_API_KEY=$key "$bin/loadgen" --addr "$addr" --model "$model" --sessions "$sessions" \
  --turns "$turns" --data-dir "$tmp/data" "${pids[@]}" --label quick "${extra[@]}" || status=$?
if ((status != 0)); then
  echo "quick_loadgen: loadgen failed (exit $status); agentd log tail:" >&2
  tail -n 20 "$tmp/agentd.log" >&2
fi
exit "$status"
