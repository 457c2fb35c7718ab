#!/usr/bin/env bash
# An MCP Apps host in headless Chromium, built with the official @modelcontextprotocol/ext-apps host
# bridge, renders the checkout card of mcp-server-alipay (serve --http, local mode); Chromium pays on
# the embedded gateway's cashier, the card turns paid and the host receives the model-context
# update; a refund is decided from its card (the PIN typed on the page it opens). Installs Debian's
# chromium (and a CJK font) if missing and the pinned npm packages into target/interop/node.
# Screenshots go to target/interop/screenshots (copy them to docs/images/ by hand when the card
# changes). Fails loudly.
#
# Usage: bash .ci/mcp-apps-chromium.sh [path/to/mcp-server-alipay]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v chromium >/dev/null 2>&1; then
  echo "mcp-apps-chromium: installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
# A CJK font, so the screenshots show the card's Chinese words (the checks do not need it).
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  echo "mcp-apps-chromium: installing a CJK font for the screenshots (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq fonts-wqy-microhei >/dev/null || echo "mcp-apps-chromium: no CJK font; screenshots will show boxes"
fi
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --quiet -p mcp-server-alipay
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/mcp-server-alipay"
fi
[ -x "$bin" ] || { echo "mcp-apps-chromium: no executable at $bin" >&2; exit 1; }

# Pinned: the host bridge and the MCP client it is built for, its peers, and the bundler.
packages=(
  playwright-core@1.65.1
  @modelcontextprotocol/ext-apps@2.0.4
  @modelcontextprotocol/client@2.4.0
  @modelcontextprotocol/core@2.4.0
  zod@4.6.7
  esbuild@0.28.2
)
node_deps="$root/target/interop/node"
mkdir -p "$node_deps"
[ -f "$node_deps/package.json" ] || echo '{"private":true}' >"$node_deps/package.json"
missing=()
for p in "${packages[@]}"; do
  name=${p%@*}
  want=${p##*@}
  have=$(node -p "try { require('$node_deps/node_modules/$name/package.json').version } catch { '' }")
  [ "$have" = "$want" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  npm install --prefix "$node_deps" --no-audit --no-fund --silent "${missing[@]}"
fi

shots="${CARGO_TARGET_DIR:-$root/target}/interop/screenshots"
SERVER_BIN="$bin" NODE_DEPS="$node_deps" CHROMIUM="$(command -v chromium)" SCREENSHOT_DIR="$shots" \
  node "$root/.ci/interop/mcp_apps_host.mjs"
