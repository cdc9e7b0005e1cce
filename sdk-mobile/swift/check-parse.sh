#!/usr/bin/env bash
# Checks that every .swift file of the package (generated and hand-written),
# of examples/swift-ios and the root Package.swift (the package by URL) parses, with tree-sitter-swift from PyPI in a
# venv (sdk-mobile/.venv, gitignored). A parse, not a compile: there is no
# Swift toolchain on Linux here. See check_parse.py for what it resolves.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TOKENRELAY_MOBILE_VENV:-$here/../.venv}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv" || {
    echo "cannot create a venv: on Debian, apt-get install -y python3-venv" >&2
    exit 1
  }
fi
"$venv/bin/python" -m pip install -q 'tree-sitter>=0.23,<0.26' 'tree-sitter-swift==0.7.4'
exec "$venv/bin/python" "$here/check_parse.py" "$here" "$root/examples/swift-ios" "$root/Package.swift"
