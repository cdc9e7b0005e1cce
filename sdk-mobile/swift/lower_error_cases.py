"""Renames the cases of uniffi's generated Swift error enums to
lowerCamelCase, as Swift's API guidelines (and Swift's own errors, e.g.
`EncodingError.invalidValue`) name enum cases.

uniffi 0.32 names an error enum's cases in UpperCamelCase
(`TokenRelayError.Forbidden`) while it names every other enum's cases in
lowerCamelCase (`ConnectionState.connected`); mozilla/uniffi-rs#2262 is
open, and its fix (#2351) unmerged. Until it lands, generate.sh runs this
over the generated file. The rename touches exactly two places per error
enum `E`, both written by uniffi's templates in a fixed shape:

* the cases of `enum E: Swift.Error` (`case Forbidden(` becomes
  ``case forbidden(``; a Swift keyword is quoted: ``case `protocol`(``);
* `FfiConverterTypeE`, whose `read` builds them (`return .Forbidden(`) and
  whose `write` matches them (`case let .Forbidden(`).

It then fails if any `.Case` of the old names is left anywhere in the file,
so a template change in a later uniffi cannot slip a half-renamed file
through (no Swift compiler runs here to catch it).

    python lower_error_cases.py GENERATED.swift...
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# Swift keywords that need backticks as a declared case name (after a dot
# they may stand bare, SE-0071).
KEYWORDS = {
    "associatedtype", "class", "deinit", "enum", "extension", "fileprivate", "func", "import",
    "init", "inout", "internal", "let", "open", "operator", "private", "precedencegroup",
    "protocol", "public", "rethrows", "static", "struct", "subscript", "typealias", "var",
    "break", "case", "catch", "continue", "default", "defer", "do", "else", "fallthrough",
    "for", "guard", "if", "in", "repeat", "return", "throw", "switch", "where", "while",
    "as", "false", "is", "nil", "self", "super", "throws", "true", "try",
}

ERROR_ENUM = re.compile(r"^enum (\w+): Swift\.Error\b.*\{$", re.M)
CASE = re.compile(r"^(\s*case )([A-Z]\w*)\b", re.M)


def lower_camel(name: str) -> str:
    """`NotFound` -> `notFound`; a leading acronym as a whole: `URLInvalid` -> `urlInvalid`."""
    upper = len(name) - len(name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    if upper > 1 and upper < len(name):
        upper -= 1  # `URLInvalid`: the `I` starts the next word
    return name[:upper].lower() + name[upper:]


def block(text: str, start: int) -> tuple[int, int]:
    """The span from `start` to the end of the line `}` that closes a
    top-level declaration (uniffi writes them unindented)."""
    end = text.find("\n}\n", start)
    if end < 0:
        raise SystemExit(f"lower_error_cases: no end of the declaration at offset {start}")
    return start, end + 3


def rename(text: str) -> tuple[str, dict[str, dict[str, str]]]:
    renamed: dict[str, dict[str, str]] = {}
    for match in list(ERROR_ENUM.finditer(text)):
        enum = match.group(1)
        start, end = block(text, match.start())
        body = text[start:end]
        names = {old: lower_camel(old) for _, old in CASE.findall(body)}
        if not names:
            raise SystemExit(f"lower_error_cases: {enum} has no UpperCamelCase case (already renamed?)")

        def declared(m: re.Match[str]) -> str:
            new = names[m.group(2)]
            return m.group(1) + (f"`{new}`" if new in KEYWORDS else new)

        text = text[:start] + CASE.sub(declared, body) + text[end:]

        converter = re.search(rf"^public struct FfiConverterType{enum}: FfiConverterRustBuffer \{{$", text, re.M)
        if converter is None:
            raise SystemExit(f"lower_error_cases: no FfiConverterType{enum}")
        start, end = block(text, converter.start())
        member = re.compile(r"\.(" + "|".join(map(re.escape, names)) + r")\b")
        body, count = member.subn(lambda m: "." + names[m.group(1)], text[start:end])
        # `read` builds every case and `write` matches every case.
        if count != 2 * len(names):
            raise SystemExit(f"lower_error_cases: FfiConverterType{enum}: {count} uses of {len(names)} cases, expected {2 * len(names)}")
        text = text[:start] + body + text[end:]

        # Code only: the docs uniffi copies from Rust may name Kotlin's
        # classes (`TokenRelayException.Forbidden`), which keep their names.
        old = re.compile(r"\.(?:" + "|".join(map(re.escape, names)) + r")\b")
        left = [
            hit
            for line in text.splitlines()
            if not line.lstrip().startswith(("*", "/*", "//"))
            for hit in old.findall(line)
        ]
        if left:
            raise SystemExit(f"lower_error_cases: {enum}: still used by the old names: {sorted(set(left))}")
        renamed[enum] = names
    return text, renamed


def main(argv: list[str]) -> int:
    for path in map(Path, argv):
        text, renamed = rename(path.read_text())
        path.write_text(text)
        for enum, names in renamed.items():
            print(f"{path.name}: {enum}: {len(names)} cases in lowerCamelCase ({', '.join(names.values())})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
