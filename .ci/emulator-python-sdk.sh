#!/usr/bin/env bash
# Interop: Alipay's official Python SDK (alipay-sdk-python, from PyPI, in a venv) against the
# alipay-emulator binary: page pay link -> pay -> query (SDK signature check on) -> refund -> refund
# query, notifications and return_url verified with the SDK's own function, then a 智易收
# alipay.aipay.trade.precreate through the SDK's model classes, paid and queried, then the clock
# one day on and alipay.data.dataservice.bill.downloadurl.query through the SDK's model classes:
# the bill's zip read with Python's zipfile and csv (GBK) and held against what was paid and
# refunded. Fails loudly.
#
# Usage: bash .ci/emulator-python-sdk.sh [path/to/alipay-emulator]
#   Without a path the binary is built with cargo (CARGO_TARGET_DIR is honoured).
#   EMULATOR_INTEROP_VENV overrides the venv location (default: target/interop/python-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --quiet -p alipay-emulator --bin alipay-emulator
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/alipay-emulator"
fi
[ -x "$bin" ] || { echo "emulator-python-sdk: no executable at $bin" >&2; exit 1; }

venv=${EMULATOR_INTEROP_VENV:-$root/target/interop/python-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check alipay-sdk-python==3.7.1411

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

# The app's public key goes to --app; the SDK signs with the app's PKCS#1 private key.
"$bin" --listen 127.0.0.1:0 \
  --app "$app_id=$keys/app-public-spki.b64" \
  --notify-retry-secs 1,1,1 \
  >"$work/stdout" 2>"$work/stderr" &
emulator_pid=$!

for _ in $(seq 1 300); do
  [ -s "$work/stdout" ] && break
  if ! kill -0 "$emulator_pid" 2>/dev/null; then
    echo "emulator-python-sdk: the emulator exited:" >&2
    cat "$work/stderr" >&2
    exit 1
  fi
  sleep 0.1
done
line=$(head -n 1 "$work/stdout")
[ -n "$line" ] || { echo "emulator-python-sdk: no JSON line from the emulator" >&2; cat "$work/stderr" >&2; exit 1; }
echo "emulator: $line"

status=0
"$venv/bin/python" "$root/.ci/interop/python_sdk_interop.py" \
  --emulator-line "$line" \
  --app-id "$app_id" \
  --app-private-key-file "$keys/app-private-pkcs1.b64" \
  --wrong-public-key-file "$keys/app-public-spki.b64" || status=$?
if [ "$status" -ne 0 ]; then
  echo "emulator-python-sdk: FAILED; emulator log:" >&2
  cat "$work/stderr" >&2
  exit "$status"
fi
