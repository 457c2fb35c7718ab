#!/usr/bin/env bash
# Drive mcp-server-alipay with the official Python MCP SDK (PyPI `mcp`) over stdio, in local mode:
# the pay / query / refund flow once per lifecycle (2026-07-28 via server/discover, 2026-07-28
# pinned; legacy initialize 2025-11-25, 2025-06-18 and 2025-03-26; initialize asking 2026-07-28,
# which must be answered 2025-11-25). See
# .ci/interop/mcp_python_client.py for what is asserted.
#
# Usage: bash .ci/mcp-python-client.sh [BINARY]
#   BINARY defaults to the newer of target/{release,debug}/mcp-server-alipay (under
#   $CARGO_TARGET_DIR if set); if neither exists it is built with
#   `cargo build --release -p mcp-server-alipay`.
# Environment:
#   MCP_PY_SPEC   the pip requirement to install (default mcp==2.3.0; "mcp" for the newest)
#   MCP_PY_VENV   where the venv lives (default target/ci-venv-mcp; reused when it already has MCP_PY_SPEC)
#   MCP_PY_MODES  comma-separated subset of modern,modern-pinned,legacy,legacy-2025-06-18,legacy-2025-03-26,legacy-asking-2026
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$SECONDS

die() {
  printf '\nmcp-python-client: FAIL: %s\n' "$*" >&2
  exit 1
}

target_dir=${CARGO_TARGET_DIR:-$root/target}
spec=${MCP_PY_SPEC:-mcp==2.3.0}
venv=${MCP_PY_VENV:-$target_dir/ci-venv-mcp}
modes=${MCP_PY_MODES:-modern,modern-pinned,legacy,legacy-2025-06-18,legacy-2025-03-26,legacy-asking-2026}

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
    echo "mcp-python-client: no built binary; cargo build --release -p mcp-server-alipay"
    cargo build --release -p mcp-server-alipay
    bin=$target_dir/release/mcp-server-alipay
  fi
fi
[ -x "$bin" ] || die "server binary $bin is missing or not executable"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
echo "mcp-python-client: server binary $bin"

# --- a Python >= 3.10 with venv, and the SDK in a venv -------------------------------------------
pick_python() {
  local p
  for p in python3 /usr/bin/python3 python3.13 python3.12 python3.11 python3.10; do
    if command -v "$p" >/dev/null 2>&1 &&
      "$p" -c 'import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      command -v "$p"
      return 0
    fi
  done
  return 1
}
if ! python=$(pick_python); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "mcp-python-client: no Python >= 3.10 with venv; installing python3 python3-venv with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
  python=$(pick_python) || die "need Python >= 3.10 with the venv module (Debian: apt-get install python3 python3-venv)"
fi
echo "mcp-python-client: $("$python" --version) at $python"

venv_ok() {
  [ -x "$venv/bin/python" ] &&
    "$venv/bin/python" - "$spec" <<'EOF' 2>/dev/null
import sys
from importlib.metadata import version
spec = sys.argv[1]
if "==" in spec:
    sys.exit(0 if version("mcp") == spec.split("==", 1)[1] else 1)
import mcp  # noqa: F401  (any installed version satisfies an unpinned spec)
EOF
}
if ! venv_ok; then
  echo "mcp-python-client: creating $venv and installing $spec"
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "python -m venv $venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/python" -m pip install --disable-pip-version-check -q "$spec" ||
    die "pip install $spec failed (is PyPI reachable?)"
fi
echo "mcp-python-client: $("$venv/bin/python" -c 'from importlib.metadata import version; print("mcp", version("mcp"))') in $venv ($((SECONDS - start))s)"

# --- the flow ------------------------------------------------------------------------------------
if ! "$venv/bin/python" "$root/.ci/interop/mcp_python_client.py" "$bin" --modes "$modes"; then
  die "the Python MCP SDK client disagrees with the server (see above)"
fi
# --- waiting for a payment: wait-for-alipay-payment over stdio and Streamable HTTP ---------------
if ! "$venv/bin/python" "$root/.ci/interop/mcp_python_wait.py" "$bin"; then
  die "the Python MCP SDK client disagrees with the server on wait-for-alipay-payment (see above)"
fi
echo "mcp-python-client: OK ($((SECONDS - start))s)"
