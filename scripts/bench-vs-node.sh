#!/usr/bin/env bash
# Side by side with the official Node stack: N page-pay links (alipay.trade.page.pay, GET) built by
# the Alipay Node SDK 4.14.0's pageExecute (bench/node-reference) and by alipay-openapi
# (crates/alipay-openapi/examples/page_links.rs), same key and parameters, one thread each,
# alternating, three rounds, the best round of each. Prints both rates and the ratio, then our
# rate on every core (the Node SDK's pageExecute runs on the one JavaScript thread; our server's
# tokio workers sign on every core).
#
#   scripts/bench-vs-node.sh [N]      (default 2000; needs node and npm)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
if [ ! -d bench/node-reference/node_modules/alipay-sdk ]; then
    (cd bench/node-reference && npm install --no-audit --no-fund --silent)
fi
cargo build --release -q -p alipay-openapi --example page_links
TARGET=${CARGO_TARGET_DIR:-target}
# Three alternating rounds; the best of each side (the machine may be busy with other work).
node_lines=""; rust_lines=""
for _ in 1 2 3; do
    node_lines+="$(node bench/node-reference/bench.js "$N")"$'\n'
    rust_lines+="$("$TARGET/release/examples/page_links" "$N")"$'\n'
done
node_line=$(grep . <<<"$node_lines" | sort -t= -k4 -g -r | head -1)
rust_line=$(grep . <<<"$rust_lines" | sort -t= -k4 -g -r | head -1)
echo "$node_line   (alipay-sdk $(node -p "require('./bench/node-reference/node_modules/alipay-sdk/package.json').version"), node $(node --version))"
echo "$rust_line   (alipay-openapi, aws-lc-rs)"
node_rate=$(sed -n 's/.*links_per_s=\([0-9.]*\).*/\1/p' <<<"$node_line")
rust_rate=$(sed -n 's/.*links_per_s=\([0-9.]*\).*/\1/p' <<<"$rust_line")
awk -v r="$rust_rate" -v n="$node_rate" 'BEGIN { printf "ratio rust/node = %.2fx (one thread each)\n", r / n }'
cores=$(nproc)
all_line=$("$TARGET/release/examples/page_links" "$N" "$cores")
echo "$all_line   (alipay-openapi on all $cores cores)"
all_rate=$(sed -n 's/.*links_per_s=\([0-9.]*\).*/\1/p' <<<"$all_line")
awk -v r="$all_rate" -v n="$node_rate" -v c="$cores" 'BEGIN { printf "ratio rust (%d cores)/node = %.2fx\n", c, r / n }'
