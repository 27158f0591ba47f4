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

bash "$(dirname "$0")/../../scripts/npm-cache-install.sh" install-everything "$dir" "$pkg@$VERSION"
[ -f "$dir/node_modules/$pkg/dist/index.js" ] ||
  { echo "install-everything: $pkg@$VERSION has no dist/index.js" >&2; exit 1; }
echo "$dir"
