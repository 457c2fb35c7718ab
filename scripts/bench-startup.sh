#!/usr/bin/env bash
# Stdio start-up: process start to the `tools/list` answer (median of N starts) and the idle
# resident memory after it, in local mode (embedded gateway, ledger, notify receiver) and with a
# prod configuration (the vector test keys, a gateway URL that points nowhere: listing tools needs
# no network). See crates/mcp-server-alipay/examples/startup.rs.
#
#   scripts/bench-startup.sh [N]       (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-20}
# The binary on its own, as users build it (the names hot-functions.txt orders are its own), then
# the benchmark's programs, with the dev-dependencies' features.
cargo build --release -q -p mcp-server-alipay --bin mcp-server-alipay
cargo build --release -q -p mcp-server-alipay --example startup
TARGET=${CARGO_TARGET_DIR:-target}
# The idle RSS depends on the binary's layout: say whether hot-functions.txt still matches it.
bash scripts/hot-functions.sh --check
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in local prod; do
    for protocol in 2025-06-18 2026-07-28; do
        "$TARGET/release/examples/startup" --mode "$mode" --protocol "$protocol" --runs "$N" \
            --keys testdata/alipay-vectors/keys
    done
done
