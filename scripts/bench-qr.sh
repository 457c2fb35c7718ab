#!/usr/bin/env bash
# The QR image of a desktop create against its one signature: the mean of many of each on this
# machine, and (sign + image) / sign, the figure issue 19 sets at ≤ 3. See
# crates/mcp-server-alipay/examples/qr_cost.rs.
#
#   scripts/bench-qr.sh [RUNS]     (default 3 runs of the example)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p mcp-server-alipay --example qr_cost
TARGET=${CARGO_TARGET_DIR:-target}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "${1:-3}"); do "$TARGET/release/examples/qr_cost"; done
