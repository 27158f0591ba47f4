#!/usr/bin/env bash
# agentd side by side with peers (issue #8): one command that installs the peers, runs the same
# agent step (docs/benchmarks.md, "Load generator") on agentd (build/bin/loadgen) and on LangGraph
# (langgraph_peer.mjs) with SqliteSaver and PostgresSaver, each with the full messages channel
# and with the beta delta channel (systems langgraph-{sqlite,postgres}[-delta]), against ONE
# bench/mock-openai (--think-ms 0), for two closed-loop workloads (1 session, and --sessions
# sessions), in interleaved rounds, and writes into OUT
# (default bench/peers/results/, git-ignored):
#   results.md          the table: medians over rounds, ratios agentd ÷ peer
#   results.json        every RESULT line (loadgen's keys), with round/workload/system
#   csv/*.csv           latency by turn index per run (loadgen's CSV columns)
#   logs/*.log          each run's output
#   latency_by_turn.png p50 latency vs turn index, log y, one line per system, 1 session (gnuplot)
# Builds nothing. Exit 0 only if every process started and every step of every run succeeded;
# timings never fail it.
#
#   bench/peers/run_all.sh                 # agentd 1×1000 and 64×100; peers 1×200 and 64×10
#   bench/peers/run_all.sh --quick         # 1–2 minutes: agentd 1×200, 64×10; peers 1×30, 64×2
#   bench/peers/run_all.sh --rounds 3 --out /tmp/peers --systems agentd,langgraph-sqlite-delta
# Step counts: --agentd-turns-1 --agentd-turns-many --peer-turns-1 --peer-turns-many; the many-
# session workload's size: --sessions (64). AGENTD_BIN_DIR overrides build/bin;
# AGENTD_BENCH_PEERS_DIR (or --modules) the npm cache dir (default ~/.cache/agentd-bench-peers);
# AGENTD_PG_BIN PostgreSQL's bin dir (default /usr/lib/postgresql/15/bin).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
bin=${AGENTD_BIN_DIR:-$repo/build/bin}
modules=${AGENTD_BENCH_PEERS_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-bench-peers}
pg_bin=${AGENTD_PG_BIN:-/usr/lib/postgresql/15/bin}
out=$here/results
rounds=1
many=64
agentd_t1=1000 agentd_tn=100 peer_t1=200 peer_tn=10
systems=agentd,langgraph-sqlite,langgraph-sqlite-delta,langgraph-postgres,langgraph-postgres-delta

die() { echo "run_all: $*" >&2; exit 2; }
need_int() { [[ $2 =~ ^[1-9][0-9]*$ ]] || die "$1 needs a positive integer, got '$2'"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) agentd_t1=200 agentd_tn=10 peer_t1=30 peer_tn=2; shift ;;
    --rounds) need_int "$1" "${2-}"; rounds=$2; shift 2 ;;
    --sessions) need_int "$1" "${2-}"; ((${2} >= 2)) || die "--sessions must be at least 2"; many=$2; shift 2 ;;
    --agentd-turns-1) need_int "$1" "${2-}"; agentd_t1=$2; shift 2 ;;
    --agentd-turns-many) need_int "$1" "${2-}"; agentd_tn=$2; shift 2 ;;
    --peer-turns-1) need_int "$1" "${2-}"; peer_t1=$2; shift 2 ;;
    --peer-turns-many) need_int "$1" "${2-}"; peer_tn=$2; shift 2 ;;
    --systems) systems=${2-}; shift 2 ;;
    --out) [[ -n ${2-} ]] || die "--out needs a directory"; out=$2; shift 2 ;;
    --modules) [[ -n ${2-} ]] || die "--modules needs a directory"; modules=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
IFS=, read -ra system_list <<<"$systems"
for s in "${system_list[@]}"; do
  [[ $s =~ ^(agentd|langgraph-(sqlite|postgres)(-delta)?)$ ]] ||
    die "--systems: unknown system '$s' (agentd, langgraph-sqlite[-delta], langgraph-postgres[-delta])"
done
has_system() { [[ ",$systems," == *",$1"[,-]* ]]; }

# (b) Binaries: built with the benchmarks on; this script builds nothing.
for b in agentd loadgen mock-openai; do
  [[ -x $bin/$b ]] || die "$bin/$b is missing; build it: cmake -S . -B build -DAGENTD_BUILD_BENCH=ON && cmake --build build --target agentd loadgen mock-openai -j2"
done
command -v node >/dev/null || die "node not found (Debian package nodejs)"

# (a) Peers (npm, pinned, outside the repo) and gnuplot.
if has_system langgraph-sqlite || has_system langgraph-postgres; then
  bash "$repo/scripts/npm-cache-install.sh" bench-peers "$modules" \
    @langchain/langgraph@1.7.3 @langchain/core@1.4.0 \
    @langchain/langgraph-checkpoint-sqlite@1.0.4 @langchain/langgraph-checkpoint-postgres@1.0.5 ||
    die "installing the peers into $modules failed"
  sqlite_ok() {
    (cd "$modules" && node -e 'new (require("better-sqlite3"))(":memory:").close()') >/dev/null 2>&1
  }
  if ! sqlite_ok; then
    # npm skips install scripts here, so better-sqlite3's native binding is built by hand.
    echo "run_all: building better-sqlite3's native binding (node-gyp)" >&2
    gyp=/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
    [[ -f $gyp ]] || die "node-gyp not found at $gyp (Debian package npm)"
    (cd "$modules/node_modules/better-sqlite3" && flock "$modules/.install.lock" \
      node "$gyp" rebuild --release --nodedir=/usr) >"$modules/node-gyp.log" 2>&1 ||
      die "node-gyp rebuild of better-sqlite3 failed; see $modules/node-gyp.log"
    sqlite_ok || die "better-sqlite3 still does not load after node-gyp rebuild"
  fi
fi
if has_system langgraph-postgres; then
  for tool in initdb pg_ctl postgres; do
    [[ -x $pg_bin/$tool ]] || die "$pg_bin/$tool not found (apt-get install postgresql-15, or set AGENTD_PG_BIN)"
  done
fi
if ! command -v gnuplot >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "run_all: installing gnuplot-nox" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y gnuplot-nox >/dev/null ||
      die "apt-get install gnuplot-nox failed (try apt-get update first)"
  else
    die "gnuplot not found: apt-get install gnuplot-nox"
  fi
fi

mkdir -p "$out/csv" "$out/logs" || die "cannot create $out"
out=$(cd "$out" && pwd)
rm -f "$out"/csv/*.csv "$out"/logs/*.log "$out"/plot/*.dat "$out"/latency_by_turn.png
tmp=$(mktemp -d /tmp/agentd-peers.XXXXXX)
chmod 0711 "$tmp"  # PostgreSQL runs as the postgres user under it when we are root
mock_pid="" agentd_pid="" pg_data=""
pg_as=()
[[ $(id -u) -eq 0 ]] && pg_as=(runuser -u postgres --)
stop_pg() {
  [[ -n $pg_data ]] || return 0
  (cd / && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop) >/dev/null 2>&1 ||
    (cd / && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop) >/dev/null 2>&1
  pg_data=""
}
stop_agentd() {
  [[ -n $agentd_pid ]] && kill "$agentd_pid" 2>/dev/null && wait "$agentd_pid" 2>/dev/null
  agentd_pid=""
}
cleanup() {
  stop_agentd
  stop_pg
  [[ -n $mock_pid ]] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "run_all: interrupted" >&2; exit 130' INT TERM

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })'
}
# Waits (up to 20 s) until file $1 has a line matching $2 while pid $3 lives; prints the line.
wait_for_line() {
  local deadline=$((SECONDS + 20))
  while ((SECONDS < deadline)); do
    grep -m1 -E "$2" "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || break
    sleep 0.05
  done
  echo "run_all: no \"$2\" from pid $3; its output:" >&2
  tail -n 20 "$1" >&2
  return 1
}

# (c) One mock model for everyone.
"$bin/mock-openai" --port 0 --think-ms 0 >"$tmp/mock.log" 2>&1 &
mock_pid=$!
mock_port=$(wait_for_line "$tmp/mock.log" '^LISTENING [0-9]+' "$mock_pid" | awk '{print $2}')
[[ -n $mock_port ]] || die "mock-openai did not start"
mock_url=http://127.0.0.1:$mock_port/v1

# Starts agentd (durability sync, fresh data dir $1/data) with the mock as model `mock`; sets
# agentd_pid and agentd_addr.
start_agentd() {
  local dir=$1
  rm -rf "$dir" && mkdir -p "$dir"
  cat >"$dir/agentd.yaml" <<EOF
durability: sync
metrics_listen: "127.0.0.1:0"
backends:
  - { name: mock, type: openai, base_url: "$mock_url", max_concurrency: 1024 }
models:
  - { name: mock, deployments: [{ backend: mock, model: mock-1 }] }
EOF
  AGENTD_BOOTSTRAP_KEY=$agentd_key "$bin/agentd" --config "$dir/agentd.yaml" --listen 127.0.0.1:0 \
    --data-dir "$dir/data" --log-level info >"$dir/agentd.log" 2>&1 &
  agentd_pid=$!
  local line
  line=$(wait_for_line "$dir/agentd.log" 'agentd serving on 127\.0\.0\.1:[0-9]+' "$agentd_pid") || {
    stop_agentd
    return 1
  }
  agentd_addr=$(grep -oE '127\.0\.0\.1:[0-9]+' <<<"$line" | head -1)
  line=$(wait_for_line "$dir/agentd.log" 'metrics on http://127\.0\.0\.1:[0-9]+' "$agentd_pid") || {
    stop_agentd
    return 1
  }
  agentd_metrics=$(grep -oE '127\.0\.0\.1:[0-9]+' <<<"$line" | head -1)
}

# Starts a throwaway PostgreSQL cluster (trust auth, loopback, socket in its own dir) in $1;
# sets pg_data and pg_dsn.
start_pg() {
  local dir=$1 port
  mkdir -p "$dir"
  [[ ${#pg_as[@]} -gt 0 ]] && chown postgres: "$dir"
  chmod 0700 "$dir"
  (cd / && "${pg_as[@]}" "$pg_bin/initdb" -D "$dir/data" -A trust -U agentd -E UTF8 --locale=C \
    --no-sync --no-instructions) >"$tmp/pg-initdb.log" 2>&1 ||
    { echo "run_all: initdb failed: $(tail -3 "$tmp/pg-initdb.log")" >&2; return 1; }
  port=$(free_port)
  pg_data=$dir/data
  (cd / && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start) >"$tmp/pg-start.log" 2>&1 ||
    { echo "run_all: pg_ctl start failed: $(tail -3 "$dir/server.log")" >&2; return 1; }
  pg_dsn="postgresql://agentd@127.0.0.1:$port/postgres"
}

agentd_key="agd-peers-$RANDOM$RANDOM$RANDOM"
manifest=$out/runs.tsv
: >"$manifest"
failures=0

# Runs one configuration: system $1, workload key $2, sessions $3, turns $4, round $5.
run_one() {
  local system=$1 wl=$2 sessions=$3 turns=$4 round=$5
  local tag=${system}_${wl}_r${round} status=0
  local log=$out/logs/$tag.log csv=$out/csv/$tag.csv dir=$tmp/$tag
  # -delta: LangGraph's (beta) delta messages channel instead of the full list per checkpoint.
  local messages=full
  [[ $system == *-delta ]] && messages=delta
  echo "run_all: round $round: $system, $sessions session(s) × $turns steps" >&2
  case $system in
    agentd)
      local channels=$((sessions < 4 ? sessions : 4))
      # A failed start is retried once (agentd's binary may be being rebuilt at that moment).
      if ! start_agentd "$dir"; then
        echo "run_all: agentd did not start; retrying once" >&2
        sleep 3
        start_agentd "$dir" || { status=2; cp "$dir/agentd.log" "$log" 2>/dev/null; }
      fi
      if ((status == 0)); then
        AGENTD_API_KEY=$agentd_key "$bin/loadgen" --addr "$agentd_addr" --model mock \
          --sessions "$sessions" --turns "$turns" --channels "$channels" --data-dir "$dir/data" \
          --server-pid "$agentd_pid" --mock-pid "$mock_pid" --metrics "$agentd_metrics" \
          --csv "$csv" --label agentd >"$log" 2>&1 ||
          status=$?
        ((status == 0)) || { echo "--- agentd log tail" >>"$log"; tail -n 20 "$dir/agentd.log" >>"$log"; }
        stop_agentd
      fi
      ;;
    langgraph-sqlite*)
      mkdir -p "$dir"
      node "$here/langgraph_peer.mjs" --modules "$modules" --mock-url "$mock_url" --store sqlite \
        --messages "$messages" \
        --data-dir "$dir" --sessions "$sessions" --turns "$turns" --mock-pid "$mock_pid" \
        --csv "$csv" --label "$system" >"$log" 2>&1 || status=$?
      ;;
    langgraph-postgres*)
      if start_pg "$dir"; then
        node "$here/langgraph_peer.mjs" --modules "$modules" --mock-url "$mock_url" --store postgres \
          --messages "$messages" \
          --dsn "$pg_dsn" --pg-data "$pg_data" --sessions "$sessions" --turns "$turns" \
          --mock-pid "$mock_pid" --csv "$csv" --label "$system" >"$log" 2>&1 || status=$?
      else
        status=2
      fi
      stop_pg
      ;;
  esac
  rm -rf "$dir"
  grep -E '^  (steps|all) ' "$log" 2>/dev/null | sed 's/^/    /' >&2
  if ((status != 0)); then
    failures=$((failures + 1))
    echo "run_all: $tag FAILED (exit $status); see $log" >&2
    tail -n 5 "$log" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$wl" "$system" "$sessions" "$turns" "$status" \
    "$log" "$csv" >>"$manifest"
}

# (d) Interleaved rounds: every system once per workload per round.
for ((round = 1; round <= rounds; ++round)); do
  for wl in 1 "$many"; do
    for system in "${system_list[@]}"; do
      if [[ $system == agentd ]]; then
        turns=$([[ $wl == 1 ]] && echo "$agentd_t1" || echo "$agentd_tn")
      else
        turns=$([[ $wl == 1 ]] && echo "$peer_t1" || echo "$peer_tn")
      fi
      run_one "$system" "s$wl" "$wl" "$turns" "$round"
    done
  done
done

# (e) The table, results.json and the plot.
node "$here/summarize.mjs" "$manifest" "$out" || failures=$((failures + 1))
if [[ -f $out/latency_by_turn.gp ]]; then
  gnuplot "$out/latency_by_turn.gp" 2>"$tmp/gnuplot.log" ||
    { echo "run_all: gnuplot failed: $(cat "$tmp/gnuplot.log")" >&2; failures=$((failures + 1)); }
fi
echo "run_all: wrote $out/results.md, results.json, csv/, logs/$([[ -f $out/latency_by_turn.png ]] && echo ", latency_by_turn.png")" >&2
if ((failures > 0)); then
  echo "run_all: $failures failure(s)" >&2
  exit 1
fi
