#!/usr/bin/env bash
# Installs pinned npm packages into a cache dir outside the repo, only when one is missing or at
# another version; one installer at a time per dir (flock). Progress goes to stderr; stdout stays
# empty, so callers may print what they need. Used by the tests that drive npm tools
# (deploy/tests/install-validator.sh, tests/openai_sdk/install-sdk.sh, tests/mcp/install-everything.sh).
#
#   scripts/npm-cache-install.sh LABEL DIR NAME@VERSION...
#
# Exit 2: node or npm missing; 1: the install did not leave the pinned versions usable.
set -euo pipefail

label=$1 dir=$2
shift 2
specs=("$@")

installed() {
  node -e '
    const [dir, ...specs] = process.argv.slice(1);
    for (const spec of specs) {
      const at = spec.lastIndexOf("@");
      const name = spec.slice(0, at), want = spec.slice(at + 1);
      let v = "";
      try { v = require(`${dir}/node_modules/${name}/package.json`).version; } catch (e) {}
      if (v !== want) process.exit(1);
    }
  ' "$dir" "${specs[@]}"
}

command -v node >/dev/null || { echo "$label: node not found (Debian package nodejs)" >&2; exit 2; }
if installed; then
  echo "$label: ${specs[*]} present in $dir" >&2
  exit 0
fi
command -v npm >/dev/null || { echo "$label: npm not found (Debian package npm)" >&2; exit 2; }
mkdir -p "$dir"
# A second installer waits, then finds the packages the first one installed.
exec 9>"$dir/.install.lock"
flock 9
if ! installed; then
  echo "$label: installing ${specs[*]} into $dir" >&2
  npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error "${specs[@]}" >&2
  installed || { echo "$label: install finished but ${specs[*]} are not usable" >&2; exit 1; }
fi
echo "$label: ready in $dir" >&2
