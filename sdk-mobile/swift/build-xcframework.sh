#!/usr/bin/env bash
# Builds build/TokenRelayFFI.xcframework on a Mac (Xcode 15+, rustup):
# the Rust library as a static library for iOS devices, the iOS simulator
# (arm64 + x86_64) and macOS (arm64 + x86_64), with the generated C header
# and module map, then regenerates the Swift bindings. Not run in this
# repository's CI (no Swift toolchain on Linux); see sdk-mobile/README.md.
#
#   sdk-mobile/swift/build-xcframework.sh
#   cd sdk-mobile/swift && swift build && swift test   # macOS slice
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh needs macOS and Xcode" >&2; exit 1; }

targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
rustup target add "${targets[@]}"

cd "$root"
for t in "${targets[@]}"; do
  # A staticlib only here: ordinary builds of the crate skip archiving one.
  cargo rustc --release -p tokenrelay-mobile --lib --target "$t" --crate-type staticlib
done

# The bindgen (the crate uniffi-bindgen/) runs on the host (dev profile)
# and reads the metadata of an unstripped library.
cargo build -p tokenrelay-uniffi-bindgen
bash "$here/generate.sh" "$target/debug/uniffi-bindgen" "$target/aarch64-apple-darwin/release/libtokenrelay_mobile.a"

fat="$here/build/fat"
rm -rf "$fat" "$here/build/TokenRelayFFI.xcframework"
mkdir -p "$fat/ios-sim" "$fat/macos"
lipo -create "$target/aarch64-apple-ios-sim/release/libtokenrelay_mobile.a" \
  "$target/x86_64-apple-ios/release/libtokenrelay_mobile.a" -output "$fat/ios-sim/libtokenrelay_mobile.a"
lipo -create "$target/aarch64-apple-darwin/release/libtokenrelay_mobile.a" \
  "$target/x86_64-apple-darwin/release/libtokenrelay_mobile.a" -output "$fat/macos/libtokenrelay_mobile.a"

xcodebuild -create-xcframework \
  -library "$target/aarch64-apple-ios/release/libtokenrelay_mobile.a" -headers "$here/build/ffi" \
  -library "$fat/ios-sim/libtokenrelay_mobile.a" -headers "$here/build/ffi" \
  -library "$fat/macos/libtokenrelay_mobile.a" -headers "$here/build/ffi" \
  -output "$here/build/TokenRelayFFI.xcframework"
echo "built $here/build/TokenRelayFFI.xcframework"
