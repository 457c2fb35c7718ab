#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for FUZZ_SECONDS (default 30) each, one after another.
# cargo-fuzz needs nightly-only rustc flags; on the stable toolchain RUSTC_BOOTSTRAP=1 lets rustc
# accept them (a documented escape hatch for building with unstable flags, nothing else changes).
# Installs cargo-fuzz if it is missing. Exits non-zero on the first crash, leaving the input in
# fuzz/artifacts/<target>/. Usage: bash .ci/fuzz.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$PWD/target/fuzz}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi

for target in "${targets[@]}"; do
    # Start from the checked-in seeds; the grown corpus stays local (fuzz/corpus is ignored).
    mkdir -p "fuzz/corpus/$target"
    cp -n fuzz/seeds/"$target"/* "fuzz/corpus/$target/" 2>/dev/null || true
    echo "fuzz: $target for ${seconds}s"
    log="$(mktemp)"
    if ! (cd fuzz && cargo fuzz run --sanitizer none "$target" -- \
            -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=4096) >"$log" 2>&1; then
        tail -60 "$log"
        echo "fuzz: $target FAILED; the crashing input is in fuzz/artifacts/$target/"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "fuzz: $target clean, $runs executions in ${seconds}s"
    rm -f "$log"
done
