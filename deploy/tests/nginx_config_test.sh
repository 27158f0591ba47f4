#!/usr/bin/env bash
# nginx_config: renders deploy/nginx/agentd.conf with deploy/nginx/render.sh (the failover form,
# the --sharded form, and the failover form with a first replica that never listens), checks
# each with `nginx -t`, then runs the three nginx instances as a non-root user on loopback ports
# in front of two real agentd replicas (RocksDB in temp dirs, the echo model) and proves:
#   - grpc.health.v1 and request/response metadata pass through nginx;
#   - affinity: every call with the same x-agentd-session reaches the same replica, different
#     session ids reach both replicas, calls without the header are spread round-robin;
#   - sessions created through nginx with a client-chosen id are used through nginx: RunTurn,
#     StreamTurn and WatchEvents (streams) work, on both replicas;
#   - client_max_body_size lets a 2 MiB request (nginx's default limit is 1 MiB) reach agentd,
#     and an 18 MiB one gets RESOURCE_EXHAUSTED from nginx as a gRPC status;
#   - failover: a refused connection is retried on the next replica; with one replica killed,
#     the failover form sends its calls to the other replica, while the --sharded form answers
#     UNAVAILABLE (a gRPC status from nginx) for the dead shard's sessions instead.
# Each replica holds one agent of its own (created directly, not through nginx), so ListAgents
# through nginx names the replica that answered.
#
#   deploy/tests/nginx_config_test.sh BUILD_DIR
#
# Everything lives in one temp dir; nginx and agentd are stopped on exit, failure included.
set -uo pipefail

[ "$#" -eq 1 ] || { echo "usage: $(basename "$0") BUILD_DIR" >&2; exit 2; }
build_dir=$(cd "$1" && pwd) || exit 2
repo=$(cd "$(dirname "$0")/../.." && pwd)
agentd=$build_dir/bin/agentd
python=/usr/bin/python3

source "$repo/deploy/tests/report.sh" nginx_config
fatal() { fail "$*"; finish; }

nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx_bin" ] || fatal "nginx is not installed (Debian package nginx; run scripts/setup.sh)"
[ -x "$agentd" ] || fatal "$agentd not built"
[ -f "$repo/sdk/python/agentd/v1/session_pb2_grpc.py" ] ||
  fatal "Python stubs missing in sdk/python/agentd/v1 (build the project first)"

work=$(mktemp -d "${TMPDIR:-/tmp}/agentd-nginx-test.XXXXXX")
pids=()        # every process started here (agentd, nginx masters)
nginx_pids=()  # the nginx masters: stopped with SIGTERM first, so that they stop their workers
cleanup() {
  local pid end child
  for pid in "${nginx_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  end=$((SECONDS + 5))
  for pid in "${nginx_pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
    for child in $(pgrep -P "$pid"); do kill -KILL "$child" 2>/dev/null; done
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# nginx must not need root: as root, run it as nobody (setpriv execs, so $! is nginx itself).
as_nginx_user=()
nginx_user=$(id -un)
if [ "$(id -u)" -eq 0 ]; then
  nginx_user=nobody
  as_nginx_user=(setpriv --reuid=nobody --regid="$(id -g nobody)" --clear-groups --)
  chmod 0711 "$work"
fi

# 1. Render and check both forms.
port_a=$(free_port)
port_b=$(free_port)
upstreams=127.0.0.1:$port_a,127.0.0.1:$port_b
nginx_port=$(free_port)
sharded_port=$(free_port)
refused_port=$(free_port)
never_listened=127.0.0.1:$(free_port)
render() {
  local label=$1 dir=$2
  shift 2
  if bash "$repo/deploy/nginx/render.sh" "$@" "$dir" >"$work/$label-render.log" 2>&1; then
    ok "[$label] render.sh $*"
  else
    fatal "[$label] render.sh $*: $(cat "$work/$label-render.log")"
  fi
  [ "$(id -u)" -eq 0 ] && chown -R nobody "$dir"
  if "${as_nginx_user[@]}" "$nginx_bin" -t -p "$dir" -c "$dir/nginx.conf" >"$work/$label-t.log" 2>&1; then
    ok "[$label] nginx -t accepts the rendered config as $nginx_user"
  else
    fatal "[$label] nginx -t: $(cat "$work/$label-t.log")"
  fi
}
render failover "$work/nginx" "127.0.0.1:$nginx_port" "$upstreams"
render sharded "$work/nginx-sharded" --sharded "127.0.0.1:$sharded_port" "$upstreams"
# The failover form with a first replica that never listens (connection refused).
render refused "$work/nginx-refused" "127.0.0.1:$refused_port" "$never_listened,127.0.0.1:$port_a"

# What the rendering must contain (the source file's directives survive, the marked lines are
# replaced).
expect_line() {
  local label=$1 file=$2 pattern=$3
  if grep -Eq -- "$pattern" "$file"; then ok "[$label] has: $pattern"; else fail "[$label] lacks: $pattern"; fi
}
for pattern in '^ *hash \$http_x_agentd_session consistent;' "^ *listen 127\.0\.0\.1:$nginx_port http2;" \
               "^ *server 127\.0\.0\.1:$port_a max_fails=1 fail_timeout=10s;" \
               "^ *server 127\.0\.0\.1:$port_b max_fails=1 fail_timeout=10s;" \
               '^ *grpc_pass grpc://agentd;' '^ *grpc_next_upstream error timeout;' \
               '^ *grpc_read_timeout 3600s;' '^ *client_max_body_size 17m;'; do
  expect_line failover "$work/nginx/agentd.conf" "$pattern"
done
if grep -q 'agentd-0.agentd-headless' "$work/nginx/agentd.conf"; then fail "[failover] the example servers are still there"; fi
expect_line sharded "$work/nginx-sharded/agentd.conf" "^ *server 127\.0\.0\.1:$port_a max_fails=0;"
expect_line sharded "$work/nginx-sharded/agentd.conf" '^ *grpc_next_upstream off;'
if ! grep -rq non_idempotent "$repo/deploy/nginx/agentd.conf" || grep -Eq '^[^#]*non_idempotent' "$repo/deploy/nginx/agentd.conf"; then
  fail "agentd.conf must explain, and not enable, non_idempotent retries"
else
  ok "agentd.conf does not retry calls that reached agentd (no non_idempotent)"
fi

# 2. Two agentd replicas (independent RocksDB shards), the same bootstrap key.
key="nginx-test-key-$$-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
start_agentd() {
  local name=$1 port=$2
  mkdir -p "$work/$name"
  AGENTD_BOOTSTRAP_KEY=$key "$agentd" --listen "127.0.0.1:$port" --data-dir "$work/$name/data" \
    >"$work/$name/log" 2>&1 &
  pids+=($!)
  started_pid=$!
}
wait_agentd() {
  local name=$1 port=$2 pid=$3
  if "$python" "$repo/deploy/tests/grpc_health_check.py" "127.0.0.1:$port" --wait 30 --pid "$pid" >/dev/null; then
    ok "agentd $name serves on 127.0.0.1:$port"
  else
    fatal "agentd $name did not start: $(tail -3 "$work/$name/log")"
  fi
}
start_agentd a "$port_a"
pid_a=$started_pid
start_agentd b "$port_b"
pid_b=$started_pid
wait_agentd a "$port_a" "$pid_a"
wait_agentd b "$port_b" "$pid_b"

# 3. Both nginx forms, in the foreground (pid = nginx's master), as the non-root user.
start_nginx() {
  local label=$1 dir=$2 port=$3
  "${as_nginx_user[@]}" "$nginx_bin" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' \
    >"$dir/logs/stdout.log" 2>&1 &
  pids+=($!)
  nginx_pids+=($!)
  # Listening (a TCP connect, no call: the [refused] instance's first call is the driver's).
  if "$python" - "$port" "$!" <<'PY'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
end = time.monotonic() + 10
while time.monotonic() < end and os.path.exists(f"/proc/{pid}"):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
  then
    ok "[$label] nginx listens on 127.0.0.1:$port"
  else
    fatal "[$label] nginx did not start: $(tail -3 "$dir/logs/error.log" "$dir/logs/stdout.log")"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    if [ "$(awk '/^Uid:/ { print $2 }' "/proc/$!/status")" = "$(id -u nobody)" ]; then
      ok "[$label] nginx runs as nobody"
    else
      fail "[$label] nginx is not running as nobody"
    fi
  fi
  if [ "$label" != refused ]; then
    if "$python" "$repo/deploy/tests/grpc_health_check.py" "127.0.0.1:$port" --wait 10 >/dev/null; then
      ok "[$label] grpc.health.v1 through nginx answers SERVING"
    else
      fail "[$label] grpc.health.v1 through nginx does not answer SERVING"
    fi
  fi
}
start_nginx failover "$work/nginx" "$nginx_port"
start_nginx sharded "$work/nginx-sharded" "$sharded_port"
start_nginx refused "$work/nginx-refused" "$refused_port"

# 4. The calls (gRPC stubs of sdk/python, no SDK retries that could hide a misrouted call).
cat >"$work/drive.py" <<'PY'
import os
import signal
import sys
import time

import grpc

from agentd.v1 import agent_pb2, agent_pb2_grpc, common_pb2, session_pb2, session_pb2_grpc

proxy, sharded_proxy, refused_proxy, addr_a, addr_b, key, pid_b = sys.argv[1:8]
failures = 0


def ok(what):
    print(f"ok   - {what}", flush=True)


def fail(what):
    global failures
    failures += 1
    print(f"FAIL - {what}", flush=True)


def check(cond, what, detail=""):
    if cond:
        ok(what)
    else:
        fail(f"{what}: {detail}" if detail else what)
    return cond


def md(session=None, **extra):
    m = [("authorization", f"Bearer {key}")]
    if session is not None:
        m.append(("x-agentd-session", session))
    m.extend(extra.items())
    return m


channels = {name: grpc.insecure_channel(addr) for name, addr in
            [("proxy", proxy), ("sharded", sharded_proxy), ("refused", refused_proxy),
             ("a", addr_a), ("b", addr_b)]}
agents = {n: agent_pb2_grpc.AgentServiceStub(c) for n, c in channels.items()}
sessions = {n: session_pb2_grpc.SessionServiceStub(c) for n, c in channels.items()}

# One agent per replica, created directly: ListAgents then names the replica that answered.
agent_of = {}
for replica in ("a", "b"):
    created = agents[replica].CreateAgent(agent_pb2.CreateAgentRequest(
        agent=agent_pb2.Agent(name=f"replica-{replica}", model="echo")), metadata=md(), timeout=10)
    agent_of[replica] = created.agent_id


def replica_of(via, session=None):
    reply = agents[via].ListAgents(agent_pb2.ListAgentsRequest(page_size=10),
                                   metadata=md(session), timeout=10)
    names = sorted(a.name for a in reply.agents)
    if names == ["replica-a"]:
        return "a"
    if names == ["replica-b"]:
        return "b"
    raise AssertionError(f"unexpected agents {names}")


# Metadata both ways: a request header reaches agentd, which echoes it as a response header.
request_id = f"nginx-test-{os.getpid()}"
_, call = agents["proxy"].ListAgents.with_call(
    agent_pb2.ListAgentsRequest(), metadata=md(**{"x-agentd-request-id": request_id}), timeout=10)
echoed = dict(call.initial_metadata()).get("x-agentd-request-id")
check(echoed == request_id, "request and response metadata pass through nginx (x-agentd-request-id)",
      f"sent {request_id}, got {echoed}")

# Without the header: round-robin over both replicas.
plain = [replica_of("proxy") for _ in range(6)]
check(set(plain) == {"a", "b"}, "calls without x-agentd-session reach both replicas", plain)

# Affinity: 24 session ids x 5 calls each.
home = {}
stable = True
for i in range(24):
    sid = f"sess-{os.getpid()}-{i}"
    seen = {replica_of("proxy", sid) for _ in range(5)}
    if len(seen) != 1:
        stable = False
        fail(f"x-agentd-session {sid} reached {sorted(seen)}")
    home[sid] = seen.pop()
check(stable, "5 calls with the same x-agentd-session reach the same replica (24 session ids)")
spread = sorted(set(home.values()))
check(spread == ["a", "b"], "different session ids are spread over both replicas", spread)
same = all(replica_of("sharded", sid) == home[sid] for sid in list(home)[:8])
check(same, "the --sharded form maps session ids to the same replicas")

# Sessions created through nginx with client-chosen ids, used through nginx.
picked = {r: next(s for s, h in home.items() if h == r) for r in ("a", "b")}
for replica, sid in picked.items():
    other = "b" if replica == "a" else "a"
    sessions["proxy"].CreateSession(session_pb2.CreateSessionRequest(
        agent_id=agent_of[replica], session_id=sid), metadata=md(sid), timeout=10)
    sessions[replica].GetSession(session_pb2.GetSessionRequest(session_id=sid), metadata=md(), timeout=10)
    try:
        sessions[other].GetSession(session_pb2.GetSessionRequest(session_id=sid), metadata=md(), timeout=10)
        fail(f"session {sid} exists on replica {other} too")
    except grpc.RpcError as err:
        check(err.code() == grpc.StatusCode.NOT_FOUND,
              f"CreateSession through nginx created {sid} on replica {replica} only", err.code())
    texts = [f"turn {n} on {replica}" for n in range(3)]
    results = [sessions["proxy"].RunTurn(session_pb2.RunTurnRequest(
        session_id=sid, input=[session_pb2.InputMessage(role=common_pb2.ROLE_USER, text=t)]),
        metadata=md(sid), timeout=20) for t in texts]
    check([r.output_text for r in results] == texts and
          all(r.status == common_pb2.TURN_STATUS_COMPLETED for r in results),
          f"3 RunTurn calls through nginx completed on replica {replica}")
    text = f"streamed on {replica}"
    events = list(sessions["proxy"].StreamTurn(session_pb2.RunTurnRequest(
        session_id=sid, input=[session_pb2.InputMessage(role=common_pb2.ROLE_USER, text=text)]),
        metadata=md(sid), timeout=20))
    kinds = [e.WhichOneof("kind") for e in events]
    last = events[-1].result if events and kinds[-1] == "result" else None
    check(last is not None and last.status == common_pb2.TURN_STATUS_COMPLETED and
          last.output_text == text and kinds.count("event") >= 2,
          f"StreamTurn through nginx streamed {len(events)} messages, the result last (replica {replica})",
          kinds)
    last_seq = last.last_seq if last is not None else 0
    watch = sessions["proxy"].WatchEvents(session_pb2.WatchEventsRequest(session_id=sid, after_seq=0),
                                         metadata=md(sid), timeout=20)
    seqs = []
    for ev in watch:
        seqs.append(ev.seq)
        if ev.seq >= last_seq:
            break
    watch.cancel()
    check(last_seq > 0 and seqs == list(range(1, last_seq + 1)),
          f"WatchEvents through nginx delivered events 1..{last_seq} (replica {replica})", seqs[:5])

# A 2 MiB request (nginx's default limit is 1 MiB) reaches agentd, which judges it.
try:
    sessions["proxy"].GetSession(session_pb2.GetSessionRequest(session_id="x" * (2 << 20)),
                                 metadata=md(), timeout=10)
    fail("a 2 MiB session id was accepted")
except grpc.RpcError as err:
    check(err.code() == grpc.StatusCode.INVALID_ARGUMENT,
          "a 2 MiB request passes nginx and agentd answers it (INVALID_ARGUMENT)",
          f"{err.code()}: {err.details()[:200]}")

# Over client_max_body_size: a gRPC status from nginx, not an HTML page.
try:
    sessions["proxy"].GetSession(session_pb2.GetSessionRequest(session_id="x" * (18 << 20)),
                                 metadata=md(), timeout=10)
    fail("an 18 MiB request was accepted")
except grpc.RpcError as err:
    check(err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "client_max_body_size" in err.details(),
          "an 18 MiB request gets RESOURCE_EXHAUSTED from nginx", f"{err.code()}: {err.details()[:200]}")

# Failover: replica b dies.
os.kill(int(pid_b), signal.SIGKILL)
def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie until the shell reaps it
    except FileNotFoundError:
        return True


for _ in range(100):
    if gone(pid_b):
        break
    time.sleep(0.05)
b_sid = picked["b"]
# A call that nginx had already written to an open (kept-alive) connection to b when b died
# may fail: nginx cannot know whether b received it, so it must not send it elsewhere (the
# non-idempotent rule). That call fails with UNAVAILABLE and takes b out (max_fails=1); at most
# one such call per nginx worker (1 here). Every other call must be served by a.
answered, unavailable = [], 0
for _ in range(4):
    try:
        answered.append(replica_of("proxy", b_sid))
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.UNAVAILABLE:
            fail(f"failover form: {err.code()}: {err.details()}")
        unavailable += 1
check(unavailable <= 1 and answered == ["a"] * (4 - unavailable),
      "failover form: a dead replica's session ids go to the live one",
      f"answered by {answered}, {unavailable} UNAVAILABLE")
try:
    plain = [replica_of("proxy") for _ in range(4)]
    check(plain == ["a"] * 4, "failover form: calls without the header all reach the live replica", plain)
except grpc.RpcError as err:
    fail(f"failover form: a call without the header failed: {err.code()}: {err.details()}")
# A replica that refuses connections (nothing was sent): nginx retries on the next one. The
# first server of this nginx never listened; of its first two (round-robin) calls, one goes
# there first. The shell checks in the access log that it did and was retried.
try:
    refused = [replica_of("refused") for _ in range(2)]
    check(refused == ["a", "a"],
          "failover form: calls refused by one replica are retried on the next (connection refused)",
          refused)
except grpc.RpcError as err:
    fail(f"failover form: the call refused by the first replica failed: {err.code()}: {err.details()}")
try:
    replica_of("sharded", b_sid)
    fail("sharded form: the dead shard's session id was answered by another shard")
except grpc.RpcError as err:
    check(err.code() == grpc.StatusCode.UNAVAILABLE and "(nginx)" in err.details(),
          "sharded form: a dead shard's session id gets UNAVAILABLE from nginx (no failover)",
          f"{err.code()}: {err.details()}")
check(replica_of("sharded", picked["a"]) == "a", "sharded form: the live shard still serves its sessions")

sys.exit(1 if failures else 0)
PY

start=$SECONDS
# stderr of this block to /dev/null: bash's "Killed" notice for replica b, which the driver kills.
{
  PYTHONPATH=$repo/sdk/python "$python" "$work/drive.py" "127.0.0.1:$nginx_port" "127.0.0.1:$sharded_port" \
    "127.0.0.1:$refused_port" "127.0.0.1:$port_a" "127.0.0.1:$port_b" "$key" "$pid_b" >"$work/drive.log" 2>&1
  rc=$?
  kill -KILL "$pid_b"  # (the driver did, unless it failed before)
  wait "$pid_b"
} 2>/dev/null
while IFS= read -r line; do
  case "$line" in
    "ok   - "*) ok "${line#ok   - }" ;;
    "FAIL - "*) fail "${line#FAIL - }" ;;
    *) echo "$line" ;;
  esac
done <"$work/drive.log"
[ "$rc" -eq 0 ] || fail "the gRPC driver exited $rc"
echo "# gRPC checks took $((SECONDS - start))s"

# 5. nginx's own record: its access log names both replicas; no emergencies or alerts.
access=$work/nginx/logs/access.log
for port in "$port_a" "$port_b"; do
  if grep -q "upstream=127.0.0.1:$port" "$access"; then ok "access log names replica 127.0.0.1:$port"
  else fail "access log never names replica 127.0.0.1:$port"; fi
done
if grep -q 'session="sess-' "$access"; then ok "access log records x-agentd-session"; else fail "access log lacks x-agentd-session"; fi
if grep -q "upstream=$never_listened, 127.0.0.1:$port_a " "$work/nginx-refused/logs/access.log"; then
  ok "[refused] access log shows the call tried $never_listened, then 127.0.0.1:$port_a"
else
  fail "[refused] access log does not show the retry: $(cat "$work/nginx-refused/logs/access.log")"
fi
for dir in "$work/nginx" "$work/nginx-sharded" "$work/nginx-refused"; do
  if grep -Eq '\[(emerg|alert|crit)\]' "$dir/logs/error.log"; then
    fail "$(basename "$dir") error.log: $(grep -E '\[(emerg|alert|crit)\]' "$dir/logs/error.log" | head -3)"
  else
    ok "$(basename "$dir") error.log has no emerg/alert/crit lines"
  fi
done

# 6. Graceful stop: SIGQUIT to the nginx masters, SIGTERM to the remaining agentd.
for pid in "${pids[@]}"; do
  [ "$pid" = "$pid_a" ] || [ "$pid" = "$pid_b" ] || kill -QUIT "$pid" 2>/dev/null
done
kill -TERM "$pid_a" 2>/dev/null
end=$((SECONDS + 15))
for pid in "${pids[@]}"; do
  while kill -0 "$pid" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
        [ "$SECONDS" -lt "$end" ]; do
    sleep 0.1
  done
done
alive=0
for pid in "${pids[@]}"; do
  if kill -0 "$pid" 2>/dev/null && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then alive=1; fi
done
if [ "$alive" -eq 0 ]; then ok "nginx and agentd stopped"; else fail "a process did not stop within 15s"; fi

finish
