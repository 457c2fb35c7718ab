#!/usr/bin/env bash
# Slow clients against the HTTP server: starts `mcp-server-alipay serve --http` (release, local mode,
# default limits unless set in the environment), measures real calls (the load generator of
# bench-http.sh) alone, then again while SLOW connections each send half a request head and trickle
# a byte a second, reopened whenever the server closes one. Prints both p99s and their ratio, how many
# slow connections the server closed and after how long, how long a fresh connection waited for an
# answer during the attack, and the server's open descriptors.
#
#   scripts/bench-slow-clients.sh [SLOW] [SECONDS] [CLIENTS]
#
# Defaults: 3000 slow connections, 20 s measured, 32 clients, query-alipay-payment.
# AP_HTTP_HEADER_TIMEOUT_MS, AP_HTTP_IDLE_TIMEOUT_MS and AP_HTTP_MAX_CONNECTIONS pass through.
set -euo pipefail
cd "$(dirname "$0")/.."
SLOW=${1:-3000}
SECONDS_=${2:-20}
CLIENTS=${3:-32}
TOOL=query-alipay-payment

# Both sides need a descriptor per connection: raise the soft limit as far as the hard one allows.
WANT=$(( SLOW + CLIENTS * 4 + 1024 ))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$WANT" ]; then WANT=$HARD; fi
ulimit -n "$WANT"
echo "ulimit -n: $(ulimit -n)"

# The binary on its own, as users build it (the names hot-functions.txt orders are its own), then
# the benchmark's programs, with the dev-dependencies' features.
cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
cargo build --release -q -p mcp-server-alipay --example loadgen --example slowclients
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/release/mcp-server-alipay
LOADGEN=$TARGET/release/examples/loadgen
SLOWCLIENTS=$TARGET/release/examples/slowclients

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
LIMITS=()
for v in AP_HTTP_HEADER_TIMEOUT_MS AP_HTTP_IDLE_TIMEOUT_MS AP_HTTP_MAX_CONNECTIONS; do
    [ -n "${!v:-}" ] && LIMITS+=("$v=${!v}")
done
env -i HOME="$DIR" PATH="$PATH" AP_DATA_DIR="$DIR/data" AP_LOG_FILE="$DIR/server.log" \
    AP_LOCAL_PORT=0 AP_NOTIFY_LISTEN=127.0.0.1:0 AP_HTTP_TOKEN="$TOKEN" "${LIMITS[@]}" \
    "$BIN" serve --http "127.0.0.1:$PORT" 2>"$DIR/stderr" &
SERVER=$!
ATTACK=
trap '[ -n "$ATTACK" ] && kill $ATTACK 2>/dev/null; kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do grep -q "serving MCP at" "$DIR/stderr" 2>/dev/null && break; sleep 0.1; done

fds() { ls "/proc/$SERVER/fd" | wc -l; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2" | tail -1; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "server limits: ${LIMITS[*]:-defaults}; open descriptors at rest: $(fds)"

echo "== real calls alone"
"$LOADGEN" --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --clients "$CLIENTS" \
    --seconds "$SECONDS_" --tool "$TOOL" | tee "$DIR/alone"

echo "== real calls during $SLOW slow connections"
# The clients connect and set up first; the attack starts with their warm-up (5 s, time for it to
# fill the connection cap) and lasts through the measured window.
WARMUP=5
"$LOADGEN" --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --clients "$CLIENTS" \
    --seconds "$SECONDS_" --warmup "$WARMUP" --tool "$TOOL" --ready-file "$DIR/ready" >"$DIR/attacked" &
LOAD=$!
for _ in $(seq 600); do [ -e "$DIR/ready" ] && break; sleep 0.1; done
"$SLOWCLIENTS" --addr "127.0.0.1:$PORT" --connections "$SLOW" --seconds $(( SECONDS_ + WARMUP + 1 )) >"$DIR/attack" &
ATTACK=$!
sleep "$WARMUP"
echo "open descriptors as the measurement starts: $(fds)"
wait $LOAD
cat "$DIR/attacked"
wait $ATTACK
ATTACK=
cat "$DIR/attack"
sleep 1
echo "open descriptors after the attack: $(fds)"

awk -v a="$(field p99_ms "$DIR/alone")" -v b="$(field p99_ms "$DIR/attacked")" \
    -v ra="$(field calls_per_s "$DIR/alone")" -v rb="$(field calls_per_s "$DIR/attacked")" \
    'BEGIN { printf "p99 alone %.1f ms, under attack %.1f ms: ratio %.2f; calls/s ratio %.2f\n", a, b, b/a, rb/ra }'
