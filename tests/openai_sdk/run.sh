#!/usr/bin/env bash
# ctest driver of openai_sdk_test.mjs: installs the official OpenAI SDK (install-sdk.sh, cached
# outside the repo), starts a real agentd (free loopback ports, a temp data dir, a known bootstrap
# key), runs the SDK script against its HTTP door, and stops agentd whatever happens.
#
#   tests/openai_sdk/run.sh AGENTD_BINARY AGENTCTL_BINARY
set -euo pipefail

agentd=${1:?usage: run.sh AGENTD AGENTCTL}
agentctl=${2:?usage: run.sh AGENTD AGENTCTL}
here=$(cd "$(dirname "$0")" && pwd)

sdk_dir=${AGENTD_OPENAI_SDK_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-openai-sdk}
"$here/install-sdk.sh" "$sdk_dir" >&2

tmp=$(mktemp -d)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# Two free loopback ports (bound then released; agentd takes them right after).
read -r grpc_port http_port < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')

key=agd-openai-sdk-test-admin-key-0001
AGENTD_BOOTSTRAP_KEY=$key "$agentd" --listen "127.0.0.1:$grpc_port" \
  --http-listen "127.0.0.1:$http_port" --data-dir "$tmp/data" --log-level warn \
  >"$tmp/agentd.log" 2>&1 &
pid=$!

# Ready when the door answers (bounded: 15 s).
for _ in $(seq 1 150); do
  if curl -sf -o /dev/null -H "Authorization: Bearer $key" "http://127.0.0.1:$http_port/v1/models"; then
    break
  fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "agentd exited early:" >&2
    cat "$tmp/agentd.log" >&2
    exit 1
  fi
  sleep 0.1
done

status=0
NODE_PATH="$sdk_dir/node_modules" \
  OPENAI_BASE_URL="http://127.0.0.1:$http_port/v1" AGENTD_KEY="$key" \
  AGENTD_ADDR="127.0.0.1:$grpc_port" AGENTCTL="$agentctl" \
  node "$here/openai_sdk_test.mjs" "$sdk_dir/node_modules/openai/index.js" || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- agentd log ---" >&2
  cat "$tmp/agentd.log" >&2
fi
exit $status
