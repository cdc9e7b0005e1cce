#!/usr/bin/env bash
# Generates the Swift side of the bindings from a built library:
#   Sources/TokenRelay/Generated/TokenRelay.swift   (module TokenRelay)
#   build/ffi/tokenrelay_mobileFFI.h + module.modulemap     (the C module)
# Usage: swift/generate.sh UNIFFI_BINDGEN LIBRARY
# (sdk-mobile/test.sh and build-xcframework.sh call it.)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bindgen="$1"
lib="$2"
out="$here/build/ffi"
rm -rf "$out" "$here/Sources/TokenRelay/Generated"
mkdir -p "$out" "$here/Sources/TokenRelay/Generated"
# Library mode reads the crate's uniffi.toml through cargo metadata, so run
# it from the workspace.
(cd "$here/../.." && "$bindgen" generate --library "$lib" --language swift --out-dir "$out" --no-format)
mv "$out/TokenRelay.swift" "$here/Sources/TokenRelay/Generated/"
# An xcframework wants the module map named module.modulemap.
mv "$out/tokenrelay_mobileFFI.modulemap" "$out/module.modulemap"
ls "$out" "$here/Sources/TokenRelay/Generated"
