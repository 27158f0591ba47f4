#!/usr/bin/env bash
# k8s_manifests: renders the Kustomize base and every overlay with `kubectl kustomize`,
# validates every object offline against the Kubernetes schemas and the agentd rules
# (validate-manifests.js), starts the real agentd with each rendered agentd.yaml to prove agentd
# accepts it (a config with store.type postgres against a throwaway PostgreSQL 15 cluster on
# loopback, started once, and checks that agentd created its tables there), checks that the
# deliberately broken fixtures FAIL validation for the reasons they were broken for, and checks
# deploy/envoy/envoy.yaml and overlays/postgres/secret.example.yaml against the rendered
# manifests (Envoy itself is not available here).
#
#   deploy/tests/k8s_manifests_test.sh BUILD_DIR
#
# The npm packages are installed on first use by install-validator.sh into
# $AGENTD_K8S_VALIDATE_DIR (default ~/.cache/agentd-k8s-validate), outside the repo.
set -uo pipefail

[ "$#" -eq 1 ] || { echo "usage: $(basename "$0") BUILD_DIR" >&2; exit 2; }
build_dir=$(cd "$1" && pwd) || exit 2
here=$(cd "$(dirname "$0")" && pwd)
k8s=$(cd "$here/../k8s" && pwd)
agentd=$build_dir/bin/agentd
python=/usr/bin/python3

source "$here/report.sh" k8s_manifests

work=$(mktemp -d "${TMPDIR:-/tmp}/agentd-k8s-test.XXXXXX")
server_pid=""
pg_bin=${AGENTD_PG_BIN:-/usr/lib/postgresql/15/bin}
pg_as=()  # PostgreSQL refuses to run as root: as root, run it as the postgres user
pg_port=""
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  if [ -n "$pg_port" ]; then
    (cd / && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1)
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

# Tools: kubectl with Kustomize v4 or later (the overlays use `patches` and `replicas`; Debian
# 12's kubernetes-client 1.20 carries Kustomize v2 and cannot render them).
command -v kubectl >/dev/null || { fail "kubectl not found (needs kubectl >= 1.21 for kustomize v4+)"; finish; }
command -v node >/dev/null || { fail "node not found (Debian package nodejs)"; finish; }
kustomize_version=$(kubectl version --client -o json 2>/dev/null |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    try { console.log(JSON.parse(s).kustomizeVersion || ""); } catch (e) { console.log(""); } })')
if [[ "$kustomize_version" =~ ^v([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 4 ]; then
  ok "kubectl has Kustomize $kustomize_version"
else
  fail "kubectl's Kustomize is '${kustomize_version:-unknown}'; v4 or later is needed"
  finish
fi

export AGENTD_K8S_VALIDATE_DIR=${AGENTD_K8S_VALIDATE_DIR:-${XDG_CACHE_HOME:-${HOME:-$build_dir}/.cache}/agentd-k8s-validate}
if bash "$here/install-validator.sh" "$AGENTD_K8S_VALIDATE_DIR"; then
  ok "validator packages installed in $AGENTD_K8S_VALIDATE_DIR"
else
  fail "install-validator.sh failed"
  finish
fi

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A throwaway PostgreSQL cluster (trust auth, loopback, its socket in its own dir), started on
# first use; sets pg_dsn. Returns 1 (after reporting) if it cannot.
pg_dsn=""
start_postgres() {
  [ -n "$pg_dsn" ] && return 0
  local tool
  for tool in initdb pg_ctl postgres; do
    [ -x "$pg_bin/$tool" ] || { fail "PostgreSQL server binary $pg_bin/$tool not found (apt-get install postgresql-15, or set AGENTD_PG_BIN)"; return 1; }
  done
  mkdir -p "$work/pg"
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || { fail "running as root, but there is no postgres user to run PostgreSQL as"; return 1; }
    pg_as=(runuser -u postgres --)
    chmod 0711 "$work"
    chown postgres: "$work/pg"
  fi
  chmod 0700 "$work/pg"
  if ! (cd / && "${pg_as[@]}" "$pg_bin/initdb" -D "$work/pg/data" -A trust -U agentd -E UTF8 --locale=C \
          --no-sync --no-instructions) >"$work/pg-initdb.log" 2>&1; then
    fail "initdb failed: $(tail -3 "$work/pg-initdb.log")"
    return 1
  fi
  pg_port=$(free_port)
  if ! (cd / && "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w -t 60 \
          -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $work/pg" start) >"$work/pg-start.log" 2>&1; then
    fail "pg_ctl start failed: $(tail -3 "$work/pg-start.log" "$work/pg/server.log")"
    return 1
  fi
  pg_dsn="host=127.0.0.1 port=$pg_port dbname=postgres user=agentd connect_timeout=5"
  ok "throwaway PostgreSQL on 127.0.0.1:$pg_port"
}

# Starts agentd with a rendered agentd.yaml (listen, data dir, metrics and TLS files replaced by
# local ones; backend key env vars set to placeholders) and waits until it serves or exits.
config_accepted() {
  local label=$1 cfg=$2 dir=$work/$1-run
  local args=(--config "$cfg" --listen "127.0.0.1:$(free_port)" --data-dir "$dir/data"
              --metrics-listen "127.0.0.1:$(free_port)")
  mkdir -p "$dir"
  if grep -q '^tls:' "$cfg"; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
      -subj /CN=localhost -keyout "$dir/tls.key" -out "$dir/tls.crt" >/dev/null 2>&1 ||
      { fail "[$label] openssl could not make a test certificate"; return; }
    args+=(--tls-cert "$dir/tls.crt" --tls-key "$dir/tls.key")
  fi
  local envs=(AGENTD_BOOTSTRAP_KEY=config-check-not-a-secret-key) name
  for name in $(sed -n -e 's/^ *api_key_env: *//p' -e "s/.*env:\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p" "$cfg" | sort -u); do
    envs+=("$name=config-check-not-a-secret")
  done
  # store.type postgres: the DSN of the throwaway cluster in the variable the config names.
  local uses_pg=0 pg_env
  if node -e 'const c = require(process.argv[1]).load(require("fs").readFileSync(process.argv[2], "utf8")) || {};
              process.exit(c.store && c.store.type === "postgres" ? 0 : 1)' \
       "$AGENTD_K8S_VALIDATE_DIR/node_modules/js-yaml" "$cfg"; then
    start_postgres || return
    uses_pg=1
    pg_env=$(sed -n 's/^ *postgres_dsn_env: *//p' "$cfg")
    envs+=("${pg_env:-AGENTD_POSTGRES_DSN}=$pg_dsn")
  fi
  env "${envs[@]}" "$agentd" "${args[@]}" >"$dir/log" 2>&1 &
  server_pid=$!
  local end=$((SECONDS + 20))
  while kill -0 "$server_pid" 2>/dev/null && ! grep -q 'agentd serving on' "$dir/log" && [ "$SECONDS" -lt "$end" ]; do
    sleep 0.1
  done
  if grep -q 'agentd serving on' "$dir/log"; then
    kill -TERM "$server_pid"
    wait "$server_pid"
    local rc=$?
    server_pid=""
    if [ "$rc" -eq 0 ]; then ok "[$label] agentd starts with the rendered agentd.yaml and stops on SIGTERM"
    else fail "[$label] agentd exited $rc after SIGTERM: $(tail -3 "$dir/log")"; fi
    if [ "$uses_pg" -eq 1 ]; then
      local migrations
      migrations=$("$pg_bin/psql" "$pg_dsn" -Atc 'SELECT count(*) FROM agentd_schema_migrations' 2>&1)
      if [[ "$migrations" =~ ^[1-9][0-9]*$ ]]; then
        ok "[$label] agentd used the PostgreSQL store (agentd_schema_migrations has $migrations rows)"
      else
        fail "[$label] no agentd schema in PostgreSQL: $migrations"
      fi
    fi
  else
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
    fail "[$label] agentd rejects the rendered agentd.yaml: $(tail -3 "$dir/log")"
  fi
}

# 1. Render and validate the base and every overlay.
targets=(base)
for d in "$k8s"/overlays/*/; do targets+=("overlays/$(basename "$d")"); done
for target in "${targets[@]}"; do
  label=${target#overlays/}
  rendered=$work/$label.yaml
  if ! kubectl kustomize "$k8s/$target" >"$rendered" 2>"$work/$label.err"; then
    fail "[$label] kubectl kustomize $target: $(head -3 "$work/$label.err")"
    continue
  fi
  ok "[$label] rendered $(grep -c '^kind:' "$rendered") objects"
  extra=()
  [ "$label" = dev ] && extra+=(--allow-dev-secrets)
  if node "$here/validate-manifests.js" --label "$label" "${extra[@]}" \
       --write-config "$work/$label-agentd.yaml" "$rendered" >"$work/$label.out"; then
    ok "[$label] $(tail -1 "$work/$label.out")"
  else
    cat "$work/$label.out"
    fail "[$label] validation failed"
  fi
  if [ -x "$agentd" ] && [ -s "$work/$label-agentd.yaml" ]; then
    config_accepted "$label" "$work/$label-agentd.yaml"
  else
    fail "[$label] cannot check agentd.yaml against agentd ($agentd built? config extracted?)"
  fi
done

# 2. The broken fixtures must fail, each for the reason it was broken for.
expect_failure() {
  local fixture=$1
  shift
  local out rc pattern
  out=$(node "$here/validate-manifests.js" --label "$fixture" "$here/fixtures/$fixture.yaml")
  rc=$?
  if [ "$rc" -eq 1 ]; then ok "[$fixture] validation fails (exit 1)"; else fail "[$fixture] validation exit $rc, expected 1"; fi
  for pattern in "$@"; do
    if grep -qF -- "$pattern" <<<"$out"; then ok "[$fixture] reports: $pattern"
    else fail "[$fixture] does not report: $pattern"; fi
  done
}
expect_failure broken-schema \
  "FAIL - [broken-schema] schema: StatefulSet/agentd: data/spec/replicas must be integer"
# Valid for the schemas; every mistake must be caught by an agentd rule.
if node "$here/validate-manifests.js" --label broken-rules "$here/fixtures/broken-rules.yaml" | grep -q '^FAIL - \[broken-rules\] schema:'; then
  fail "[broken-rules] the fixture should be schema-valid (only the agentd rules should fail)"
else
  ok "[broken-rules] the fixture is schema-valid"
fi
expect_failure broken-rules \
  "backends[0].api_key is named like a secret" \
  "backends[0].api_key contains an OpenAI-style API key" \
  "Secret agentd-bootstrap is defined in the manifests" \
  "plaintext on 0.0.0.0:7700 is allowed (tls.* or allow_plaintext): agentd refuses to start" \
  "FAIL - [broken-rules] data_dir /data is a volumeClaimTemplate" \
  "FAIL - [broken-rules] livenessProbe is a native gRPC probe" \
  "FAIL - [broken-rules] readinessProbe is a native gRPC probe" \
  "FAIL - [broken-rules] terminationGracePeriodSeconds (10) >= drain_grace_ms/1000 + 6 (26)" \
  "runAsUser is 0; readOnlyRootFilesystem is not true; allowPrivilegeEscalation is not false; capabilities.drop lacks ALL; seccompProfile is not RuntimeDefault" \
  "no credential in a literal env value: AGENTD_BOOTSTRAP_KEY" \
  "FAIL - [broken-rules] a PodDisruptionBudget covers the pods" \
  "FAIL - [broken-rules] a NetworkPolicy limits who reaches the gRPC port"
expect_failure broken-deployment \
  "FAIL - [broken-deployment] data_dir /data is an emptyDir (the pods are stateless)" \
  "FAIL - [broken-deployment] the Deployment mounts no PersistentVolumeClaim: data" \
  "FAIL - [broken-deployment] store.postgres_dsn_env AGENTD_POSTGRES_DSN comes from a Secret" \
  "FAIL - [broken-deployment] no headless Service publishes not-ready pods of the Deployment: agentd-headless" \
  "FAIL - [broken-deployment] the NetworkPolicy lets agentd reach PostgreSQL (egress TCP 5432)" \
  "FAIL - [broken-deployment] the autoscaler keeps 2 or more replicas (1..5)" \
  "FAIL - [broken-deployment] the Deployment sets no spec.replicas (the autoscaler owns it)" \
  "FAIL - [broken-deployment] the PodDisruptionBudget lets one pod go at minReplicas (1)"
if node "$here/validate-manifests.js" --label broken-deployment "$here/fixtures/broken-deployment.yaml" | grep -q '^FAIL - \[broken-deployment\] schema:'; then
  fail "[broken-deployment] the fixture should be schema-valid (only the agentd rules should fail)"
else
  ok "[broken-deployment] the fixture is schema-valid"
fi
expect_failure broken-tls-probe \
  "FAIL - [broken-tls-probe] livenessProbe is a native gRPC probe on health_listen (0), not the TLS port: a grpc probe cannot speak TLS" \
  "FAIL - [broken-tls-probe] tls.cert_file /etc/agentd/tls/tls.crt is mounted read-only from a Secret"

# 3. Files beside the overlays that Kustomize does not render, checked against what it renders:
#    Envoy's config (no Envoy binary here: its keys and its endpoints) and the example Secret of
#    the postgres overlay (it must be what the Deployment reads, and must not be rendered).
if [ -s "$work/production.yaml" ] && [ -s "$work/postgres.yaml" ]; then
  node - "$AGENTD_K8S_VALIDATE_DIR/node_modules/js-yaml" "$here/../envoy/envoy.yaml" \
       "$work/production.yaml" "$k8s/overlays/postgres/secret.example.yaml" "$work/postgres.yaml" <<'JS'
'use strict';
const fs = require('fs');
const [yamlPath, envoyFile, productionFile, secretFile, postgresFile] = process.argv.slice(2);
const yaml = require(yamlPath);
const ok = (what) => console.log(`ok   - ${what}`);
const fail = (what) => console.log(`FAIL - ${what}`);
const check = (cond, what, detail) => (cond ? ok(what) : fail(detail === undefined ? what : `${what}: ${JSON.stringify(detail)}`));
const dig = (o, ...keys) => keys.reduce((v, k) => (v == null ? undefined : v[k]), o);

// Envoy.
let envoy;
try {
  envoy = yaml.load(fs.readFileSync(envoyFile, 'utf8'));
  ok('[envoy] envoy.yaml parses');
} catch (err) {
  fail(`[envoy] envoy.yaml does not parse: ${err.message.split('\n')[0]}`);
  process.exit(0);
}
const KNOWN_TYPES = new Set([
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
]);
const types = [];
(function walk(node) {
  if (Array.isArray(node)) node.forEach(walk);
  else if (node && typeof node === 'object') {
    if (node['@type']) types.push(node['@type']);
    Object.values(node).forEach(walk);
  }
})(envoy);
check(types.length === 3 && types.every((t) => KNOWN_TYPES.has(t)), '[envoy] every @type is a v3 type it is meant to be', types);
const listeners = dig(envoy, 'static_resources', 'listeners') || [];
const hcm = listeners.flatMap((l) => (l.filter_chains || []).flatMap((c) => c.filters || []))
  .map((f) => f.typed_config || {}).find((t) => /HttpConnectionManager$/.test(t['@type'] || ''));
check(!!hcm, '[envoy] a listener has an http_connection_manager');
const h = hcm || {};
check(h.codec_type === 'HTTP2' && !!h.http2_protocol_options, '[envoy] the listener speaks HTTP/2 (gRPC)', h.codec_type);
check(listeners.some((l) => dig(l, 'address', 'socket_address', 'port_value') === 7700), '[envoy] listens on 7700');
const routes = (dig(h, 'route_config', 'virtual_hosts') || []).flatMap((v) => v.routes || []);
const route = routes.map((r) => r.route || {}).find((r) => r.cluster === 'agentd') || {};
check((route.hash_policy || []).some((p) => dig(p, 'header', 'header_name') === 'x-agentd-session'),
      '[envoy] the route hashes on the x-agentd-session header', route.hash_policy);
check(route.timeout === '0s', '[envoy] the route has no overall timeout (timeout: 0s) for long turns and streams', route.timeout);
const retryOn = String(dig(route, 'retry_policy', 'retry_on') || '').split(',').filter(Boolean);
check(retryOn.every((r) => ['connect-failure', 'refused-stream'].includes(r)),
      '[envoy] retries only calls agentd cannot have seen (connect-failure, refused-stream)', retryOn);
check(h.stream_idle_timeout === '0s' || /^[0-9]+s$/.test(h.stream_idle_timeout || '') && parseInt(h.stream_idle_timeout, 10) >= 3600,
      '[envoy] stream_idle_timeout leaves silent streams (WatchEvents) at least an hour', h.stream_idle_timeout);
const cluster = (dig(envoy, 'static_resources', 'clusters') || []).find((c) => c.name === route.cluster) || {};
check(['RING_HASH', 'MAGLEV'].includes(cluster.lb_policy), '[envoy] the cluster balances by consistent hash', cluster.lb_policy);
check(['STRICT_DNS', 'EDS'].includes(cluster.type), '[envoy] the cluster follows DNS (STRICT_DNS) or EDS', cluster.type);
check(!!dig(cluster, 'typed_extension_protocol_options', 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            'explicit_http_config', 'http2_protocol_options'), '[envoy] the cluster speaks HTTP/2 to agentd');
check((cluster.health_checks || []).some((c) => c.grpc_health_check && c.timeout && c.interval &&
                                                c.unhealthy_threshold && c.healthy_threshold),
      '[envoy] the cluster health-checks agentd with grpc.health.v1 (timeout, interval, thresholds set)');

// The endpoints are the production overlay's shards: agentd-N.<headless>.<ns>.svc.cluster.local:<grpc port>.
const prod = yaml.loadAll(fs.readFileSync(productionFile, 'utf8')).filter(Boolean);
const sts = prod.find((d) => d.kind === 'StatefulSet') || { metadata: {}, spec: {} };
const headless = prod.find((d) => d.kind === 'Service' && d.metadata.name === sts.spec.serviceName) || { spec: {} };
const port = ((headless.spec.ports || []).find((p) => p.name === 'grpc') || {}).port;
const ns = sts.metadata.namespace;
const want = Array.from({ length: sts.spec.replicas || 0 },
  (_, i) => `${sts.metadata.name}-${i}.${headless.metadata && headless.metadata.name}.${ns}.svc.cluster.local:${port}`);
const got = (dig(cluster, 'load_assignment', 'endpoints') || []).flatMap((e) => e.lb_endpoints || [])
  .map((e) => dig(e, 'endpoint', 'address', 'socket_address')).filter(Boolean)
  .map((a) => `${a.address}:${a.port_value}`);
check(want.length > 0 && JSON.stringify(got) === JSON.stringify(want),
      `[envoy] the endpoints are the production overlay's ${want.length} shards by their stable names`, { want, got });
check(dig(cluster, 'common_lb_config', 'consistent_hashing_lb_config', 'use_hostname_for_hashing') === true,
      '[envoy] shards are hashed by name, not by pod IP (use_hostname_for_hashing)');
check(dig(cluster, 'common_lb_config', 'healthy_panic_threshold', 'value') === 100,
      '[envoy] an unhealthy shard keeps its place on the ring (healthy_panic_threshold 100)');

// The example Secret of the postgres overlay.
const secret = yaml.load(fs.readFileSync(secretFile, 'utf8')) || {};
const pg = yaml.loadAll(fs.readFileSync(postgresFile, 'utf8')).filter(Boolean);
const dep = pg.find((d) => d.kind === 'Deployment') || {};
const ctr = (dig(dep, 'spec', 'template', 'spec', 'containers') || []).find((c) => c.name === 'agentd') || {};
const ref = dig((ctr.env || []).find((e) => e.name === 'AGENTD_POSTGRES_DSN'), 'valueFrom', 'secretKeyRef') || {};
check(secret.kind === 'Secret' && secret.metadata.name === ref.name && !!dig(secret, 'stringData', ref.key) &&
      secret.metadata.namespace === dep.metadata.namespace,
      `[postgres] secret.example.yaml is the Secret the Deployment reads (${ref.name}/${ref.key})`);
check(String(dig(secret, 'stringData', ref.key)).includes('not-a-secret'), '[postgres] secret.example.yaml holds an obviously fake password');
check(!pg.some((d) => d.kind === 'Secret'), '[postgres] the overlay renders no Secret (secret.example.yaml is not a resource)');
JS
else
  fail "the production or postgres overlay did not render: cannot check envoy.yaml and secret.example.yaml"
fi > "$work/extra.out"
while IFS= read -r line; do
  case "$line" in
    "ok   - "*) ok "${line#ok   - }" ;;
    "FAIL - "*) fail "${line#FAIL - }" ;;
    *) echo "$line" ;;
  esac
done <"$work/extra.out"

finish
