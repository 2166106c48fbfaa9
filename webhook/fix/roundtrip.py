"""Round-trip YAML that changes only what a fix changes.

`ruamel.yaml` keeps comments, key order, quoting and flow styles, but it still
normalises some spelling when it writes a document again (two spaces after a colon, the
indentation of one odd block). So the file is never written from the re-serialised text
alone: `carry_over` compares the re-serialisation of the document *before* the fix with
the one *after* it, and applies only that difference to the original text. Lines the
fix did not touch stay byte for byte as the author wrote them.
"""

from __future__ import annotations

import io
import itertools
import re
from collections import Counter
from collections.abc import Iterable
from difflib import SequenceMatcher
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.scalarstring import LiteralScalarString

_KEY_WITH_BLOCK = re.compile(r"^(\s*)(?:- )?[^\s#][^:#]*:\s*(?:#.*)?$")
_INDENTED = re.compile(r"^(\s*)(- )?\S")
_BLOCK_SCALAR = re.compile(r"(?:^|[:\-]\s)\s*[|>][-+0-9]*\s*(?:#.*)?$")


def _structure_lines(text: str) -> list[str]:
    """The lines that are YAML structure: no blank or comment line, and nothing inside
    a block scalar (a plugin's script in `args` has lines that look like keys)."""
    kept: list[str] = []
    scalar_indent: int | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if scalar_indent is not None:
            if indent > scalar_indent:
                continue
            scalar_indent = None
        if line.lstrip().startswith("#"):
            continue
        kept.append(line)
        if _BLOCK_SCALAR.search(line):
            scalar_indent = indent
    return kept


def guess_indent(text: str) -> tuple[int, int]:
    """(mapping indent, offset of `- ` under its key) most used in `text`."""
    mapping: Counter[int] = Counter()
    offsets: Counter[int] = Counter()
    lines = _structure_lines(text)
    for previous, line in itertools.pairwise(lines):
        parent = _KEY_WITH_BLOCK.match(previous)
        child = _INDENTED.match(line)
        if parent is None or child is None:
            continue
        parent_indent = len(parent.group(1)) + (2 if previous.lstrip().startswith("- ") else 0)
        step = len(child.group(1)) - parent_indent
        if child.group(2):
            offsets[step] += 1
        elif step > 0:
            mapping[step] += 1
    indent = mapping.most_common(1)[0][0] if mapping else 2
    offset = offsets.most_common(1)[0][0] if offsets else 0
    return indent, max(offset, 0)


def round_trip_yaml(text: str) -> YAML:
    """A ruamel instance that writes new lines in the style `text` already uses."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never re-wrap a long line
    indent, offset = guess_indent(text)
    yaml.indent(mapping=indent, sequence=indent + offset, offset=offset)
    return yaml


def load_all(yaml: YAML, text: str) -> list[Any]:
    return list(yaml.load_all(text))


def dump_all(yaml: YAML, documents: Iterable[Any], explicit_start: bool) -> str:
    stream = io.StringIO()
    yaml.explicit_start = explicit_start
    yaml.dump_all(list(documents), stream)
    return stream.getvalue()


def dump(yaml: YAML, document: Any) -> str:
    stream = io.StringIO()
    yaml.dump(document, stream)
    return stream.getvalue()


def carry_over(original: str, before: str, after: str) -> str:
    """`original` with the changes that turn `before` into `after` (both written by the
    same ruamel instance, `before` from the unmodified parse of `original`)."""
    if before == after:
        return original
    unterminated = not original.endswith("\n")
    source = (original + "\n" if unterminated else original).splitlines(keepends=True)
    old = before.splitlines(keepends=True)
    new = after.splitlines(keepends=True)
    if len(source) != len(old):
        # The re-serialisation changed the line structure itself: no line-for-line
        # correspondence to lean on, so the whole re-serialised text is the answer.
        return after
    out: list[str] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        out.extend(source[i1:i2] if tag == "equal" else new[j1:j2])
    result = "".join(out)
    return result[:-1] if unterminated and result.endswith("\n") else result


def literal(text: str) -> LiteralScalarString:
    """A block scalar (`|`), as plugin ConfigMaps write `sidecar.container`."""
    block: LiteralScalarString = LiteralScalarString(text)
    return block


def ensure_map(parent: Any, key: str) -> Any:
    """`parent[key]` as a mapping, created (at the end) when it is missing or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = CommentedMap()
        parent[key] = value
    return value
