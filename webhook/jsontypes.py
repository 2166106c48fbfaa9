"""Name the type of a decoded JSON/YAML value in error messages, in one place."""

from __future__ import annotations

from typing import Any


def type_word(value: Any, *, yaml_words: bool = False) -> str:
    """`null`, `boolean`, `number`, `string`, then `array`/`object` for JSON readers or
    `list`/`mapping` for people editing YAML."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list" if yaml_words else "array"
    if isinstance(value, dict):
        return "mapping" if yaml_words else "object"
    return type(value).__name__


def with_article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"
