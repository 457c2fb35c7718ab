#!/usr/bin/env bash
# Headless Chromium against alipay-emulator's cashier: open a signed page-pay link, check the
# cashier shows the order, click pay, land on return_url with signed parameters that verify, and
# check the trade is TRADE_SUCCESS. Installs Debian's chromium if missing and playwright-core (npm)
# into target/interop/node (Playwright's own browser download is not used). Fails loudly.
#
# Usage: bash .ci/emulator-chromium.sh
#   CARGO_TARGET_DIR is honoured; SCREENSHOT_DIR keeps screenshots (default: target/interop).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if ! command -v chromium >/dev/null 2>&1; then
  echo "emulator-chromium: installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
chromium_bin=$(command -v chromium)

cargo build --quiet -p alipay-emulator --bin alipay-emulator --example sign_link
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/debug/alipay-emulator"
sign_link="$target/debug/examples/sign_link"

node_deps="$root/target/interop/node"
mkdir -p "$node_deps"
if [ ! -f "$node_deps/node_modules/playwright-core/package.json" ]; then
  [ -f "$node_deps/package.json" ] || echo '{"private":true}' >"$node_deps/package.json"
  npm install --prefix "$node_deps" --no-audit --no-fund --silent playwright-core@1.65.1
fi

keys=$root/testdata/alipay-vectors/keys
app_id=2021000000000001
work=$(mktemp -d)
emulator_pid=""
cleanup() {
  if [ -n "$emulator_pid" ] && kill -0 "$emulator_pid" 2>/dev/null; then
    kill -TERM "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" --listen 127.0.0.1:0 --app "$app_id=$keys/app-public-spki.b64" >"$work/stdout" 2>"$work/stderr" &
emulator_pid=$!
for _ in $(seq 1 300); do
  [ -s "$work/stdout" ] && break
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "emulator-chromium: the emulator exited:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
line=$(head -n 1 "$work/stdout")
[ -n "$line" ] || { echo "emulator-chromium: no JSON line from the emulator" >&2; exit 1; }
echo "emulator: $line"

shots=${SCREENSHOT_DIR:-$root/target/interop}
mkdir -p "$shots"
status=0
EMULATOR_LINE="$line" APP_ID="$app_id" APP_PRIVATE_KEY="$keys/app-private-pkcs8.pem" \
  SIGN_LINK="$sign_link" NODE_DEPS="$node_deps" CHROMIUM="$chromium_bin" SCREENSHOT_DIR="$shots" \
  node "$root/.ci/interop/chromium_cashier.mjs" || status=$?
if [ "$status" -ne 0 ]; then
  echo "emulator-chromium: FAILED; emulator log:" >&2
  cat "$work/stderr" >&2
  exit "$status"
fi
