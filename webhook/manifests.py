"""Load Kubernetes manifests: files, folders, stdin; YAML (multi-document) or JSON.

Every problem that makes a file unreadable is a `ManifestError` naming the file and
line. A document that parses but is not a mapping is an error too (Kubernetes would
refuse it), while empty documents (`---` separators, comments) are skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook.errors import ManifestError
from webhook.jsontypes import type_word

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"

_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class ManifestLoader(yaml.CSafeLoader):
    """libyaml's safe loader (about 10x faster than the pure-Python one), with
    timestamps left as strings: Kubernetes objects are JSON, where a date is a string,
    and a datetime would not survive JSON encoding."""


ManifestLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str) -> Any:
    """Parse one YAML document with the manifest loader (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=ManifestLoader)


@dataclass(frozen=True, slots=True)
class Document:
    """One Kubernetes object: where it came from and what it is."""

    source: str
    index: int
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        kind = self.obj.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def name(self) -> str:
        return object_name(self.obj)

    @property
    def namespace(self) -> str | None:
        return object_namespace(self.obj)


def object_name(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        name = metadata.get("name") or metadata.get("generateName")
        if isinstance(name, str):
            return name
    return ""


def object_namespace(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        namespace = metadata.get("namespace")
        if isinstance(namespace, str) and namespace:
            return namespace
    return None


def expand_paths(paths: Iterable[str]) -> list[str]:
    """Files as given; folders searched recursively for manifest files, sorted."""
    out: list[str] = []
    for raw in paths:
        if raw == STDIN:
            out.append(STDIN)
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in MANIFEST_SUFFIXES
                and not _hidden_below(p, path)
            )
            out.extend(str(p) for p in found)
        elif path.exists():
            out.append(str(path))
        else:
            raise ManifestError(raw, "no such file or directory")
    return out


def _hidden_below(path: Path, root: Path) -> bool:
    """Skip dot-folders and dot-files below a folder given on the command line: a
    mounted ConfigMap keeps every file twice, as a top-level symlink and inside the
    kubelet's `..<timestamp>/` folder (and `.git/` holds no manifests either)."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def read_source(source: str) -> str:
    if source == STDIN:
        return sys.stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestError(source, f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ManifestError(source, exc.strerror or str(exc)) from None


def parse_documents(text: str, source: str) -> list[dict[str, Any]]:
    """All objects in one file, with `List` kinds flattened into their items."""
    raw_docs: list[tuple[Any, int | None]] = []
    if source.lower().endswith(".json"):
        try:
            raw_docs.append((json.loads(text), 1))
        except json.JSONDecodeError as exc:
            raise ManifestError(source, f"invalid JSON: {exc.msg}", exc.lineno) from None
    else:
        raw_docs.extend(_load_yaml_stream(text, source))
    objects: list[dict[str, Any]] = []
    for value, line in raw_docs:
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ManifestError(
                source,
                f"document is a {type_word(value, yaml_words=True)}, not a mapping (a Kubernetes object)",
                line,
            )
        objects.extend(_flatten_lists(value, source, line))
    return objects


def _load_yaml_stream(text: str, source: str) -> Iterator[tuple[Any, int | None]]:
    loader = ManifestLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            line = node.start_mark.line + 1 if node is not None else None
            yield loader.construct_document(node), line
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(source, f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ManifestError(source, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def _flatten_lists(obj: dict[str, Any], source: str, line: int | None) -> list[dict[str, Any]]:
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in obj:
        items = obj.get("items") or []
        if not isinstance(items, list):
            raise ManifestError(source, f"{kind}.items is not a list", line)
        out: list[dict[str, Any]] = []
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise ManifestError(
                    source,
                    f"{kind}.items[{position}] is a {type_word(item, yaml_words=True)}, not a mapping",
                    line,
                )
            out.extend(_flatten_lists(item, source, line))
        return out
    return [obj]


def load_documents(paths: Iterable[str]) -> list[Document]:
    """Every object in every file (folders expanded), in order."""
    documents: list[Document] = []
    for source in expand_paths(paths):
        text = read_source(source)
        for index, obj in enumerate(parse_documents(text, source)):
            documents.append(Document(source, index, obj))
    return documents
