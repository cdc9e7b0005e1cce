#!/usr/bin/env bash
# Prepares a release of the Swift package consumable by URL (the root
# Package.swift): builds TokenRelayFFI.xcframework and zips it (macOS with
# Xcode only), computes the zip's SwiftPM checksum, and writes the zip's
# download URL and that checksum into Package.swift.
#
#   sdk-mobile/scripts/release-swift.sh [--version V] [--zip FILE] [--package FILE] [--url-base URL]
#
#   --version   the release (default: the workspace version in Cargo.toml)
#   --zip       an XCFramework zip already built (say, by a macOS CI job);
#               without it the script builds one, which needs macOS
#   --package   the Package.swift to write (default: the repository root's)
#   --url-base  where release assets are downloaded from (default: the
#               workspace `repository` + /releases/download); the URL is
#               URL_BASE/vVERSION/TokenRelayFFI.xcframework.zip
#
# The checksum is what `swift package compute-checksum` prints: the SHA-256
# of the zip. Without a Swift toolchain it is computed with `shasum -a 256`
# or `sha256sum`, which give the same digest. Then, by hand: upload the zip
# to the URL, commit Package.swift together with the generated Swift
# sources (`git add -f sdk-mobile/swift/Sources/TokenRelay/Generated`, they
# are ignored otherwise), and tag vVERSION.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
swift_dir="$root/sdk-mobile/swift"

version="" zip="" package="$root/Package.swift" url_base=""
while [ $# -gt 0 ]; do
  case "$1" in
    --version) version="$2"; shift 2 ;;
    --zip) zip="$2"; shift 2 ;;
    --package) package="$2"; shift 2 ;;
    --url-base) url_base="$2"; shift 2 ;;
    *) echo "release-swift.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
workspace_field() { sed -n "/^\[workspace.package\]/,/^\[/s/^$1 *= *\"\(.*\)\"/\1/p" "$root/Cargo.toml"; }
[ -n "$version" ] || version="$(workspace_field version)"
[ -n "$url_base" ] || url_base="$(workspace_field repository)/releases/download"
[ -f "$package" ] || { echo "release-swift.sh: no $package" >&2; exit 1; }

if [ -z "$zip" ]; then
  if [ "$(uname -s)" != Darwin ] || ! command -v xcodebuild >/dev/null; then
    echo "release-swift.sh: cannot build the XCFramework here: it needs macOS with Xcode (lipo, xcodebuild -create-xcframework)." >&2
    echo "Build it on a Mac (or a macOS CI job) with this script, or pass the zip built there with --zip FILE." >&2
    exit 1
  fi
  bash "$swift_dir/build-xcframework.sh"
  zip="$swift_dir/build/TokenRelayFFI.xcframework.zip"
  rm -f "$zip"
  # ditto keeps the framework's symlinks and layout as SwiftPM expects.
  (cd "$swift_dir/build" && ditto -c -k --sequesterRsrc --keepParent TokenRelayFFI.xcframework "$zip")
fi
[ -f "$zip" ] || { echo "release-swift.sh: no zip at $zip" >&2; exit 1; }

if command -v swift >/dev/null && swift package compute-checksum --help >/dev/null 2>&1; then
  checksum="$(swift package compute-checksum "$zip")"
elif command -v shasum >/dev/null; then
  checksum="$(shasum -a 256 "$zip" | cut -d' ' -f1)"
else
  checksum="$(sha256sum "$zip" | cut -d' ' -f1)"
fi
[[ "$checksum" =~ ^[0-9a-f]{64}$ ]] || { echo "release-swift.sh: bad checksum '$checksum'" >&2; exit 1; }
url="$url_base/v$version/TokenRelayFFI.xcframework.zip"

# Rewrite the two constants in place; fail if either is missing.
grep -q '^let ffiURL = "' "$package" && grep -q '^let ffiChecksum = "' "$package" || {
  echo "release-swift.sh: $package has no 'let ffiURL = \"…\"' / 'let ffiChecksum = \"…\"' lines" >&2
  exit 1
}
tmp="$(mktemp)"
sed -e "s|^let ffiURL = \".*\"|let ffiURL = \"$url\"|" \
    -e "s|^let ffiChecksum = \".*\"|let ffiChecksum = \"$checksum\"|" "$package" > "$tmp"
cat "$tmp" > "$package"
rm -f "$tmp"
echo "wrote $package:"
echo "  url      $url"
echo "  checksum $checksum"
echo "next: upload $zip to that URL; commit Package.swift and (git add -f) sdk-mobile/swift/Sources/TokenRelay/Generated; tag v$version"
