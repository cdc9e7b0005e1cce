#!/usr/bin/env bash
# The abi3 wheel on the oldest and newest CPython it claims (3.9 and 3.13),
# when their interpreters can be found: `python3.9` / `python3.13` on PATH,
# or under `pyenv root`. Each gets a fresh venv with the wheel test.sh built
# and pytest against the real server. On 3.9 the two test files written with
# `match` (3.10 syntax) are left out; everything else runs.
#
# Not run by CI (its image has one Python); run after test.sh:
#
#   sdk-python/test.sh && sdk-python/test-pythons.sh
#   PYTHONS="3.9 3.12" sdk-python/test-pythons.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
WHEEL="$(ls "$TARGET"/wheels/tokenrelay-python/tokenrelay-*.whl 2>/dev/null | head -1 || true)"
[ -n "$WHEEL" ] || { echo "no wheel in $TARGET/wheels/tokenrelay-python: run test.sh first" >&2; exit 1; }
export TOKENRELAY_SERVER_BIN="${TOKENRELAY_SERVER_BIN:-$TARGET/release/tokenrelay-server}"
[ -x "$TOKENRELAY_SERVER_BIN" ] || { echo "no server at $TOKENRELAY_SERVER_BIN: run test.sh first" >&2; exit 1; }

find_python() {
    local v="$1" p
    # A pyenv shim may exist for a version pyenv does not select: only an
    # interpreter that runs counts.
    if p="$(command -v "python$v")" && "$p" -c 'pass' 2>/dev/null; then echo "$p"; return; fi
    if command -v pyenv >/dev/null || [ -d "${PYENV_ROOT:-$HOME/.pyenv}" ]; then
        for p in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
            [ -x "$p" ] && { echo "$p"; return; }
        done
    fi
    return 1
}

missing=()
for v in ${PYTHONS:-3.9 3.13}; do
    if ! py="$(find_python "$v")"; then
        echo "==> Python $v: no interpreter found, skipped" >&2
        missing+=("$v")
        continue
    fi
    echo "==> Python $v ($py)" >&2
    venv="$(mktemp -d)/venv"
    "$py" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q pytest pytest-asyncio flask fastapi uvicorn httpx
    "$venv/bin/python" -m pip install -q --no-deps "$WHEEL"
    skip=()
    if [ "$v" = "3.9" ]; then
        skip=(--ignore tests/test_scenarios.py --ignore tests/test_tool_loop.py)
    fi
    (cd "$HERE" && "$venv/bin/python" -m pytest tests -q -p no:cacheprovider "${skip[@]}")
    rm -rf "$(dirname "$venv")"
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "not tested (no interpreter): ${missing[*]}" >&2
fi
