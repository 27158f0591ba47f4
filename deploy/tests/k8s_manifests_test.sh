#!/usr/bin/env bash
# k8s_manifests: renders the Kustomize base and every overlay with `kubectl kustomize`,
# validates every object offline against the Kubernetes schemas and the agentd rules
# (validate-manifests.js), starts the real agentd with each rendered agentd.yaml to prove agentd
# accepts it, and checks that the deliberately broken fixtures FAIL validation for the reasons
# they were broken for.
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
cleanup() {
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
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
expect_failure broken-tls-probe \
  "FAIL - [broken-tls-probe] livenessProbe is a native gRPC probe on health_listen (0), not the TLS port: a grpc probe cannot speak TLS" \
  "FAIL - [broken-tls-probe] tls.cert_file /etc/agentd/tls/tls.crt is mounted read-only from a Secret"

finish
