#!/usr/bin/env bash
# The source distribution, as PyPI would serve it: `maturin sdist`, then
# `pip install` of that tarball alone into a fresh venv (pip builds it in an
# isolated environment with maturin from PyPI, compiling the crate), then
# checks of the installed package: importable, `__version__`, the PyPI
# metadata (SPDX licence, licence files, project URLs) and a typed answer.
#
# Not run by CI or test.sh: it compiles the crate once more (about as long
# as test.sh's wheel build, less with a warm CARGO_TARGET_DIR). Run it
# before a release:
#
#   sdk-python/test-sdist.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n==> %s\n' "$*" >&2; }

step "tools venv"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q 'maturin>=1.7,<2'

step "sdist"
(cd "$HERE" && "$WORK/tools/bin/maturin" sdist --out "$WORK/dist" >&2)
SDIST="$(ls "$WORK"/dist/tokenrelay-*.tar.gz)"
# grep without -q: under pipefail an early exit could SIGPIPE tar.
tar -tzf "$SDIST" | grep 'LICENSE-MIT$' >/dev/null || { echo "the sdist lacks LICENSE-MIT" >&2; exit 1; }

step "pip install the sdist into a fresh venv (compiles the crate)"
"$PY" -m venv "$WORK/user"
"$WORK/user/bin/python" -m pip install -q --upgrade pip
"$WORK/user/bin/python" -m pip install -q "$SDIST"

step "the installed package"
cd "$WORK"
"$WORK/user/bin/python" - <<'PY'
import importlib.metadata as md
import tokenrelay
from tokenrelay import types

assert "site-packages" in tokenrelay.__file__, tokenrelay.__file__
meta = md.metadata("tokenrelay")
assert tokenrelay.__version__ == meta["Version"], (tokenrelay.__version__, meta["Version"])
assert meta["License-Expression"] == "MIT OR Apache-2.0", meta["License-Expression"]
assert {"LICENSE-MIT", "LICENSE-APACHE"} <= set(meta.get_all("License-File") or []), meta.get_all("License-File")
urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
assert {"Homepage", "Repository", "Issues", "Changelog"} <= urls.keys(), urls
assert "Typing :: Typed" in meta.get_all("Classifier")
# README links must work on PyPI: no relative links.
readme = str(meta.get_payload() or meta["Description"] or "")
assert "Stream AI agent replies" in readme
assert "](../" not in readme and "](./" not in readme
assert types.User._from_json({"id": "1", "username": "ada"}).username == "ada"
print(f"tokenrelay {tokenrelay.__version__} from the sdist: OK")
PY
