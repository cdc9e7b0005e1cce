#!/usr/bin/env bash
# Tests scripts/release-swift.sh where no Apple toolchain exists: without
# --zip it must refuse, saying why; with a dummy zip it must write that
# zip's SHA-256 (as sha256sum computes it) and the release URL into a copy
# of the root Package.swift, which must still parse (tree-sitter-swift).
# Run by sdk-mobile/test.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${TOKENRELAY_MOBILE_VENV:-$here/../.venv}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

fail() { echo "test-release-swift: $*" >&2; exit 1; }

if [ "$(uname -s)" != Darwin ]; then
  cp "$root/Package.swift" "$tmp/Package.swift"
  if bash "$here/release-swift.sh" --package "$tmp/Package.swift" 2>"$tmp/err"; then
    fail "built nothing on $(uname -s) yet succeeded"
  fi
  grep -q "cannot build the XCFramework here: it needs macOS" "$tmp/err" || fail "no reason given: $(cat "$tmp/err")"
  cmp -s "$root/Package.swift" "$tmp/Package.swift" || fail "Package.swift changed although nothing was built"
fi

# A dummy "xcframework" zip: any bytes do for a checksum.
mkdir -p "$tmp/TokenRelayFFI.xcframework"
echo "not a real framework $(date +%s%N)" > "$tmp/TokenRelayFFI.xcframework/Info.plist"
(cd "$tmp" && python3 -m zipfile -c TokenRelayFFI.xcframework.zip TokenRelayFFI.xcframework)
cp "$root/Package.swift" "$tmp/Package.swift"
bash "$here/release-swift.sh" --version 9.8.7 --zip "$tmp/TokenRelayFFI.xcframework.zip" \
  --package "$tmp/Package.swift" --url-base https://releases.example/tokenrelay
want="$(sha256sum "$tmp/TokenRelayFFI.xcframework.zip" | cut -d' ' -f1)"
grep -qx "let ffiChecksum = \"$want\"" "$tmp/Package.swift" || fail "checksum not written: $(grep ffiChecksum "$tmp/Package.swift")"
grep -qx 'let ffiURL = "https://releases.example/tokenrelay/v9.8.7/TokenRelayFFI.xcframework.zip"' "$tmp/Package.swift" \
  || fail "URL not written: $(grep ffiURL "$tmp/Package.swift")"
grep -q 'binaryTarget(name: "tokenrelay_mobileFFI", url: ffiURL, checksum: ffiChecksum)' "$tmp/Package.swift" \
  || fail "the binaryTarget no longer uses the constants"
[ "$(diff "$root/Package.swift" "$tmp/Package.swift" | grep -c '^>')" = 2 ] || fail "more than the two lines changed"
rm -rf "$tmp/TokenRelayFFI.xcframework" "$tmp/TokenRelayFFI.xcframework.zip"
"$venv/bin/python" "$root/sdk-mobile/swift/check_parse.py" "$tmp"
echo "release-swift.sh: refused without macOS, wrote checksum $want and the v9.8.7 URL"
