#!/usr/bin/env bash
# Where a `query-alipay-payment` over Streamable HTTP spends the server's CPU beyond the crypto.
# Starts `serve --http` in local mode (the embedded gateway answers) and profiles it only while the
# load generator makes keep-alive queries, after a warm-up.
#
#   scripts/profile-query.sh [SECONDS]          callgrind (default 20 s; about 600 queries): the
#                                               instructions per query, RSA work (aws-lc) and the
#                                               rest split by the crate whose code ran
#   scripts/profile-query.sh --perf [SECONDS]   perf, natively, 32 clients (default 10 s): the share
#                                               of the server's CPU time in aws-lc, and so the
#                                               server's CPU ÷ the crypto it ran, within one moment
#   scripts/profile-query.sh --layers [SECONDS] perf with call stacks (DWARF, default 6 s, then about
#                                               a minute to symbolise): the CPU beyond the crypto
#                                               split by layer — inside the tool's call (our code,
#                                               the embedded gateway, the ledger), rmcp around it,
#                                               and the rest (hyper, our HTTP layer, Tokio, kernel)
#
# The two answer different questions. Instruction counts repeat exactly from run to run, so a
# change's effect on the code around the crypto shows even on this noisy machine; but valgrind's
# CPU has no AVX-512, so aws-lc runs its AVX2 code there and the crypto's share of instructions is
# no guide to its share of time. `--perf` gives that share on the real CPU: the crypto's CPU and
# the rest are sampled at the same moments, so a VM that runs faster or slower for a while moves
# both, where `bench-http.sh` compares the load with a floor measured just before it. `--layers`
# copies each sample's stack, which costs the server more (its ratio reads a few hundredths high);
# read its shares, not its ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=callgrind
case "${1:-}" in
    --perf) MODE=perf; shift ;;
    --layers) MODE=layers; shift ;;
esac
SECONDS_=${1:-$(case $MODE in perf) echo 10 ;; layers) echo 6 ;; *) echo 20 ;; esac)}
if [ $MODE != callgrind ]; then
    command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }
else
    command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install valgrind)" >&2; exit 1; }
fi

cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
cargo build --release -q -p mcp-server-alipay --example loadgen
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release/mcp-server-alipay}   # BIN=... profiles another build
LOADGEN=$TARGET/release/examples/loadgen

DIR=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
UNDER=()
[ $MODE = callgrind ] && UNDER=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$DIR/cg.out")
env -i HOME="$DIR" PATH="$PATH" AP_DATA_DIR="$DIR/data" AP_LOG_FILE="$DIR/server.log" \
    AP_LOCAL_PORT=0 AP_NOTIFY_LISTEN=127.0.0.1:0 AP_HTTP_TOKEN="$TOKEN" \
    "${UNDER[@]}" "$BIN" serve --http "127.0.0.1:$PORT" 2>"$DIR/stderr" &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 600); do grep -q "serving MCP at" "$DIR/stderr" 2>/dev/null && break; sleep 0.1; done

load() { "$LOADGEN" --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --clients "$1" --warmup 0 \
    --seconds "$2" --tool query-alipay-payment --keep-alive --server-pid "$SERVER"; }

# aws-lc's functions as perf names them: its prefixed symbols, its static bignum and RSA helpers, its
# assembly.
CRYPTO_SYMBOLS='^(aws_lc_|bn_|BN_|rsa_|RSA_|pkey_rsa|rsaz)'

# perf records the server (these arguments added to `perf record`) while 32 clients query it.
perf_under_load() {
    load 32 3 >/dev/null   # warm-up
    perf record -q "$@" -o "$DIR/perf.data" -p "$SERVER" -- sleep "$SECONDS_" 2>/dev/null &
    local recorder=$!
    load 32 "$SECONDS_"
    wait $recorder
}

if [ $MODE = perf ]; then
    perf_under_load -F 1999
    perf report -i "$DIR/perf.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null |
        awk -v crypto_symbols="$CRYPTO_SYMBOLS" '/^ *[0-9.]+%/ {
                 share = $1 + 0; total += share
                 symbol = $0; sub(/.*\] /, "", symbol)
                 if (symbol ~ crypto_symbols) crypto += share
             }
             END {
                 if (crypto == 0) { print "no samples in aws-lc: did perf record the server (perf_event_paranoid)?" > "/dev/stderr"; exit 1 }
                 printf "samples: %.1f%% of the server in aws-lc, the rest %.1f%%\n", crypto * 100 / total, 100 - crypto * 100 / total
                 printf "server CPU per query = %.2f x the crypto it ran (same moments)\n", total / crypto
             }'
    exit 0
fi

if [ $MODE = layers ]; then
    perf_under_load --call-graph dwarf,16384 -F 499
    perf script -i "$DIR/perf.data" -F ip,sym 2>/dev/null > "$DIR/stacks"
    python3 - "$DIR/stacks" "$CRYPTO_SYMBOLS" <<'PY'
import re, sys

# One sample: its frames (address, then symbol), innermost first, blank-line separated.
samples, frames = [], []
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if line.strip():
        address_and_symbol = line.split(None, 1)
        frames.append(address_and_symbol[1].strip() if len(address_and_symbol) > 1 else "?")
    elif frames:
        samples.append(frames)
        frames = []
if frames:
    samples.append(frames)
crypto_leaf = re.compile(sys.argv[2])
crypto = sum(1 for s in samples if crypto_leaf.match(s[0]))
if not crypto:
    sys.exit("no samples in aws-lc: did perf record the server (perf_event_paranoid)?")
rest = [s for s in samples if not crypto_leaf.match(s[0])]
within = lambda s, name: any(name in f for f in s)
tool = sum(1 for s in rest if within(s, "mcp_server_alipay::tools::"))
rmcp = sum(1 for s in rest if within(s, "rmcp::") and not within(s, "mcp_server_alipay::tools::"))
other = len(rest) - tool - rmcp
total = len(samples)
print(f"samples={total} crypto={100 * crypto / total:.1f}% beyond it={100 * len(rest) / total:.1f}% "
      f"(server CPU / crypto = {total / crypto:.2f}, raised by the stack copies)")
print(f"  {100 * tool / total:5.1f}%  inside the tool's call: our code, the embedded gateway, the ledger")
print(f"  {100 * rmcp / total:5.1f}%  rmcp around it: the JSON-RPC message, its per-request service")
print(f"  {100 * other / total:5.1f}%  the rest: hyper, our HTTP layer, Tokio's scheduling, the kernel")
print(f"  without rmcp's part: {(total - rmcp) / crypto:.2f}x; without the tool's: {(total - tool) / crypto:.2f}x")
PY
    exit 0
fi

load 8 5 >/dev/null   # warm-up: sessions, caches, the order to query
callgrind_control -i on "$SERVER" >/dev/null 2>&1
load 8 "$SECONDS_"
callgrind_control -i off "$SERVER" >/dev/null 2>&1
callgrind_control -d "$SERVER" >/dev/null 2>&1
sleep 1
# Queries are counted by their RSA signatures, two each (the request's and the gateway's answer):
# exact, where the load generator's count would miss the calls still in flight at either end.
python3 - "$DIR"/cg.out.* <<'PY'
import re, sys, subprocess, collections

signs = 0
names, callee = {}, None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if line.startswith(("fn=", "cfn=")):
        m = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.strip())
        if m.group(2):
            names[m.group(1)] = m.group(2)
        callee = names.get(m.group(1), "") if line.startswith("cfn=") else None
    elif line.startswith("calls=") and callee is not None:
        if callee.endswith("rsa_default_private_transform"):
            signs += int(line.split("=")[1].split()[0])
        callee = None
queries = signs / 2
if not queries:
    sys.exit("no signatures recorded: did the load generator reach the server?")

listing = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", sys.argv[1]],
                         capture_output=True, text=True, check=True).stdout
spent = collections.Counter()
for line in listing.splitlines():
    m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(\S.*)", line)
    if not m or ":" not in m.group(2) or "PROGRAM TOTALS" in line:
        continue
    n, where = int(m.group(1).replace(",", "")), m.group(2)
    path, function = where.split(":", 1)
    if re.search(r"aws_lc|rsaz|/aws-lc/", where):
        key = "crypto (aws-lc)"
    elif "memset" in function:
        key = "libc memset (nearly all aws-lc zeroing what it frees)"
    elif (crate := re.search(r"index\.crates\.io-[0-9a-f]+/([A-Za-z0-9_-]+?)-\d", path)):
        key = crate.group(1).replace("-", "_")
    elif "/crates/" in path:
        key = path.split("/crates/")[1].split("/")[0].replace("-", "_")
    elif "libc" in where or "sysdeps" in path or "/malloc/" in path:
        key = "libc (memcpy, malloc, free)"
    elif path.startswith("/rustc/"):
        # Standard-library code inlined into a function: the function's crate.
        owner = re.search(r"([a-z_][a-z0-9_]*)::", function)
        key = owner.group(1) if owner else "std"
    else:
        key = "other"
    spent[key] += n
total = sum(spent.values())
crypto = spent.pop("crypto (aws-lc)", 0)
print(f"queries={queries:.0f} instructions_per_query={total / queries:.0f} "
      f"crypto_per_query={crypto / queries:.0f} rest_per_query={(total - crypto) / queries:.0f}")
for key, n in spent.most_common(25):
    print(f"  {n / queries:9.0f}  {key}")
PY
