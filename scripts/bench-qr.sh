#!/usr/bin/env bash
# The QR image of a desktop create against its one signature: the mean of many of each on this
# machine, and (sign + image) / sign, the figure issue 19 sets at ≤ 3. See
# crates/mcp-server-alipay/examples/qr_cost.rs.
#
#   scripts/bench-qr.sh [RUNS]       (default 3 runs of the example)
#   scripts/bench-qr.sh --callgrind  instructions per image under valgrind: exact and repeatable
#                                    where wall times on a shared machine are not
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p mcp-server-alipay --example qr_cost
TARGET=${CARGO_TARGET_DIR:-target}
EXAMPLE="$TARGET/release/examples/qr_cost"
if [ "${1:-}" = --callgrind ]; then
    IMAGES=10
    OUT=$(mktemp)
    trap 'rm -f "$OUT"' EXIT
    # Only `qr::png` is counted, not the key loading and signing that make the link.
    valgrind --tool=callgrind --toggle-collect='mcp_server_alipay::qr::png' \
        --callgrind-out-file="$OUT" "$EXAMPLE" images "$IMAGES" 2>&1 |
        sed -n 's/.*Collected : //p' |
        awk -v n="$IMAGES" '{ printf "instructions_per_image=%d\n", $1 / n }'
    exit
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "${1:-3}"); do "$EXAMPLE"; done
