#!/usr/bin/env bash
# Fleet benchmark: calls per second with 1, 2 and 3 `serve --http` instances on one PostgreSQL
# ledger, next to one instance on SQLite, all on this machine. The first instance of each run is
# in local mode and runs the embedded gateway; the others join it through the shared data dir. The
# load generator's clients are spread over the instances in turn. For each run it prints the
# loadgen's figures, the CPU the instances used (gateway included) and PostgreSQL's, and how busy
# the whole machine was, which is what says what the limit is.
#
#   scripts/bench-fleet.sh [CLIENTS] [SECONDS] [TOOL...]
#
# Defaults: 32 clients, 10 s, query-alipay-payment and create-mobile-alipay-payment (a ledger
# insert and one signature per call, no QR image). PostgreSQL: a throwaway cluster with its
# default durability (fsync and synchronous_commit on), started as the `postgres` user on a
# socket in a temp dir; or the one BENCH_DATABASE_URL names (libpq key=value with dbname=… last
# or absent; a database per run is created on it). PG_SYNCHRONOUS_COMMIT=off starts the cluster
# with synchronous_commit off: the durability SQLite's WAL with synchronous=NORMAL has (a commit
# survives the process, the last ones may not survive the OS), for a like-for-like CPU figure.
# RUNS="sqlite1 pg1" runs only those rows (default: sqlite1 pg1 pg2 pg3). POOL_SIZE=N sets each
# instance's AP_DATABASE_POOL_SIZE (default 16).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-32}
SECONDS_=${2:-10}
shift $(($# > 2 ? 2 : $#)) || true
TOOLS=("$@")
[ ${#TOOLS[@]} -gt 0 ] || TOOLS=(query-alipay-payment create-mobile-alipay-payment)

# The binary on its own, as users build it (the names hot-functions.txt orders are its own), then
# the benchmark's programs, with the dev-dependencies' features.
cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
cargo build --release -q -p mcp-server-alipay --example loadgen
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/mcp-server-alipay}   # BIN=... compares another build
LOADGEN=$TARGET/release/examples/loadgen
WORK=$(mktemp -d /tmp/bench-fleet.XXXXXX)
PIDS=()
PG_BIN=""
PG_DIR=""

cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "$PG_BIN" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${BENCH_DATABASE_URL:-}" ]; then
  ADMIN_URL=$BENCH_DATABASE_URL
else
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  # Its own directory: the postgres user cannot enter the private $WORK.
  PG_DIR=$(mktemp -d /tmp/bench-pg.XXXXXX)
  chown postgres "$PG_DIR"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-k $PG_DIR -c listen_addresses='' -c max_connections=200 -c synchronous_commit=${PG_SYNCHRONOUS_COMMIT:-on}" start >/dev/null
  ADMIN_URL="host=$PG_DIR user=postgres dbname=postgres"
fi
psql_admin() { psql -X -q -d "$ADMIN_URL" -Atc "$1"; }
with_db() { echo "${ADMIN_URL% dbname=*} dbname=$1"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }
pg_pids() { pgrep -u postgres -x postgres || true; }
machine_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "clients: $CLIENTS, measured: ${SECONDS_} s per tool"
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

run() { # run LABEL BACKEND INSTANCES
  local label=$1 backend=$2 n=$3 dir db_url="" i port urls=() pids=()
  dir=$(mktemp -d "$WORK/run.XXXX")
  if [ "$backend" = postgres ]; then
    psql_admin "DROP DATABASE IF EXISTS bench_$label" && psql_admin "CREATE DATABASE bench_$label"
    db_url=$(with_db "bench_$label")
  fi
  local gateway_port
  gateway_port=$(free_port)
  for i in $(seq 1 "$n"); do
    port=$(free_port)
    env -i HOME="$dir" PATH="$PATH" AP_DATA_DIR="$dir/data" AP_LOG_FILE="$dir/server$i.log" \
      AP_LOCAL_PORT="$gateway_port" AP_NOTIFY_LISTEN=off AP_HTTP_TOKEN="$TOKEN" \
      ${db_url:+AP_DATABASE_URL="$db_url"} ${POOL_SIZE:+AP_DATABASE_POOL_SIZE="$POOL_SIZE"} \
      "$BIN" serve --http "127.0.0.1:$port" 2>"$dir/stderr$i" &
    pids+=($!)
    PIDS+=($!)
    for _ in $(seq 200); do grep -q "serving MCP at" "$dir/stderr$i" 2>/dev/null && break; sleep 0.05; done
    grep -q "serving MCP at" "$dir/stderr$i" || { cat "$dir/stderr$i" >&2; exit 1; }
    urls+=(--url "http://127.0.0.1:$port/mcp")
  done
  local pid_args=() p
  for p in "${pids[@]}"; do pid_args+=(--server-pid "$p"); done
  for tool in "${TOOLS[@]}"; do
    local pg_before m_before t0 out
    pg_before=$(ticks $(pg_pids)); m_before=$(machine_busy); t0=$(date +%s.%N)
    out=$("$LOADGEN" "${urls[@]}" --token "$TOKEN" --clients "$CLIENTS" --seconds "$SECONDS_" \
      --tool "$tool" "${pid_args[@]}")
    local pg_after m_after t1
    pg_after=$(ticks $(pg_pids)); m_after=$(machine_busy); t1=$(date +%s.%N)
    echo "== $label ($backend, $n instance(s)): $tool"
    echo "$out"
    awk -v b="$pg_before" -v a="$pg_after" -v t0="$t0" -v t1="$t1" -v mb="$m_before" -v ma="$m_after" -v cores="$(nproc)" '
      BEGIN {
        split(mb, x, " "); split(ma, y, " ");
        printf "postgres_cpu_cores=%.2f machine_busy=%.0f%% of %d cores (whole run, setup included)\n",
          (a-b)/100/(t1-t0), 100*(y[1]-x[1])/(y[2]-x[2]), cores }'
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

for r in ${RUNS:-sqlite1 pg1 pg2 pg3}; do
  case $r in
    sqlite1) run sqlite1 sqlite 1 ;;
    pg[1-9]) run "$r" postgres "${r#pg}" ;;
    *) echo "bench-fleet: unknown run $r (sqlite1, pg1, pg2, …)" >&2; exit 2 ;;
  esac
done
