#!/usr/bin/env bash
# HTTP load benchmark: starts `mcp-server-alipay serve --http` in local mode on a scratch data dir
# (the embedded gateway answers), then runs the load generator for the query tool and the
# web-page create tool, and prints the server's CPU use next to the figures.
#
#   scripts/bench-http.sh [CLIENTS] [SECONDS] [TOOL...]
#
# Defaults: 32 clients, 10 s, query-alipay-payment and create-web-page-alipay-payment; also
# wait-for-alipay-payment (each client waits the whole run; prints the polls and CPU per poll).
# KEEP_ALIVE=1 makes the clients reuse their connections (as Node's fetch does); by default they
# are rmcp's, which open a connection per call. Before each tool the crypto floor of one query (two
# RSA2 signatures, two verifications, one thread) is measured in the same run, and the server's
# CPU per query is given as a multiple of it.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-32}
SECONDS_=${2:-10}
shift $(( $# > 2 ? 2 : $# )) || true
TOOLS=("$@")
[ ${#TOOLS[@]} -gt 0 ] || TOOLS=(query-alipay-payment create-web-page-alipay-payment)

# The binary on its own, as users build it (the names hot-functions.txt orders are its own), then
# the benchmark's programs, with the dev-dependencies' features.
cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
cargo build --release -q -p mcp-server-alipay --example loadgen
cargo build --release -q -p alipay-openapi --example crypto_floor
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/mcp-server-alipay}   # BIN=... compares another build
LOADGEN=$TARGET/release/examples/loadgen
FLOOR=$TARGET/release/examples/crypto_floor
KEEP=()
[ "${KEEP_ALIVE:-0}" = 1 ] && KEEP=(--keep-alive)

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
env -i HOME="$DIR" PATH="$PATH" AP_DATA_DIR="$DIR/data" AP_LOG_FILE="$DIR/server.log" \
    AP_LOCAL_PORT=0 AP_NOTIFY_LISTEN=127.0.0.1:0 AP_HTTP_TOKEN="$TOKEN" \
    "$BIN" serve --http "127.0.0.1:$PORT" 2>"$DIR/stderr" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q "serving MCP at" "$DIR/stderr" 2>/dev/null && break; sleep 0.1; done

cpu() { awk '{print $14+$15}' "/proc/$SERVER/stat"; }   # clock ticks (1/100 s)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for tool in "${TOOLS[@]}"; do
    floor=$("$FLOOR" 2000 | tee /dev/stderr | sed 's/.*query_floor_us=//')
    before=$(cpu); t0=$(date +%s.%N)
    "$LOADGEN" --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --clients "$CLIENTS" --server-pid "$SERVER" \
        --seconds "$SECONDS_" --tool "$tool" "${KEEP[@]}" | tee "$DIR/out"
    if [ "$tool" = query-alipay-payment ]; then
        awk -v floor="$floor" -F'server_cpu_ms_per_call=' '/server_cpu_ms_per_call=/ {
            printf "server CPU per query = %.2f x the crypto floor (%.0f us)\n", $2 * 1000 / floor, floor }' "$DIR/out"
        # The issue's ceiling: every core signing at OpenSSL's rate, two signatures a query.
        signs=$(openssl speed -seconds 2 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
        awk -v signs="$signs" -v cores="$(nproc)" -F'calls_per_s=' '/^calls_per_s=/ {
            split($2, a, " "); ceiling = cores * signs / 2
            printf "calls/s = %.2f of the RSA ceiling (%d cores x %.0f openssl signs/s / 2 = %.0f queries/s)\n", a[1] / ceiling, cores, signs, ceiling }' "$DIR/out"
    fi
    after=$(cpu); t1=$(date +%s.%N)
    awk -v b="$before" -v a="$after" -v t0="$t0" -v t1="$t1" \
        'BEGIN { printf "server+gateway CPU: %.2f cores on average over the run (setup and warm-up included)\n", (a-b)/100/(t1-t0) }'
done
