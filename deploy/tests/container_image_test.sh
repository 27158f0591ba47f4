#!/usr/bin/env bash
# container_image: builds the agentd image with deploy/container/build-image.sh, checks what is
# in it, starts it with `buildah run` (host network, a free loopback port, a temp dir as /data,
# AGENTD_BOOTSTRAP_KEY set), checks that grpc.health.v1 answers SERVING and that an echo turn
# succeeds through agentctl, then stops agentd with SIGTERM and checks the drain exits cleanly.
#
#   deploy/tests/container_image_test.sh BUILD_DIR
#
# Everything lives in one temp dir (buildah storage with --root/--runroot, the data dir, logs),
# removed on exit, failure included; nothing is left in the system's container storage.
set -uo pipefail

[ "$#" -eq 1 ] || { echo "usage: $(basename "$0") BUILD_DIR" >&2; exit 2; }
build_dir=$(cd "$1" && pwd) || exit 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
agentctl=$build_dir/bin/agentctl
python=/usr/bin/python3

source "$repo/deploy/tests/report.sh" container_image
# A failed step that later steps depend on: report and stop (cleanup runs from the trap).
fatal() { fail "$*"; [ -f "${log:-}" ] && { echo "--- container output:"; tail -20 "$log"; }; finish; }

command -v buildah >/dev/null || fatal "buildah is not installed (Debian package buildah; run scripts/setup.sh)"
[ -x "$agentctl" ] || fatal "$agentctl not built"

work=$(mktemp -d "${TMPDIR:-/tmp}/agentd-image-test.XXXXXX")
export AGENTD_BUILDAH_GLOBAL_OPTS="--storage-driver vfs --root $work/storage --runroot $work/run"
read -r -a bh <<<"buildah $AGENTD_BUILDAH_GLOBAL_OPTS"
image=localhost/agentd-image-test:$$
container=agentd-image-test-$$
log=$work/container.log
run_pid=""
agentd_pid=""

cleanup() {
  # agentd first (SIGKILL: the graceful path was tested, or the test already failed), then the
  # `buildah run` that waits for it, then the container, the image and the storage.
  [ -n "$agentd_pid" ] && kill -KILL "$agentd_pid" 2>/dev/null
  if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
    kill -KILL "$run_pid" 2>/dev/null
    wait "$run_pid" 2>/dev/null
  fi
  "${bh[@]}" rm "$container" >/dev/null 2>&1
  "${bh[@]}" rmi -f "$image" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits (bounded) for process $1 to exit; its exit code lands in $wait_rc.
wait_exit() {
  local pid=$1 seconds=$2 end
  end=$((SECONDS + seconds))
  while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then return 1; fi
  wait "$pid"
  wait_rc=$?
  return 0
}

# 1. Build.
start=$SECONDS
if bash "$repo/deploy/container/build-image.sh" "$build_dir" "$image"; then
  ok "image built in $((SECONDS - start))s"
else
  fatal "deploy/container/build-image.sh failed"
fi

# 2. Image metadata: user, entrypoint, volume.
config=$("${bh[@]}" inspect --type image "$image" | "$python" -c "import json, sys; print(json.dumps(json.load(sys.stdin)[\"OCIv1\"][\"config\"]))") || fatal "buildah inspect failed"
check_config() {
  local what=$1 expr=$2
  if "$python" -c "import json, sys; c = json.load(sys.stdin); sys.exit(0 if ($expr) else 1)" <<<"$config"; then
    ok "image config: $what"
  else
    fail "image config: $what (config: $config)"
  fi
}
check_config "runs as 10001:10001" 'c.get("User") == "10001:10001"'
check_config "entrypoint is agentd with /etc/agentd/agentd.yaml" \
  'c.get("Entrypoint") == ["/usr/local/bin/agentd", "--config", "/etc/agentd/agentd.yaml"]'
check_config "/data is a volume" '"/data" in (c.get("Volumes") or {})'

# 3. Root filesystem: what must be there, and no shell or package manager.
"${bh[@]}" from --name "$container" "$image" >/dev/null || fatal "buildah from failed"
rootfs=$("${bh[@]}" mount "$container") || fatal "buildah mount failed"
for f in usr/local/bin/agentd usr/local/bin/agentctl lib64/ld-linux-x86-64.so.2 \
         etc/ssl/certs/ca-certificates.crt etc/agentd/agentd.yaml etc/nsswitch.conf; do
  if [ -s "$rootfs/$f" ]; then ok "rootfs has /$f"; else fail "rootfs lacks /$f"; fi
done
if grep -q '^agentd:x:10001:10001:' "$rootfs/etc/passwd" && grep -q '^agentd:x:10001:' "$rootfs/etc/group"; then
  ok "rootfs /etc/passwd and /etc/group define agentd (10001)"
else
  fail "rootfs /etc/passwd or /etc/group lacks agentd (10001)"
fi
if [ "$(stat -c %u:%g "$rootfs/data")" = 10001:10001 ]; then ok "/data belongs to 10001:10001"; else fail "/data belongs to $(stat -c %u:%g "$rootfs/data")"; fi
extra=$(cd "$rootfs" && ls bin/sh usr/bin/apt usr/bin/dpkg 2>/dev/null)
if [ -z "$extra" ]; then ok "rootfs has no shell or package manager"; else fail "rootfs has $extra"; fi
"${bh[@]}" umount "$container" >/dev/null
# Kubernetes (and Docker) mount their own volume at /data; buildah 1.28's own anonymous volume
# for VOLUME /data would hide a --volume bind at the same path, so the working container drops
# the VOLUME entry (the image keeps it).
"${bh[@]}" config --volume /data- "$container" || fatal "buildah config --volume /data- failed"

# 4. The baked config refuses plaintext on 0.0.0.0 without TLS or allow_plaintext.
refusal=$("${bh[@]}" run --isolation chroot --network host "$container" -- \
  /usr/local/bin/agentd --config /etc/agentd/agentd.yaml --data-dir /tmp/refused 2>&1)
rc=$?
if [ "$rc" -ne 0 ] && grep -q 'allow_plaintext' <<<"$refusal"; then
  ok "default config on 0.0.0.0 without TLS is refused with a clear error"
else
  fail "default config without TLS: exit $rc, output: $refusal"
fi

# 5. Start it: host network, loopback port, temp dir as /data, bootstrap key from the env.
data=$work/data
mkdir -p "$data" && chown 10001:10001 "$data" && chmod 0700 "$data" ||
  fatal "cannot give $data to uid 10001 (the test runs as root, like CI)"
port=$(free_port)
key="ci-bootstrap-$$-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"${bh[@]}" run --isolation chroot --network host -v "$data:/data" \
  -e AGENTD_BOOTSTRAP_KEY="$key" "$container" -- \
  /usr/local/bin/agentd --config /etc/agentd/agentd.yaml --listen "127.0.0.1:$port" >"$log" 2>&1 &
run_pid=$!

if "$python" "$repo/deploy/tests/grpc_health_check.py" "127.0.0.1:$port" --wait 30 --pid "$run_pid"; then
  ok "grpc.health.v1 answers SERVING on 127.0.0.1:$port"
else
  fatal "health did not answer SERVING"
fi
agentd_pid=$(pgrep -x -f "/usr/local/bin/agentd --config /etc/agentd/agentd.yaml --listen 127.0.0.1:$port")
if [ -n "$agentd_pid" ] && [ "$(awk '/^Uid:/ { print $2 }' "/proc/$agentd_pid/status")" = 10001 ]; then
  ok "agentd runs as uid 10001 (pid $agentd_pid)"
else
  fail "agentd process not found or not uid 10001 (pid '${agentd_pid}')"
fi

# 6. An echo turn through agentctl, authenticated with the bootstrap key.
ctl=("$agentctl" --addr "127.0.0.1:$port" --api-key "$key" --timeout 10)
json_field() { "$python" -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
agent_id=$("${ctl[@]}" -o json agent create --name image-test --model echo | json_field agent_id) \
  || fatal "agentctl agent create failed"
ok "agent created: $agent_id"
session_id=$("${ctl[@]}" -o json session create --agent "$agent_id" | json_field session_id) \
  || fatal "agentctl session create failed"
ok "session created: $session_id"
text="hello from the agentd image $$"
turn=$("${ctl[@]}" -o json send "$session_id" "$text") || fatal "agentctl send failed"
if [ "$(json_field status <<<"$turn")" = TURN_STATUS_COMPLETED ] && [ "$(json_field output_text <<<"$turn")" = "$text" ]; then
  ok "echo turn completed with the sent text"
else
  fail "echo turn: $turn"
fi

# 7. State went to the mounted volume, the bootstrap key was taken from the env and not logged.
if [ -f "$data/CURRENT" ]; then ok "RocksDB files are in the mounted /data"; else fail "no RocksDB CURRENT in the mounted /data"; fi
if [ ! -e "$data/bootstrap.key" ]; then ok "no bootstrap.key written (the key came from AGENTD_BOOTSTRAP_KEY)"; else fail "bootstrap.key written although AGENTD_BOOTSTRAP_KEY was set"; fi
if ! grep -qF "$key" "$log"; then ok "the bootstrap key does not appear in the output"; else fail "the bootstrap key appears in the output"; fi

# 8. SIGTERM: drain, exit 0 (what Kubernetes does on pod deletion).
kill -TERM "$agentd_pid"
if wait_exit "$run_pid" 30; then
  run_pid=""
  agentd_pid=""
  if [ "$wait_rc" -eq 0 ] && grep -q 'agentd stopped' "$log"; then
    ok "SIGTERM: drained and exited 0"
  else
    fail "SIGTERM: exit $wait_rc; output: $(tail -5 "$log")"
  fi
else
  fail "SIGTERM: still running after 30s"
fi

finish
