#!/usr/bin/env bash
# Installs the official OpenAI SDK (npm `openai`) that openai_sdk_test.mjs drives, into a cache dir
# outside the repo, only when it is missing or at another version (as deploy/tests/install-validator.sh).
#
#   tests/openai_sdk/install-sdk.sh [DIR]
#
# DIR defaults to $AGENTD_OPENAI_SDK_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/agentd-openai-sdk.
set -euo pipefail

OPENAI_VERSION=7.57.0

dir=${1:-${AGENTD_OPENAI_SDK_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-openai-sdk}}

installed() {
  node -e '
    const [dir, want] = process.argv.slice(1);
    let v = "";
    try { v = require(`${dir}/node_modules/openai/package.json`).version; } catch (e) {}
    process.exit(v === want ? 0 : 1);
  ' "$dir" "$OPENAI_VERSION"
}

command -v node >/dev/null || { echo "install-sdk: node not found (Debian package nodejs)" >&2; exit 2; }
if installed; then
  echo "install-sdk: openai $OPENAI_VERSION present in $dir"
  exit 0
fi
command -v npm >/dev/null || { echo "install-sdk: npm not found (Debian package npm)" >&2; exit 2; }
mkdir -p "$dir"
# One installer at a time; a second one finds the package once the first is done.
exec 9>"$dir/.install.lock"
flock 9
if ! installed; then
  echo "install-sdk: installing openai@$OPENAI_VERSION into $dir"
  npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error "openai@$OPENAI_VERSION"
  installed || { echo "install-sdk: install finished but the package is not usable" >&2; exit 1; }
fi
echo "install-sdk: ready in $dir"
