#!/usr/bin/env bash
# Drive mcp-server-alipay with the MCP Inspector's CLI (npm @modelcontextprotocol/inspector), over
# stdio, in local mode:
#   tools/list   legacy (initialize) and 2026-07-28 (server/discover, no initialize) eras, --strict:
#                the five reference tools among them (others may follow), every tool with
#                outputSchema and annotations, no error-severity schema-portability finding
#   tools/call   create-mobile-alipay-payment in both eras (--tool-arg totalAmount=1 arrives as the
#                JSON number 1, since the CLI JSON.parses each value), create-web-page-alipay-payment
#                with totalAmount="88.8" (a JSON string), and totalAmount=0.001 (isError, exit 5)
# Every run goes through a small shim that tees the JSON-RPC lines both ways, so the lifecycle and
# the negotiated protocol version are asserted from what was actually on the wire.
#
# Usage: bash .ci/mcp-inspector.sh [BINARY]
#   BINARY defaults to the newer of target/{release,debug}/mcp-server-alipay (under
#   $CARGO_TARGET_DIR if set); if neither exists it is built with
#   `cargo build --release -p mcp-server-alipay`.
# Environment:
#   INSPECTOR_SPEC    npm package to install (default @modelcontextprotocol/inspector@2.12.0)
#   INSPECTOR_PREFIX  npm --prefix to install into (default target/ci-npm; reused when it has the version)
#   KEEP_SCRATCH=1    keep the scratch directory (traces, outputs) even on success
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$SECONDS

die() {
  printf '\nmcp-inspector: FAIL: %s\n' "$*" >&2
  exit 1
}

target_dir=${CARGO_TARGET_DIR:-$root/target}
spec=${INSPECTOR_SPEC:-@modelcontextprotocol/inspector@2.12.0}
prefix=${INSPECTOR_PREFIX:-$target_dir/ci-npm}

# --- the server binary ---------------------------------------------------------------------------
if [ $# -ge 1 ]; then
  bin=$1
else
  bin=""
  for candidate in "$target_dir/release/mcp-server-alipay" "$target_dir/debug/mcp-server-alipay"; do
    if [ -x "$candidate" ] && { [ -z "$bin" ] || [ "$candidate" -nt "$bin" ]; }; then
      bin=$candidate
    fi
  done
  if [ -z "$bin" ]; then
    echo "mcp-inspector: no built binary; cargo build --release -p mcp-server-alipay"
    cargo build --release -p mcp-server-alipay
    bin=$target_dir/release/mcp-server-alipay
  fi
fi
[ -x "$bin" ] || die "server binary $bin is missing or not executable"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
echo "mcp-inspector: server binary $bin"

# --- Node.js, npm and the inspector --------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "mcp-inspector: no node/npm; installing nodejs npm with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 ||
    die "need node and npm (Debian: apt-get install nodejs npm)"
fi
echo "mcp-inspector: node $(node --version), npm $(npm --version)"

pkg_json=$prefix/node_modules/@modelcontextprotocol/inspector/package.json
want_version=${spec##*@}
installed_version() { [ -f "$pkg_json" ] && node -p "require(process.argv[1]).version" "$pkg_json" 2>/dev/null; }
if [ "$(installed_version || true)" != "$want_version" ] || [ ! -x "$prefix/node_modules/.bin/mcp-inspector" ]; then
  echo "mcp-inspector: npm install --prefix $prefix $spec"
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$spec" ||
    die "npm install $spec failed (is the npm registry reachable?)"
fi
inspector=$prefix/node_modules/.bin/mcp-inspector
[ -x "$inspector" ] || die "$inspector is missing after npm install"
echo "mcp-inspector: inspector $(installed_version) in $prefix ($((SECONDS - start))s)"

# --- scratch, and a shim that records the JSON-RPC traffic ---------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mcp-inspector-XXXXXX")
ok=0
cleanup() {
  if [ "$ok" = 1 ] && [ "${KEEP_SCRATCH:-0}" != 1 ]; then
    rm -rf "$scratch"
  else
    echo "mcp-inspector: scratch kept in $scratch" >&2
  fi
}
trap cleanup EXIT
mkdir -p "$scratch/home"
shim=$scratch/server-shim.sh
cat >"$shim" <<EOF
#!/bin/sh
# \$1 names the trace; the rest goes to the server. Client->server lines in \$1.in, replies in \$1.out.
name=\$1
shift
tee -a "$scratch/\$name.in" | "$bin" "\$@" | tee -a "$scratch/\$name.out"
EOF
chmod +x "$shim"

stamp=$(date +%Y%m%d%H%M%S)$$

# inspect NAME ERA EXPECTED_EXIT [inspector args...]: run the inspector CLI against a fresh
# local-mode server with an explicit environment; stdout in NAME.json, stderr in NAME.err.
inspect() {
  local name=$1 era=$2 expect=$3
  shift 3
  local rc=0
  # HOME is passed to the server with -e like the rest: a stdio client would otherwise hand down its own.
  HOME=$scratch/home timeout 120 "$inspector" --cli "$shim" "$name" \
    -e "HOME=$scratch/home" \
    -e "AP_DATA_DIR=$scratch/data-$name" \
    -e "AP_LOG_FILE=$scratch/server-$name.log" \
    -e "AP_LOCAL_PORT=0" \
    --protocol-era "$era" --format json "$@" \
    >"$scratch/$name.json" 2>"$scratch/$name.err" || rc=$?
  if [ "$rc" != "$expect" ]; then
    echo "--- inspector stdout ($name) ---" >&2
    head -c 3000 "$scratch/$name.json" >&2 || true
    echo >&2
    echo "--- inspector stderr ($name) ---" >&2
    tail -n 40 "$scratch/$name.err" >&2 || true
    die "inspector run '$name' (era $era, $*) exited $rc, expected $expect"
  fi
}

# check NAME ERA KIND [EXTRA]: assert on NAME.json and the NAME.in/NAME.out traces (node, which
# the inspector needs anyway). Prints one summary line; exits non-zero with the reason otherwise.
check() {
  node - "$scratch" "$@" <<'EOF'
const fs = require("fs");
const [dir, name, era, kind, extra] = process.argv.slice(2);
const fail = (msg, got) => {
  console.error(`mcp-inspector: FAIL [${name}] ${msg}` + (got === undefined ? "" : `\n    got: ${typeof got === "string" ? got : JSON.stringify(got)}`.slice(0, 3000)));
  process.exit(1);
};
const lines = (f) => fs.existsSync(f) ? fs.readFileSync(f, "utf8").split("\n").filter((l) => l.trim()) : [];
const parse = (l, f) => { try { return JSON.parse(l); } catch (e) { fail(`${f} has a line that is not JSON-RPC`, l); } };
const sent = lines(`${dir}/${name}.in`).map((l) => parse(l, "client->server"));
const got = lines(`${dir}/${name}.out`).map((l) => parse(l, "server stdout"));
const reply = (id) => got.find((m) => m.id === id && !("method" in m));

// The lifecycle, from the wire.
let version;
const init = sent.find((m) => m.method === "initialize");
if (era === "legacy") {
  if (!init) fail("legacy era: no initialize was sent", sent.map((m) => m.method));
  const r = reply(init.id);
  if (!r || !r.result) fail("initialize was not answered with a result", r);
  const asked = init.params.protocolVersion;
  version = r.result.protocolVersion;
  const supported = ["2025-03-26", "2025-06-18", "2025-11-25"];
  const expected = supported.includes(asked) ? asked : "2025-11-25";
  if (version !== expected) fail(`initialize asked ${asked}; expected the server to answer ${expected}`, version);
  if (r.result.serverInfo?.name !== "mcp-server-alipay") fail("serverInfo.name", r.result.serverInfo);
  version = `initialize ${asked} -> ${version}`;
} else {
  if (init) fail(`era ${era}: initialize was sent`, init);
  const disc = sent.find((m) => m.method === "server/discover");
  if (!disc) fail("no server/discover probe", sent.map((m) => m.method));
  const d = reply(disc.id);
  if (!d?.result?.supportedVersions?.includes("2026-07-28")) fail("server/discover lists 2026-07-28", d);
  const reqs = sent.filter((m) => m.method && m.method !== "server/discover" && "id" in m);
  for (const m of reqs) {
    const v = m.params?._meta?.["io.modelcontextprotocol/protocolVersion"];
    if (v !== "2026-07-28") fail(`${m.method} was not sent at 2026-07-28`, m.params?._meta);
  }
  version = `server/discover, then ${reqs.map((m) => m.method).join(", ")} at 2026-07-28`;
}
for (const m of got) if (m.error) fail("the server answered with a JSON-RPC error", m);

const out = JSON.parse(fs.readFileSync(`${dir}/${name}.json`, "utf8"));
const result = out.result;
const text = (r) => (r.content || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
let summary;
if (kind === "list") {
  const want = ["create-mobile-alipay-payment", "create-web-page-alipay-payment", "query-alipay-payment",
    "query-alipay-refund", "refund-alipay-payment"];
  const names = (result?.tools || []).map((t) => t.name).sort();
  if (!want.every((n) => names.includes(n))) fail("tools/list should have the five reference tools", names);
  const extra = names.filter((n) => !want.includes(n));
  for (const t of result.tools) {
    if (t.outputSchema?.type !== "object") fail(`${t.name}: outputSchema`, t.outputSchema);
    if (!t.annotations) fail(`${t.name}: annotations`, t);
  }
  const findings = (out.schemaFindings || []).flatMap((f) => f.findings.map((x) => x.severity));
  summary = `the five reference tools${extra.length ? ` and ${extra.join(", ")}` : ""}; schema portability findings: ${findings.filter((s) => s === "error").length} errors, ${findings.filter((s) => s === "warning").length} warnings`;
} else if (kind === "bad") {
  if (result?.isError !== true) fail("totalAmount 0.001 should be a tool error (isError true)", result);
  if (!text(result).includes("totalAmount")) fail("the error should name totalAmount", result);
  summary = `isError: ${text(result)}`;
} else {
  const prefix = kind === "web" ? "网页支付链接: [点击完成支付](" : "支付链接: [点击完成支付](";
  if (result?.isError) fail("tool call returned isError", result);
  const t = text(result);
  if (!t.startsWith(prefix)) fail(`text should start with ${prefix}`, t);
  const m = /\[点击完成支付\]\((.*?)\)/.exec(t);
  if (!m) fail("no link in the text", t);
  if (result.structuredContent?.url !== m[1]) fail("structuredContent.url equals the link", result.structuredContent);
  if (kind === "web" && !(result.content || []).some((c) => c.type === "image" && c.mimeType === "image/png"))
    fail("the web tool returns an image/png content", result.content.map((c) => c.type));
  const call = sent.find((m) => m.method === "tools/call");
  summary = `arguments on the wire ${JSON.stringify(call.params.arguments)}; ${t.slice(0, 50)}…`;
  if (extra) {
    const amount = call.params.arguments.totalAmount;
    if (JSON.stringify(amount) !== extra) fail(`totalAmount should arrive as ${extra}`, amount);
  }
}
console.log(`  [${name}] ${version}; ${summary}`);
EOF
}

# --- the runs ------------------------------------------------------------------------------------
for era in legacy modern; do
  inspect "list-$era" "$era" 0 --method tools/list --strict
  check "list-$era" "$era" list || die "tools/list ($era) disagrees"
done
for era in legacy modern; do
  inspect "mobile-$era" "$era" 0 --method tools/call --tool-name create-mobile-alipay-payment \
    --tool-arg "outTradeNo=INS_${stamp}_${era}" --tool-arg totalAmount=1 --tool-arg "orderTitle=检查器测试"
  check "mobile-$era" "$era" mobile 1 || die "create-mobile-alipay-payment ($era) disagrees"
done
inspect web legacy 0 --method tools/call --tool-name create-web-page-alipay-payment \
  --tool-arg "outTradeNo=INS_${stamp}_web" --tool-arg 'totalAmount="88.8"' --tool-arg "orderTitle=定製插畫"
check web legacy web '"88.8"' || die "create-web-page-alipay-payment disagrees"
# A tool error: the CLI prints the result and exits 5 (tool_is_error).
inspect bad modern 5 --method tools/call --tool-name create-mobile-alipay-payment \
  --tool-arg "outTradeNo=INS_${stamp}_bad" --tool-arg totalAmount=0.001 --tool-arg orderTitle=t
check bad modern bad || die "a bad totalAmount disagrees"

ok=1
echo "mcp-inspector: OK ($((SECONDS - start))s)"
