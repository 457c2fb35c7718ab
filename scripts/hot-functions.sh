#!/usr/bin/env bash
# Regenerates crates/mcp-server-alipay/hot-functions.txt, the functions the release binary runs
# when it starts and serves the common calls, and checks how much of it a build still matches.
#
#   scripts/hot-functions.sh           regenerate (callgrind; about 3 minutes)
#   scripts/hot-functions.sh --check   how many of the listed functions the release binary has
#
# build.rs gives the file to the linker (`--symbol-ordering-file`), which lays these functions out
# first, together: a start and the common calls then touch 2 MB of the binary's code instead of
# pages spread over all 17 MB, and the kernel maps whole page-cache folios around every page touched.
# The names are mangled with a hash of each crate's version, features and profile, so the file
# matches the plain release build (`cargo build --release`, `cargo install --path ...`) of this
# Cargo.lock and toolchain; a build it does not match links and runs the same, only without the
# layout. Regenerate after updating dependencies or the toolchain (`--check` says when: the share
# falls).
#
# Recorded, in order (each phase adds what the ones before did not run, so that a start touches
# only the front of the list): a stdio start to `tools/list` with a production configuration; one
# in local mode (embedded gateway); a local stdio session that creates, queries, lists and closes
# orders; Streamable HTTP in local mode under the load generator (query, the three creates). Run
# under callgrind, which records every function run; then a query load runs natively under `perf`
# to add what valgrind's CPU cannot show (aws-lc's AVX-512 code). Starts are second starts (the
# ledger and the keys exist), as every start but the first is.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=crates/mcp-server-alipay/hot-functions.txt
TARGET=${CARGO_TARGET_DIR:-target}

# The plain build (no dev-dependencies' features), whose names the file must match; the load
# generator builds on its own afterwards, with different features, into different files.
cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

listed() { grep -v '^#' "$OUT" | grep -c .; }
if [ "${1:-}" = --check ]; then
    nm --defined-only "$TARGET/release/mcp-server-alipay" | awk '{print $3}' | sort -u >"$DIR/names"
    grep -v '^#' "$OUT" | sort -u >"$DIR/listed"
    found=$(comm -12 "$DIR/names" "$DIR/listed" | wc -l)
    echo "hot-functions.txt: $found of $(listed) functions are in the release binary"
    exit 0
fi
# A copy, which the load generator's build below cannot replace.
BIN="$DIR/mcp-server-alipay"
cp "$TARGET/release/mcp-server-alipay" "$BIN"
command -v valgrind >/dev/null || { echo "needs valgrind" >&2; exit 1; }
cargo build --release -q -p mcp-server-alipay --example loadgen
LOADGEN="$TARGET/release/examples/loadgen"
KEYS=testdata/alipay-vectors/keys
CG=(valgrind --tool=callgrind --demangle=no --dump-instr=no)

# A stdio session: the handshake, tools/list, then each given call, one answer at a time.
cat >"$DIR/stdio.py" <<'PY'
import json, subprocess, sys
argv = sys.argv[1:]
split = argv.index("--")
cmd, calls = argv[:split], argv[split + 1:]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
def ask(id_, method, params):
    p.stdin.write(json.dumps({"jsonrpc": "2.0", "id": id_, "method": method, "params": params}) + "\n")
    p.stdin.flush()
    for line in p.stdout:
        if json.loads(line).get("id") == id_:
            return
    sys.exit("the server closed stdout")
ask(1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "hot-functions", "version": "0"}})
p.stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
ask(2, "tools/list", {})
for i, call in enumerate(calls):
    name, args = call.split(" ", 1)
    ask(3 + i, "tools/call", {"name": name, "arguments": json.loads(args)})
p.stdin.close()
p.wait()
PY

echo "1/5 stdio start, production configuration"
PROD=(env -i HOME="$DIR" PATH="$PATH" AP_DATA_DIR="$DIR/prod" AP_LOG_FILE="$DIR/prod.log"
    AP_APP_ID=2021000000000001 AP_APP_KEY="$KEYS/app-private-pkcs8.pem"
    AP_PUB_KEY="$KEYS/alipay-public-spki.pem" AP_GATEWAY_URL=http://127.0.0.1:9/gateway.do)
"${PROD[@]}" python3 "$DIR/stdio.py" "$BIN" --
"${PROD[@]}" python3 "$DIR/stdio.py" "${CG[@]}" --callgrind-out-file="$DIR/1.cg" "$BIN" --

echo "2/5 stdio start in local mode (a second start: the keys and the ledger exist)"
LOCAL=(env -i HOME="$DIR" PATH="$PATH" AP_DATA_DIR="$DIR/local" AP_LOG_FILE="$DIR/local.log"
    AP_LOCAL_PORT=0 AP_NOTIFY_LISTEN=127.0.0.1:0)
"${LOCAL[@]}" python3 "$DIR/stdio.py" "$BIN" --
"${LOCAL[@]}" python3 "$DIR/stdio.py" "${CG[@]}" --callgrind-out-file="$DIR/2.cg" "$BIN" --

echo "3/5 stdio in local mode: creates, a query, a list, a close"
order='"totalAmount":"0.01","orderTitle":"hot-functions"'
"${LOCAL[@]}" python3 "$DIR/stdio.py" "${CG[@]}" --callgrind-out-file="$DIR/3.cg" "$BIN" -- \
    "create-web-page-alipay-payment {\"outTradeNo\":\"HF1\",$order}" \
    "create-mobile-alipay-payment {\"outTradeNo\":\"HF2\",$order}" \
    "create-qrcode-alipay-payment {\"outTradeNo\":\"HF3\",$order}" \
    'query-alipay-payment {"outTradeNo":"HF1"}' \
    'list-alipay-orders {}' \
    'close-alipay-payment {"outTradeNo":"HF2"}'

serve_http() {   # serve_http PREFIX...: starts the server (under PREFIX) on $PORT, sets $SERVER
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    rm -f "$DIR/stderr"
    "${LOCAL[@]}" AP_HTTP_TOKEN="$TOKEN" "$@" "$BIN" serve --http "127.0.0.1:$PORT" 2>"$DIR/stderr" &
    SERVER=$!
    for _ in $(seq 600); do grep -q "serving MCP at" "$DIR/stderr" 2>/dev/null && break; sleep 0.1; done
}
load() {   # load TOOL SECONDS
    "$LOADGEN" --url "http://127.0.0.1:$PORT/mcp" --token "$TOKEN" --clients 2 --warmup 0 \
        --seconds "$2" --tool "$1" --keep-alive | tail -1
}

echo "4/5 Streamable HTTP in local mode under the load generator"
serve_http "${CG[@]}" --callgrind-out-file="$DIR/4.cg"
for tool in query-alipay-payment create-web-page-alipay-payment create-mobile-alipay-payment \
    create-qrcode-alipay-payment; do
    load "$tool" 3
done
kill -TERM "$SERVER"; wait "$SERVER" || true

# What the callgrind runs saw, in the object that is the binary, first seen first.
functions_in() {
    python3 - "$BIN" "$@" <<'PY'
import re, sys
binary, files = sys.argv[1], sys.argv[2:]
seen = {}
for path in files:
    objects, functions, current = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        called, kind, key, name = m.groups()
        table = objects if kind == "ob" else functions
        if name:
            table[key] = name
        if called:
            continue
        if kind == "ob":
            current = objects[key]
        elif current == binary:
            name = re.sub(r"'\d+$", "", functions[key])
            if not name.startswith("0x") and not name.startswith("("):
                seen.setdefault(name, None)
print("\n".join(seen))
PY
}
functions_in "$DIR"/1.cg* "$DIR"/2.cg* "$DIR"/3.cg* "$DIR"/4.cg* >"$DIR/hot"

echo "5/5 a native query load under perf (code valgrind's CPU does not run)"
if command -v perf >/dev/null && perf record -q -o "$DIR/probe.data" true 2>/dev/null; then
    serve_http
    load query-alipay-payment 1 >/dev/null
    perf record -q -F 5000 -p "$SERVER" -o "$DIR/perf.data" -- sleep 3 2>/dev/null &
    RECORDER=$!
    load query-alipay-payment 3
    wait "$RECORDER" || true
    kill -TERM "$SERVER"; wait "$SERVER" || true
    perf script -i "$DIR/perf.data" --no-demangle -F ip,sym,dso 2>/dev/null |
        awk -v dso="($BIN)" '$NF == dso && $2 != "[unknown]" { print $2 }' | sort -u >"$DIR/native"
    grep -vxF -f "$DIR/hot" "$DIR/native" >>"$DIR/hot" || true
else
    echo "  perf is not usable here; skipped"
fi

{
    echo "# The functions the release binary runs when it starts and serves the common calls, first"
    echo "# run first: build.rs hands this file to the linker. Generated by scripts/hot-functions.sh"
    echo "# with $(rustc --version | cut -d' ' -f1-2); do not edit."
    cat "$DIR/hot"
} >"$OUT"
echo "wrote $OUT: $(listed) functions"
