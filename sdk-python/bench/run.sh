#!/usr/bin/env bash
# Benchmarks of the Python SDK (issue 4): 1 M on_token frames through
# conn.stream(), conn.ask(), websockets and aiohttp, one run side by side.
# Reuses (or creates) the venv of test.sh and builds the release wheel.
#
#   sdk-python/bench/run.sh [--tokens N]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${TOKENRELAY_PY_VENV:-$HERE/.venv}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WHEELS="$TARGET/wheels/tokenrelay-python"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q 'maturin>=1.7,<2' websockets aiohttp
rm -rf "$WHEELS"
(cd "$HERE" && "$VENV/bin/maturin" build --release --quiet --out "$WHEELS" >&2)
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEELS"/tokenrelay-*.whl

cd "$REPO"
exec "$VENV/bin/python" "$HERE/bench/bench.py" "$@"
