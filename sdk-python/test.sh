#!/usr/bin/env bash
# The Python SDK's whole check, from nothing installed to pytest's summary:
# venv, tools, the abi3 wheel built with maturin (release) and installed as
# a user would, the reference server's and the CLI's wheels (their
# binaries) likewise, the cross-built aarch64 and musllinux wheels (built
# and inspected, not run: build-wheels.sh), mypy --strict on the examples
# and on tokenrelay.testing, pytest against that real reference server,
# then the latency bench's short run (bench/latency.py --short: figures
# printed, never judged; every reply must still arrive whole).
# Exits non-zero on any failure.
#
#   sdk-python/test.sh              # venv in sdk-python/.venv (gitignored)
#   TOKENRELAY_PY_VENV=/tmp/v sdk-python/test.sh
#
# Needs: cargo, and python3 >= 3.10 with venv (Debian: apt-get install -y
# python3-venv). The wheel itself supports CPython >= 3.9.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${TOKENRELAY_PY_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WHEELS="$TARGET/wheels/tokenrelay-python"
SERVER_WHEELS="$TARGET/wheels/tokenrelay-server"

step() { printf '\n==> %s\n' "$*" >&2; }

step "venv $VENV"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" || {
        echo "cannot create a venv: on Debian, apt-get install -y python3-venv" >&2
        exit 1
    }
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q \
    'maturin>=1.7,<2' pytest pytest-asyncio mypy flask fastapi uvicorn httpx

step "abi3 wheel (maturin, release)"
rm -rf "$WHEELS"
(cd "$HERE" && "$VENV/bin/maturin" build ${CI:+--locked} --release --quiet --out "$WHEELS" >&2)

step "install the wheel as a user would"
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$WHEELS"/tokenrelay-*.whl

step "reference server wheel (maturin bin, release), installed into the venv"
# The tests find its binary beside the venv's python, as users of
# tokenrelay.testing do; TOKENRELAY_SERVER_BIN, when set, still wins.
# Its cargo build is `cargo build --release -p tokenrelay-server`'s, so the
# target dir's build is reused (reference-server/README.md).
rm -rf "$SERVER_WHEELS"
(cd "$REPO/reference-server" && "$VENV/bin/maturin" build ${CI:+--locked} --release --quiet --out "$SERVER_WHEELS" >&2)
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$SERVER_WHEELS"/tokenrelay_server-*.whl
# tests/test_testing.py: the wheel's binary must be there, not skipped.
export TOKENRELAY_EXPECT_SERVER_WHEEL=1

step "CLI wheel (maturin bin, release), installed into the venv"
# `pip install tokenrelay-cli` puts `tokenrelay` beside python;
# tests/test_cli_wheel.py runs it against the suite's server.
CLI_WHEELS="$TARGET/wheels/tokenrelay-cli"
rm -rf "$CLI_WHEELS"
(cd "$REPO/cli" && "$VENV/bin/maturin" build ${CI:+--locked} --release --quiet --out "$CLI_WHEELS" >&2)
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$CLI_WHEELS"/tokenrelay_cli-*.whl
export TOKENRELAY_EXPECT_CLI_WHEEL=1

step "the cross-built wheels: manylinux aarch64, musllinux x86_64 (build-wheels.sh)"
bash "$HERE/build-wheels.sh"

step "mypy --strict on the examples and tokenrelay.testing"
# Run outside the source tree so the installed wheel (py.typed) is what
# mypy sees, not sdk-python/python.
(cd "$REPO/examples" && "$VENV/bin/mypy" --strict --no-incremental \
    python-backend/backend.py python-client/chat_client.py)
(cd "$REPO/examples" && "$VENV/bin/mypy" --strict --no-incremental \
    -p tokenrelay.testing -p tokenrelay.pytest_plugin)

step "pytest"
cd "$HERE"
"$VENV/bin/python" -c 'import tokenrelay, sys; assert "site-packages" in tokenrelay.__file__, tokenrelay.__file__'
# -rs: the summary names every skipped test (the scenarios a base-protocol
# server cannot pass, by name).
"$VENV/bin/python" -m pytest tests -q -rs -p no:cacheprovider

step "latency, short (bench/latency.py; bench/latency.sh runs every round)"
exec "$VENV/bin/python" bench/latency.py --short
