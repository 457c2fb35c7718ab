#!/usr/bin/env bash
# Reconciling a day of N bill rows: starts `serve --http` in local mode on a scratch data dir, makes
# N paid orders through it (`loadgen --paid-orders`: create over MCP, open the link, pay on the
# embedded gateway), moves the gateway's clock a day on (bills are T+1), then times
# `mcp-server-alipay reconcile --date <that day> --json` beside the running server: the cron
# command, the same work as the `reconcile-alipay-bill` tool (download the bill, unzip, decode GBK,
# parse, match every row against the ledger). Prints its wall time, its CPU, its peak memory and
# the server's CPU meanwhile (the embedded gateway writes the bill), and checks it reconciled clean.
#
#   scripts/bench-reconcile.sh [N]       (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
# The binary on its own, as users build it (the names hot-functions.txt orders are its own), then
# the benchmark's programs, with the dev-dependencies' features.
cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
cargo build --release -q -p mcp-server-alipay --example loadgen
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/mcp-server-alipay

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
ENV=(HOME="$DIR" PATH="$PATH" AP_DATA_DIR="$DIR/data" AP_LOG_FILE="$DIR/server.log" AP_LOCAL_PORT=0
    AP_NOTIFY_LISTEN=127.0.0.1:0 AP_HTTP_TOKEN="$TOKEN")
env -i "${ENV[@]}" "$BIN" serve --http "127.0.0.1:$PORT" 2>"$DIR/stderr" >/dev/null &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q "serving MCP at" "$DIR/stderr" 2>/dev/null && break; sleep 0.1; done
GATEWAY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["gateway"])' "$DIR/data/local/gateway.json")
GATEWAY=${GATEWAY%/gateway.do}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

DAY=$(curl -sf "$GATEWAY/__emulator/clock" | python3 -c 'import json,sys; print(json.load(sys.stdin)["now"][:10])')
"$TARGET/release/examples/loadgen" --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --clients 16 \
    --keep-alive --paid-orders "$N"
curl -sf -X POST "$GATEWAY/__emulator/clock" -d '{"advance_seconds": 86400}' >/dev/null

cpu() { awk '{print $14+$15}' "/proc/$SERVER/stat"; }   # clock ticks (1/100 s)
before=$(cpu)
set +e
env -i "${ENV[@]}" /usr/bin/time -f 'wall_s=%e user_s=%U sys_s=%S max_rss_kb=%M' -o "$DIR/time" \
    "$BIN" reconcile --date "$DAY" --json >"$DIR/out" 2>"$DIR/err"
status=$?
set -e
after=$(cpu)
python3 - "$DIR/out" "$status" <<'PY'
import json, sys
out = json.load(open(sys.argv[1]))
print(f"exit={sys.argv[2]} rows={out.get('rowCount', out.get('totals', {}).get('paymentCount'))} "
      f"discrepancies={out.get('discrepancyCount')} gross={out['totals']['grossAmount']}")
PY
cat "$DIR/time"
awk -v b="$before" -v a="$after" 'BEGIN { printf "server (embedded gateway writing the bill) CPU meanwhile: %.2f s\n", (a-b)/100 }'
[ "$status" = 0 ] || { echo "reconcile did not come out clean:"; cat "$DIR/err"; head -c 2000 "$DIR/out"; exit 1; }
