#!/usr/bin/env bash
# Installs the npm packages that validate-manifests.js needs (kubernetes-models, js-yaml) into a
# cache dir outside the repo, only when they are missing or at another version.
#
#   deploy/tests/install-validator.sh [DIR]
#
# DIR defaults to $AGENTD_K8S_VALIDATE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/agentd-k8s-validate.
# kubernetes-models 4.x: 5.x needs Node >= 22 (Debian 12 has 18, NodeSource builds 20).
set -euo pipefail

KUBERNETES_MODELS_VERSION=4.5.1
JS_YAML_VERSION=4.3.2

dir=${1:-${AGENTD_K8S_VALIDATE_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-k8s-validate}}

installed() {
  node -e '
    const [dir, km, jy] = process.argv.slice(1);
    const v = (p) => { try { return require(`${dir}/node_modules/${p}/package.json`).version; } catch (e) { return ""; } };
    process.exit(v("kubernetes-models") === km && v("js-yaml") === jy ? 0 : 1);
  ' "$dir" "$KUBERNETES_MODELS_VERSION" "$JS_YAML_VERSION"
}

command -v node >/dev/null || { echo "install-validator: node not found (Debian package nodejs)" >&2; exit 2; }
if installed; then
  echo "install-validator: kubernetes-models $KUBERNETES_MODELS_VERSION and js-yaml $JS_YAML_VERSION present in $dir"
  exit 0
fi
command -v npm >/dev/null || { echo "install-validator: npm not found (Debian package npm)" >&2; exit 2; }
mkdir -p "$dir"
# One installer at a time; a second one finds the packages once the first is done.
exec 9>"$dir/.install.lock"
flock 9
if ! installed; then
  echo "install-validator: installing kubernetes-models@$KUBERNETES_MODELS_VERSION js-yaml@$JS_YAML_VERSION into $dir"
  npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error \
    "kubernetes-models@$KUBERNETES_MODELS_VERSION" "js-yaml@$JS_YAML_VERSION"
  installed || { echo "install-validator: install finished but the packages are not usable" >&2; exit 1; }
fi
echo "install-validator: ready in $dir"
