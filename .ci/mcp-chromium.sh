#!/usr/bin/env bash
# Headless Chromium pays a link created by the MCP server's desktop tool (local mode), lands on
# AP_RETURN_URL, and the server learns of the payment from the gateway's notification. Installs
# Debian's chromium if missing and playwright-core into target/interop/node. Fails loudly.
#
# Usage: bash .ci/mcp-chromium.sh [path/to/mcp-server-alipay]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v chromium >/dev/null 2>&1; then
  echo "mcp-chromium: installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --quiet -p mcp-server-alipay
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/mcp-server-alipay"
fi
[ -x "$bin" ] || { echo "mcp-chromium: no executable at $bin" >&2; exit 1; }

node_deps="$root/target/interop/node"
mkdir -p "$node_deps"
if [ ! -f "$node_deps/node_modules/playwright-core/package.json" ]; then
  [ -f "$node_deps/package.json" ] || echo '{"private":true}' >"$node_deps/package.json"
  npm install --prefix "$node_deps" --no-audit --no-fund --silent playwright-core@1.65.1
fi
SERVER_BIN="$bin" NODE_DEPS="$node_deps" CHROMIUM="$(command -v chromium)" node "$root/.ci/interop/mcp_desktop_chromium.mjs"
SERVER_BIN="$bin" NODE_DEPS="$node_deps" CHROMIUM="$(command -v chromium)" node "$root/.ci/interop/approval_chromium.mjs"
