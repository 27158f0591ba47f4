#!/usr/bin/env bash
# Installs the npm packages that validate-manifests.js needs (kubernetes-models, js-yaml) into a
# cache dir outside the repo, only when they are missing or at another version.
#
#   deploy/tests/install-validator.sh [DIR]
#
# DIR defaults to $AGENTD_K8S_VALIDATE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/agentd-k8s-validate.
# kubernetes-models 4.x: 5.x needs Node >= 22 (Debian 12 has 18, NodeSource builds 20).
set -euo pipefail

dir=${1:-${AGENTD_K8S_VALIDATE_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-k8s-validate}}
exec bash "$(dirname "$0")/../../scripts/npm-cache-install.sh" install-validator "$dir" \
  kubernetes-models@4.5.1 js-yaml@4.3.2
