#!/usr/bin/env bash
# The SDK's wheels for the Linux platforms it ships to, built on this
# x86_64 machine (maturin --zig: zig as the cross C compiler and linker,
# from the `ziglang` package on PyPI):
#   manylinux2014 aarch64 (ARM servers, Graviton)   --target aarch64-unknown-linux-gnu
#   musllinux_1_2 x86_64 (Alpine)                    --target x86_64-unknown-linux-musl
# The manylinux x86_64 wheel is test.sh's own build (the one its suite runs).
# Neither cross-built wheel can be run here (no aarch64 or musl Python), so
# each is inspected instead: its platform tag, the machine its extension is
# built for, and for musl that nothing in it refers to glibc. Exits non-zero
# on any failure.
#
#   sdk-python/build-wheels.sh [OUT_DIR]   # default: target/wheels/cross
#   TOKENRELAY_PY_VENV=/tmp/v sdk-python/build-wheels.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
VENV="${TOKENRELAY_PY_VENV:-$HERE/.venv}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OUT="${1:-$TARGET/wheels/cross}"

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools: maturin, ziglang; rust targets"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q 'maturin>=1.7,<2' ziglang
rustup target add aarch64-unknown-linux-gnu x86_64-unknown-linux-musl >&2

rm -rf "$OUT"
for target in aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; do
    step "wheel for $target (maturin --zig, release)"
    # maturin finds zig through the venv's `python -m ziglang`.
    (cd "$HERE" && PATH="$VENV/bin:$PATH" "$VENV/bin/maturin" build ${CI:+--locked} \
        --release --quiet --zig --target "$target" --out "$OUT" >&2)
done

step "inspect the wheels"
"$VENV/bin/python" - "$OUT" <<'PY'
import pathlib, struct, sys, zipfile

# e_machine values (ELF): what the extension runs on.
MACHINES = {0x3E: "x86_64", 0xB7: "aarch64"}
EXPECTED = {
    "manylinux2014_aarch64": ("aarch64", "glibc"),
    "musllinux_1_2_x86_64": ("x86_64", "musl"),
}
out = pathlib.Path(sys.argv[1])
found = {}
for wheel in sorted(out.glob("tokenrelay-*.whl")):
    tag = next((t for t in EXPECTED if t in wheel.name), None)
    if tag is None:
        sys.exit(f"unexpected wheel {wheel.name}")
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.startswith("tokenrelay/_native") and n.endswith(".so")]
        if len(names) != 1:
            sys.exit(f"{wheel.name}: expected one extension module, found {names}")
        so = z.read(names[0])
        if not any(n.endswith(".dist-info/licenses/LICENSE-MIT") or n.endswith("LICENSE-MIT") for n in z.namelist()):
            sys.exit(f"{wheel.name}: no LICENSE-MIT")
    if so[:4] != b"\x7fELF":
        sys.exit(f"{wheel.name}: {names[0]} is not an ELF object")
    machine = MACHINES.get(struct.unpack_from("<H", so, 18)[0], "other")
    libc = "glibc" if b"GLIBC_" in so else "musl"
    want = EXPECTED[tag]
    if (machine, libc) != want:
        sys.exit(f"{wheel.name}: built for {machine}/{libc}, the tag says {want[0]}/{want[1]}")
    found[tag] = wheel.name
    print(f"ok  {wheel.name}: {machine}, {libc}, {len(so) // 1024} KiB extension")
missing = set(EXPECTED) - set(found)
if missing:
    sys.exit(f"missing wheels: {sorted(missing)}")
PY
