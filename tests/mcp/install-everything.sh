#!/usr/bin/env bash
# Installs the MCP reference server @modelcontextprotocol/server-everything into a cache dir
# outside the repo, only when it is missing or at another version. Prints nothing on stdout but
# the directory (tests read it); progress goes to stderr.
#
#   tests/mcp/install-everything.sh [DIR]
#
# DIR defaults to $AGENTD_MCP_EVERYTHING_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/agentd-mcp-everything.
# Run it with: PORT=<port> node DIR/node_modules/@modelcontextprotocol/server-everything/dist/index.js streamableHttp
set -euo pipefail

VERSION=${AGENTD_MCP_EVERYTHING_VERSION:-2026.8.31}

dir=${1:-${AGENTD_MCP_EVERYTHING_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-mcp-everything}}
pkg=@modelcontextprotocol/server-everything

installed() {
  node -e '
    const [dir, pkg, want] = process.argv.slice(1);
    try {
      const v = require(`${dir}/node_modules/${pkg}/package.json`).version;
      require("fs").accessSync(`${dir}/node_modules/${pkg}/dist/index.js`);
      process.exit(v === want ? 0 : 1);
    } catch (e) { process.exit(1); }
  ' "$dir" "$pkg" "$VERSION"
}

command -v node >/dev/null || { echo "install-everything: node not found (Debian package nodejs)" >&2; exit 2; }
if ! installed; then
  command -v npm >/dev/null || { echo "install-everything: npm not found (Debian package npm)" >&2; exit 2; }
  mkdir -p "$dir"
  exec 9>"$dir/.install.lock"
  flock 9
  if ! installed; then
    echo "install-everything: installing $pkg@$VERSION into $dir" >&2
    npm install --prefix "$dir" --no-audit --no-fund --save-exact --loglevel=error "$pkg@$VERSION" >&2
    installed || { echo "install-everything: install finished but $pkg@$VERSION is not usable" >&2; exit 1; }
  fi
fi
echo "$dir"
