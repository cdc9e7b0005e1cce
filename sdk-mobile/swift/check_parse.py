"""Parses every .swift file under the given directories with
tree-sitter-swift and fails on any syntax error.

The grammar (0.7.4) does not understand conditional-compilation blocks that
wrap attributes, which uniffi's generated code uses
(`#if swift(>=5.8)` / `@_documentation(visibility: private)` / `#endif`), so
`#if swift(>=N)` blocks are resolved first as a Swift >= 5.8 compiler would
(keep the `#if` branch, drop an `#else` branch). It also misreads a
closure returning the empty tuple, `{ () }`, which uniffi writes for a
callback method without a return value (the `Logger`); such a closure is
read as the equivalent `{ Void() }`. Line numbers are kept so errors point
at the real file.

    python check_parse.py DIR_OR_FILE [DIR_OR_FILE ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tree_sitter_swift
from tree_sitter import Language, Parser

SWIFT_IF = re.compile(r"^\s*#if\s+swift\(>=\s*([0-9.]+)\)\s*$")
ASSUMED = (5, 8)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def resolve(source: str) -> str:
    """Blanks out the lines a Swift >= 5.8 compiler would not see, and
    spells `{ () }` as `{ Void() }`."""
    source = source.replace("{ () }", "{ Void() }")
    out = []
    # Stack of (is_swift_block, keeping) for every open #if.
    stack: list[tuple[bool, bool]] = []
    for line in source.split("\n"):
        stripped = line.strip()
        keep_now = all(k for _, k in stack)
        m = SWIFT_IF.match(line)
        if m:
            stack.append((True, version(m.group(1)) <= ASSUMED))
            out.append("")
            continue
        if stripped.startswith("#if"):
            stack.append((False, True))
            out.append(line if keep_now else "")
            continue
        if stack and stack[-1][0] and stripped.startswith(("#else", "#elseif")):
            stack[-1] = (True, not stack[-1][1])
            out.append("")
            continue
        if stripped.startswith("#endif") and stack:
            swift_block, _ = stack.pop()
            out.append("" if swift_block else (line if keep_now else ""))
            continue
        out.append(line if keep_now else "")
    return "\n".join(out)


def errors(node, found):
    if node.type == "ERROR" or node.is_missing:
        found.append(node)
    for child in node.children:
        errors(child, found)
    return found


def main() -> int:
    parser = Parser(Language(tree_sitter_swift.language()))
    paths = [Path(a) for a in sys.argv[1:]]
    files = sorted(
        p for d in paths for p in (d.rglob("*.swift") if d.is_dir() else [d]) if ".build" not in p.parts
    )
    failed = 0
    for path in files:
        tree = parser.parse(resolve(path.read_text()).encode())
        bad = errors(tree.root_node, [])
        if bad:
            failed += 1
            for node in bad[:5]:
                row, col = node.start_point
                print(f"{path}:{row + 1}:{col + 1}: syntax error ({node.type})")
        else:
            print(f"parsed {path} ({len(path.read_text().splitlines())} lines)")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
