"""Manifest loading: files, folders, stdin, multi-document YAML, JSON, List kinds."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from webhook.errors import ManifestError
from webhook.manifests import expand_paths, load_documents, parse_documents


def test_multi_document_yaml_skips_empty_documents() -> None:
    text = "---\n# comment only\n---\nkind: A\n---\n\n---\nkind: B\n"
    assert [d["kind"] for d in parse_documents(text, "x.yaml")] == ["A", "B"]


def test_list_kinds_are_flattened() -> None:
    text = "kind: List\nitems:\n- kind: A\n- kind: ConfigMapList\n  items:\n  - kind: B\n"
    assert [d["kind"] for d in parse_documents(text, "x.yaml")] == ["A", "B"]


def test_json_file_errors_carry_the_line() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_documents('{\n  "kind": "A",\n  oops\n}', "x.json")
    assert caught.value.line == 3
    assert str(caught.value).startswith("x.json:3: invalid JSON")


def test_yaml_error_carries_the_line() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_documents("kind: A\n---\nkind: [B\n", "x.yaml")
    assert caught.value.line is not None and caught.value.line >= 3


@pytest.mark.parametrize("text", ["just a string\n", "- a\n- b\n", "42\n"])
def test_non_mapping_documents_are_errors(text: str) -> None:
    with pytest.raises(ManifestError, match="not a mapping"):
        parse_documents(text, "x.yaml")


def test_timestamps_stay_strings() -> None:
    # A datetime would not survive JSON encoding; Kubernetes dates are strings.
    [doc] = parse_documents("metadata:\n  creationTimestamp: 2024-01-02T03:04:05Z\n", "x.yaml")
    assert doc["metadata"]["creationTimestamp"] == "2024-01-02T03:04:05Z"


def test_folders_are_searched_recursively_for_manifest_suffixes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.yaml").write_text("kind: One\n")
    (tmp_path / "a" / "two.YML").write_text("kind: Two\n")
    (tmp_path / "three.json").write_text('{"kind": "Three"}')
    (tmp_path / "notes.txt").write_text("kind: Nope\n")
    docs = load_documents([str(tmp_path)])
    assert sorted(d.kind for d in docs) == ["One", "Three", "Two"]


def test_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: A\nmetadata: {name: a, namespace: ns}\n"))
    [doc] = load_documents(["-"])
    assert (doc.source, doc.kind, doc.name, doc.namespace) == ("-", "A", "a", "ns")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        expand_paths([str(tmp_path / "missing.yaml")])


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load_documents([str(path)])


def test_every_corpus_file_loads_or_fails_cleanly(plugin_corpus: Path) -> None:
    failures = []
    for path in expand_paths([str(plugin_corpus)]):
        try:
            load_documents([path])
        except ManifestError as exc:
            failures.append(str(exc))
    # wasm/image.json is a JSON list (an image manifest), not a Kubernetes object.
    assert failures == [
        f"{plugin_corpus}/wasm/image.json:1: document is a list, not a mapping (a Kubernetes object)"
    ]


def test_dot_folders_are_skipped(tmp_path: Path) -> None:
    # A mounted ConfigMap: top-level symlinks into the kubelet's ..<timestamp>/ folder.
    data = tmp_path / "..2026_11_25_10_00_00.123"
    data.mkdir()
    (data / "plugin.yaml").write_text("kind: One\n")
    (tmp_path / "..data").symlink_to(data.name)
    (tmp_path / "plugin.yaml").symlink_to("..data/plugin.yaml")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text("kind: Nope\n")
    assert [d.kind for d in load_documents([str(tmp_path)])] == ["One"]
