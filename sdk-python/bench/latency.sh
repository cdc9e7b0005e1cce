#!/usr/bin/env bash
# Latency through the Python SDK (issue #11), every round: builds the
# release abi3 wheel and the release reference server, installs the wheel
# into the venv of test.sh (created if missing) and runs bench/latency.py.
# `sdk-python/test.sh` runs the short mode at its end, on its own build.
#
#   sdk-python/bench/latency.sh [--short]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${TOKENRELAY_PY_VENV:-$HERE/.venv}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WHEELS="$TARGET/wheels/tokenrelay-python"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3}" -m venv "$VENV"
# The bench starts the server with the pytest harness (tests/conftest.py).
"$VENV/bin/python" -m pip install -q 'maturin>=1.7,<2' pytest httpx
rm -rf "$WHEELS"
(cd "$HERE" && "$VENV/bin/maturin" build --release --quiet --out "$WHEELS" >&2)
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEELS"/tokenrelay-*.whl
(cd "$REPO" && cargo build ${CI:+--locked} --release -q -p tokenrelay-server)
export TOKENRELAY_SERVER_BIN="$TARGET/release/tokenrelay-server"

cd "$HERE"
exec "$VENV/bin/python" bench/latency.py "$@"
