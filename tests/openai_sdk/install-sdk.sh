#!/usr/bin/env bash
# Installs the official OpenAI SDK (npm `openai`) that openai_sdk_test.mjs drives, into a cache dir
# outside the repo, only when it is missing or at another version.
#
#   tests/openai_sdk/install-sdk.sh [DIR]
#
# DIR defaults to $AGENTD_OPENAI_SDK_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/agentd-openai-sdk.
set -euo pipefail

dir=${1:-${AGENTD_OPENAI_SDK_DIR:-${XDG_CACHE_HOME:-${HOME:?}/.cache}/agentd-openai-sdk}}
exec bash "$(dirname "$0")/../../scripts/npm-cache-install.sh" install-sdk "$dir" openai@7.57.0
