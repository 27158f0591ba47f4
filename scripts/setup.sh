#!/usr/bin/env bash
# Installs everything agentd needs to build and test on Debian 12. Idempotent; run as root.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libspdlog-dev libfmt-dev libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcurl4-openssl-dev libssl-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libevent-dev
  libjemalloc-dev  # agentd allocates through jemalloc (CMake option AGENTD_JEMALLOC)
  python3 python3-grpcio python3-protobuf python3-pytest
  openssl  # the openssl CLI: tls_test makes its certificates with it
  json-schema-test-suite  # json_schema_test runs its draft 7 cases
  buildah  # container_image builds and runs the image (deploy/container); chroot isolation, no daemon
  # sanitizer and fuzzing builds (scripts/sanitizers.sh, scripts/fuzz.sh; CI runs them)
  clang-14 libclang-rt-14-dev lld ninja-build
  # the PostgreSQL store and its tests (a throwaway cluster on loopback per test binary)
  postgresql-15 libpq-dev
  # nginx_config runs nginx (as a non-root user) in front of agentd replicas (deploy/nginx).
  # Debian 12's nginx-light is only nginx plus an echo module; nginx alone has what is needed.
  nginx
)
# k8s_manifests validates with npm packages (deploy/tests/install-validator.sh). A NodeSource
# nodejs already ships npm, and Debian's npm package would conflict with it: add only what is absent.
command -v node >/dev/null || PKGS+=(nodejs)
command -v npm >/dev/null || PKGS+=(npm)
# k8s_manifests also needs a kubectl with Kustomize >= 4 (upstream or Google Cloud SDK kubectl);
# Debian 12's kubernetes-client (kubectl 1.20, Kustomize 2) cannot render the overlays, so it is
# not installed here; without a suitable kubectl that one test fails and says so.

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # Installing nginx would start Debian's nginx service on port 80; the tests run their own.
  # A policy-rc.d that forbids (exit 101) only nginx's start, unless the machine has one.
  if [[ " ${missing[*]} " == *" nginx "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nfor a; do case "$a" in nginx|nginx.service) exit 101 ;; esac; done\nexit 0\n' |
      $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 0755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
