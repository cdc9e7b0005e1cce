#!/usr/bin/env bash
# Generates the Swift side of the bindings from a built library:
#   Sources/TokenRelay/Generated/TokenRelay.swift       the mobile crate's types
#   Sources/TokenRelay/Generated/TokenRelayCore.swift   the core's (its `uniffi`
#                                                       feature), same module
#   build/ffi/tokenrelay_mobileFFI.h, tokenrelayFFI.h   their C declarations
#   build/ffi/module.modulemap                          one C module over both
# then renames the generated error enum's cases to lowerCamelCase
# (lower_error_cases.py).
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
mv "$out/TokenRelay.swift" "$out/TokenRelayCore.swift" "$here/Sources/TokenRelay/Generated/"
# Error enum cases in lowerCamelCase, as for every other enum (uniffi
# writes `.Forbidden`; mozilla/uniffi-rs#2262): see the script.
python3 "$here/lower_error_cases.py" "$here/Sources/TokenRelay/Generated/TokenRelay.swift"
# Both generated files import the one C module `tokenrelay_mobileFFI`
# (sdk-core/uniffi.toml names it for the core): its module map lists both
# headers. An xcframework wants it named module.modulemap.
modulemap="$out/tokenrelay_mobileFFI.modulemap"
[ -f "$modulemap" ] || { echo "generate.sh: uniffi wrote no $modulemap" >&2; exit 1; }
headers="$(cd "$out" && ls *.h)"
awk -v headers="$headers" '
  /^ *header "/ { if (!done) { n = split(headers, h, "\n"); for (i = 1; i <= n; i++) printf "    header \"%s\"\n", h[i]; done = 1 } next }
  { print }
' "$modulemap" > "$out/module.modulemap"
rm "$modulemap"
cat "$out/module.modulemap"
ls "$out" "$here/Sources/TokenRelay/Generated"
