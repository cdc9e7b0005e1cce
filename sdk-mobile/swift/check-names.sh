#!/usr/bin/env bash
# Checks that the hand-written Swift (Sources/TokenRelay/Client.swift, the
# XCTest file, examples/swift-ios) and the uniffi-generated Swift agree on
# every name they share, and that the Swift documentation (comments, the
# Swift sections of the READMEs) names only enum cases that exist. Needs the
# generated files (sdk-mobile/build.sh) and the venv of check-parse.sh.
# See check_names.py for what it checks.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TOKENRELAY_MOBILE_VENV:-$here/../.venv}"
[ -x "$venv/bin/python" ] || bash "$here/check-parse.sh" >/dev/null
cd "$here"
exec "$venv/bin/python" "$here/check_names.py" "$here/Sources/TokenRelay/Generated" \
  "$here/Sources/TokenRelay" "$here/Tests" "$root/examples/swift-ios" \
  --docs "$here/../README.md" "$root/examples/swift-ios/README.md"
