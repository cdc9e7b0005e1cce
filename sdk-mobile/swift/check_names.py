"""Checks that the hand-written Swift and the uniffi-generated Swift agree
on the names they share, since no Swift compiler runs here to do it.

With tree-sitter-swift, it collects the types the generated files declare
(classes, structs, enums, protocols, typealiases) and every enum's cases,
then fails on:

* a type the hand-written code references (a type annotation, an
  inheritance clause, a constructor call, `Type.member`) that is declared
  neither in the generated files, nor in the hand-written files, nor in the
  short list of Swift, Foundation, XCTest and SwiftUI names below;
* a hand-written declaration of a name the generated code declares too
  (two declarations of one type in one module do not compile);
* `Enum.case` of a generated enum (in code, in a `catch` or `case`
  pattern, or in the documentation: comments and README text) whose case
  does not exist, e.g. `TokenRelayError.Forbidden` where the generated
  code (after swift/lower_error_cases.py) has `TokenRelayError.forbidden`.

    python check_names.py GENERATED_DIR HANDWRITTEN_FILE_OR_DIR... [--docs FILE...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tree_sitter_swift
from tree_sitter import Language, Parser

from check_parse import resolve

# Types from Swift, Foundation, XCTest and SwiftUI that the hand-written
# files use. A name missing here and from the generated code fails the check:
# add it here only if Apple's SDK declares it.
PLATFORM = {
    # Swift standard library
    "Any", "AnyObject", "Array", "AsyncIteratorProtocol", "AsyncSequence", "AsyncStream",
    "Bool", "Character", "Dictionary", "Double", "Equatable", "Error", "Float", "Hashable",
    "Int", "Int16", "Int32", "Int64", "Mirror", "Never", "Optional", "Result", "Self",
    "Sendable", "Set", "String", "Substring", "Task", "UInt", "UInt16", "UInt32", "UInt64",
    "UInt8", "Void", "CancellationError", "MainActor", "CheckedContinuation",
    # Foundation
    "Data", "Date", "Duration", "JSONDecoder", "JSONEncoder", "JSONSerialization", "NSError",
    "NSLock", "ProcessInfo", "URL", "URLRequest", "URLSession", "UUID", "HTTPURLResponse",
    # XCTest
    "XCTestCase", "XCTestExpectation",
    # SwiftUI and Combine
    "App", "Binding", "Button", "Color", "ForEach", "HStack", "List", "ObservableObject",
    "ObservedObject", "Published", "ScenePhase", "ScrollView", "Spacer", "State",
    "StateObject", "Text", "TextField", "VStack", "View", "WindowGroup", "Environment",
    "EnvironmentObject", "Scene", "ProgressView", "Section", "Form", "Label", "Image",
    "NavigationStack", "NavigationView", "ScrollViewReader",
    # Network
    "NWPathMonitor",
    # XCTest's assertion functions (called like constructors)
    "XCTAssert", "XCTAssertEqual", "XCTAssertNil", "XCTAssertNotNil", "XCTAssertThrowsError",
    "XCTAssertTrue", "XCTAssertFalse", "XCTFail", "XCTSkip", "XCTUnwrap",
}

# Words the grammar can read as a type name inside attributes and function
# types (`@unchecked Sendable`, `async throws ->`): never types.
NOT_TYPES = {"async", "throws", "rethrows", "some", "any", "unchecked", "escaping", "Sendable"}

PARSER = Parser(Language(tree_sitter_swift.language()))


def parse(path: Path):
    return PARSER.parse(resolve(path.read_text()).encode()).root_node


def text(node) -> str:
    return node.text.decode()


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def declarations(root) -> tuple[set[str], dict[str, set[str]]]:
    """The types a file declares, and the cases of each enum it declares."""
    types: set[str] = set()
    cases: dict[str, set[str]] = {}
    for node in walk(root):
        if node.type in ("class_declaration", "protocol_declaration", "typealias_declaration"):
            # `extension X` has a user_type, not a type_identifier: not a declaration.
            name = next((c for c in node.children if c.type == "type_identifier"), None)
            if name is None:
                continue
            types.add(text(name))
            body = next((c for c in node.children if c.type == "enum_class_body"), None)
            if body is not None:
                entries = cases.setdefault(text(name), set())
                for entry in body.children:
                    if entry.type == "enum_entry":
                        # A keyword declared as a case is quoted: `protocol`.
                        entries.update(text(c).strip("`") for c in entry.children if c.type == "simple_identifier")
    return types, cases


def references(root) -> list[tuple[str, int, str | None]]:
    """(type, line, member) for each type named in the file's code."""
    found = []
    for node in walk(root):
        line = node.start_point[0] + 1
        if node.type == "user_type" and node.parent is not None and node.parent.type == "attribute":
            continue  # `@discardableResult`, `@testable`: attributes, not types
        if node.type == "user_type":
            # `A.B` as a type is user_type(A . B): the first part is the type.
            first = next(c for c in node.children if c.type == "type_identifier")
            parts = [text(c) for c in node.children if c.type in ("type_identifier", "simple_identifier")]
            found.append((text(first), line, parts[1] if len(parts) > 1 else None))
        elif node.type in ("pattern", "guard_statement", "if_statement", "while_statement"):
            # `catch Enum.Case(...)`, `guard case Enum.Case = e`, `if case
            # let Enum.Case(x) = e`: a user_type, ".", a simple_identifier,
            # side by side.
            kids = node.children
            for i in range(len(kids) - 2):
                if kids[i].type == "user_type" and kids[i + 1].type == "." and kids[i + 2].type == "simple_identifier":
                    found.append((text(kids[i].children[0]), kids[i].start_point[0] + 1, text(kids[i + 2])))
        elif node.type == "navigation_expression":
            head, suffix = node.children[0], node.children[-1]
            if head.type == "simple_identifier" and text(head)[:1].isupper():
                member = next((c for c in suffix.children if c.type == "simple_identifier"), None)
                found.append((text(head), line, text(member) if member else None))
        elif node.type == "call_expression":
            callee = node.children[0]
            if callee.type == "simple_identifier" and text(callee)[:1].isupper():
                found.append((text(callee), line, None))
    return found


DOC_REFERENCE = re.compile(r"\b([A-Z][A-Za-z0-9]*)\.([A-Za-z][A-Za-z0-9]*)\b")


def main(argv: list[str]) -> int:
    docs: list[Path] = []
    if "--docs" in argv:
        i = argv.index("--docs")
        docs = [Path(p) for p in argv[i + 1 :]]
        argv = argv[:i]
    generated_dir, handwritten = Path(argv[0]), [Path(p) for p in argv[1:]]

    gen_types: set[str] = set()
    gen_cases: dict[str, set[str]] = {}
    for path in sorted(generated_dir.rglob("*.swift")):
        types, cases = declarations(parse(path))
        gen_types |= types
        gen_cases.update(cases)
    if not gen_types:
        print(f"no generated declarations under {generated_dir}: run sdk-mobile/build.sh first")
        return 1

    files = sorted(
        f
        for p in handwritten
        for f in ([p] if p.is_file() else p.rglob("*.swift"))
        if generated_dir not in f.parents and ".build" not in f.parts
    )
    own: set[str] = set()
    parsed = {}
    for path in files:
        parsed[path] = parse(path)
        types, _ = declarations(parsed[path])
        own |= types

    problems: list[str] = []
    for path in files:
        types, _ = declarations(parsed[path])
        for clash in sorted(types & gen_types):
            problems.append(f"{path}: declares {clash}, which the generated code declares too")
        shared = 0
        for name, line, member in references(parsed[path]):
            if name in gen_types:
                shared += 1
                if member and name in gen_cases and member not in gen_cases[name] and member not in ("allCases", "init", "self"):
                    problems.append(f"{path}:{line}: {name}.{member}: the generated {name} has no case {member} "
                                    f"(its cases: {', '.join(sorted(gen_cases[name]))})")
            elif name not in own and name not in PLATFORM and name not in NOT_TYPES:
                problems.append(f"{path}:{line}: {name} is declared neither in the generated code nor by hand")
        print(f"checked {path}: {shared} references to generated types")

    # Documentation (comments of the hand-written files, READMEs): every
    # `Enum.case` of a generated enum must name a case it has.
    for path in files + docs:
        heading, fence = "", ""
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if path.suffix == ".swift" and "//" not in line:
                continue
            if path.suffix == ".md":
                # Only what is about Swift: a section whose heading says
                # Swift, or a ```swift block (the Kotlin sections name
                # Kotlin's classes, `Event.Token`, with the same names).
                if line.startswith("```"):
                    fence = "" if fence else line[3:].strip()
                    continue
                if line.startswith("#") and not fence:
                    heading = line
                    continue
                if not (fence == "swift" or ("Swift" in heading and fence in ("", "swift"))):
                    continue
            for name, member in DOC_REFERENCE.findall(line):
                if name in gen_cases and member not in gen_cases[name] and not member.startswith("self"):
                    problems.append(f"{path}:{lineno}: the documentation says {name}.{member}; "
                                    f"the generated {name} has no such case")

    for p in problems:
        print(p)
    print(f"{len(gen_types)} generated types, {len(files)} hand-written files, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
