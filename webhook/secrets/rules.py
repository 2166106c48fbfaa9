"""Value-format rules: loaded from YAML data, compiled once, dispatched by prefix.

The built-in rules live in `rules.yaml` next to this module; a policy adds its own with
the same fields (`parameters.rules`). Rules are validated when they are loaded, so a bad
user regex is a policy-load error, not a runtime surprise.

Every match is bounded, so a scan is linear in the text whatever it holds:

* an anchored match (a rule tried where a token starts with its prefix) is given at most
  the rule's longest match (from the regex) or `MAX_TOKEN` characters for rules with an
  open repeat (`{20,}`); a run longer than that is a blob, not a token;
* no rule is tried again inside its own previous match (`ABSK/ABSK/...` would otherwise
  rescan the rest of the token from every `/`);
* unanchored searches (keyword rules, rules with neither prefix nor keyword) and every
  policy rule run on RE2 (`linear.py`), which cannot backtrack. A policy rule RE2 cannot
  express (look-around, back-references) runs on `re` over windows of `2 * MAX_TOKEN`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from webhook.secrets.allow import is_placeholder, shannon_entropy
from webhook.secrets.linear import LinearPattern
from webhook.secrets.work import tally

# The regex parser (re._parser) has no type stubs; it only measures match widths here.
re_parser: Any = importlib.import_module("re._parser")

# No token any vendor issues is longer (the longest formats, JWTs and 1Password service
# tokens, are a few hundred to a couple of thousand characters).
MAX_TOKEN = 4096

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_RULE_KEYS = frozenset(
    {
        "id",
        "description",
        "regex",
        "prefixes",
        "keywords",
        "boundary",
        "ignoreCase",
        "minEntropy",
        "allow",
    }
)


class RuleError(ValueError):
    """A rule that cannot be used (bad id, bad regex, unknown field)."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    pattern: re.Pattern[str]
    source: str
    prefixes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    min_entropy: float = 0.0
    allow: tuple[re.Pattern[str], ...] = ()
    boundary: bool = True
    min_length: int = 1  # shortest match
    max_length: int = MAX_TOKEN  # longest match, or MAX_TOKEN for an open repeat
    searcher: LinearPattern | None = None  # the rule on RE2, for unanchored searches
    anchored: LinearPattern | None = None  # on RE2 for anchored matches (policy rules)

    def accepts(self, matched: str) -> bool:
        """Post-filters on a regex match: entropy floor, rule allow list, placeholders."""
        tally(len(matched))
        if self.min_entropy and shannon_entropy(matched) < self.min_entropy:
            return False
        if any(a.search(matched) for a in self.allow):
            return False
        return not is_placeholder(matched)


def _wrap(regex: str, boundary: bool, ignore_case: bool) -> str:
    body = f"(?i:{regex})" if ignore_case else f"(?:{regex})"
    if boundary:
        return f"(?<![A-Za-z0-9.]){body}(?![A-Za-z0-9])"
    return body


def _match_lengths(source: str) -> tuple[int, int]:
    """The regex's shortest and longest match; the longest capped at MAX_TOKEN (open
    repeats are unbounded)."""
    try:
        shortest, longest = re_parser.parse(source).getwidth()
    except (re.error, OverflowError, RecursionError):
        return 1, MAX_TOKEN
    return max(1, int(shortest)), min(int(longest), MAX_TOKEN)


def parse_rule(data: Mapping[str, Any], where: str = "rule", *, builtin: bool = False) -> Rule:
    """Validate one rule mapping and compile it. Built-in rules (vetted: no nested
    repeats) match with `re`; policy rules with RE2 wherever RE2 can express them."""
    if not isinstance(data, Mapping):
        raise RuleError(f"{where}: must be a mapping")
    unknown = set(data) - _RULE_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise RuleError(f"{where}: 'id' must be a kebab-case string")
    regex = data.get("regex")
    if not isinstance(regex, str) or not regex:
        raise RuleError(f"{where} {rule_id}: 'regex' must be a non-empty string")
    if "(?P<" in regex or "(?P=" in regex:
        raise RuleError(f"{where} {rule_id}: named groups are not allowed in 'regex'")
    boundary = data.get("boundary", True)
    ignore_case = data.get("ignoreCase", False)
    if not isinstance(boundary, bool) or not isinstance(ignore_case, bool):
        raise RuleError(f"{where} {rule_id}: 'boundary' and 'ignoreCase' must be booleans")
    min_entropy = data.get("minEntropy", 0.0)
    if not isinstance(min_entropy, int | float) or isinstance(min_entropy, bool):
        raise RuleError(f"{where} {rule_id}: 'minEntropy' must be a number")
    prefixes = _strings(data.get("prefixes", []), where, rule_id, "prefixes")
    keywords = _strings(data.get("keywords", []), where, rule_id, "keywords")
    if any(not p for p in [*prefixes, *keywords]):
        raise RuleError(f"{where} {rule_id}: empty prefix or keyword")
    if ignore_case:  # prefixes are compared exactly: add the case variants
        prefixes = sorted({v for p in prefixes for v in (p, p.lower(), p.upper())})
    source = _wrap(regex, boundary, ignore_case)
    try:
        pattern = re.compile(source)
        if pattern.match(""):
            raise RuleError(f"{where} {rule_id}: 'regex' matches the empty string")
        allow = tuple(
            re.compile(a) for a in _strings(data.get("allow", []), where, rule_id, "allow")
        )
    except re.error as exc:
        raise RuleError(f"{where} {rule_id}: invalid regex: {exc}") from None
    description = data.get("description", rule_id)
    body = f"(?i:{regex})" if ignore_case else regex
    searcher = LinearPattern.compile(body, boundary=boundary)
    anchored = None if builtin or searcher is None else searcher
    min_length, max_length = _match_lengths(source)
    return Rule(
        id=rule_id,
        description=str(description),
        pattern=pattern,
        source=source,
        prefixes=tuple(prefixes),
        keywords=tuple(keywords),
        min_entropy=float(min_entropy),
        allow=allow,
        boundary=boundary,
        min_length=min_length,
        max_length=max_length,
        searcher=searcher,
        anchored=anchored,
    )


def _strings(value: Any, where: str, rule_id: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{where} {rule_id}: {key!r} must be a list of strings")
    return value


# Where, inside a token, another value may start: `KEY=ghp_...`, `https://...`, `a;b`.
_STARTS = re.compile(r"[=:/@;&?,|\"'`(){}\[\]<>]")


class RuleSet:
    """An ordered set of rules, dispatched by literal prefix or keyword.

    Python's `re` tries every branch of a big alternation at every position, which is
    slow; instead a token is split at its possible value starts, each start is looked
    up by first character among the rules' prefixes, and only those rules run (anchored
    `match`). Keyword rules run `search` on tokens that contain a keyword; rules with
    neither run on every token.
    """

    __slots__ = ("_by_first", "_keyword_rules", "_unanchored", "min_length", "rules")

    def __init__(self, rules: Sequence[Rule]) -> None:
        ids = [r.id for r in rules]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise RuleError(f"duplicate rule id(s): {', '.join(sorted(duplicates))}")
        self.rules: tuple[Rule, ...] = tuple(rules)
        by_first: dict[str, list[tuple[str, Rule]]] = {}
        keyword_rules: list[tuple[str, Rule]] = []
        unanchored: list[Rule] = []
        for rule in self.rules:
            for prefix in rule.prefixes:
                by_first.setdefault(prefix[0], []).append((prefix, rule))
            for keyword in rule.keywords:
                keyword_rules.append((keyword, rule))
            if not rule.keywords and not rule.prefixes:
                unanchored.append(rule)
        self._by_first = {k: tuple(v) for k, v in by_first.items()}
        self._keyword_rules = tuple(keyword_rules)
        self._unanchored = tuple(unanchored)
        # No rule matches a string shorter than this (callers skip `find` below it).
        self.min_length = min((r.min_length for r in self.rules), default=0)

    def extended(self, extra: Iterable[Rule]) -> RuleSet:
        extra = list(extra)
        if not extra:
            return self
        return RuleSet([*extra, *self.rules])

    def find(self, text: str) -> Iterator[tuple[Rule, int, int]]:
        """Accepted rule matches in one token (no whitespace): (rule, start, end).
        Matches of different rules may overlap; the caller keeps the first of them."""
        n = len(text)
        tally(n)
        by_first = self._by_first
        starts = [0]
        if _STARTS.search(text) is not None:
            starts.extend(m.end() for m in _STARTS.finditer(text))
        resume: dict[str, int] = {}  # rule id -> where its last match ended
        for start in starts:
            if start >= n:
                continue
            candidates = by_first.get(text[start])
            if candidates is None:
                continue
            for prefix, rule in candidates:
                if not text.startswith(prefix, start) or resume.get(rule.id, 0) > start:
                    continue
                end = _anchored_match(rule, text, start)
                if end < 0:
                    continue
                resume[rule.id] = end
                if end - start > rule.max_length:
                    continue  # a run longer than any token of this format: a blob
                if rule.accepts(text[start:end]) and _not_masked(text, end):
                    yield rule, start, end
                    break
        searched: set[str] = set()
        for keyword, rule in self._keyword_rules:
            if keyword in text and rule.id not in searched:
                searched.add(rule.id)
                yield from self._search(rule, text)
        for rule in self._unanchored:
            yield from self._search(rule, text)

    @staticmethod
    def _search(rule: Rule, text: str) -> Iterator[tuple[Rule, int, int]]:
        for start, end in _search_spans(rule, text):
            if end - start > rule.max_length:
                continue
            if rule.accepts(text[start:end]) and _not_masked(text, end):
                yield rule, start, end


def _anchored_match(rule: Rule, text: str, start: int) -> int:
    """End of the rule's match at `start`, or -1. Given one character more than the
    rule's longest match, so a longer run shows as a match longer than `max_length`."""
    endpos = min(len(text), start + rule.max_length + 1)
    tally(endpos - start)
    if rule.anchored is not None:
        # The boundary before `start` is part of the RE2 pattern: give it that character.
        offset = start - 1 if rule.boundary and start > 0 else start
        for span_start, span_end in rule.anchored.spans(text[offset:endpos]):
            return span_end + offset if span_start + offset == start else -1
        return -1
    m = rule.pattern.match(text, start, endpos)
    return -1 if m is None else m.end()


_WINDOW = 2 * MAX_TOKEN


def _search_spans(rule: Rule, text: str) -> Iterator[tuple[int, int]]:
    if rule.searcher is not None:
        yield from rule.searcher.spans(text)
        return
    # `re` only (a policy rule RE2 cannot express): windows that overlap by MAX_TOKEN,
    # each match reported by the window it starts in.
    n = len(text)
    for base in range(0, max(n, 1), _WINDOW - MAX_TOKEN):
        stop = min(n, base + _WINDOW)
        tally(stop - base)
        for m in rule.pattern.finditer(text, base, stop):
            if m.start() < base + _WINDOW - MAX_TOKEN or stop == n:
                yield m.start(), m.end()
        if stop == n:
            return


def _not_masked(text: str, end: int) -> bool:
    """A token whose match is followed by masking (`####`, `****`, `xxxx`) is redacted."""
    return _MASK.match(text, end) is None


_MASK = re.compile(r"#{3}|\*{3}|x{3}|X{3}|\.{3}|•|…")


def load_rules_yaml(text: str, where: str, *, builtin: bool = False) -> list[Rule]:
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, Mapping) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{where}: expected a mapping with a 'rules' list")
    return [
        parse_rule(r, f"{where} rules[{i}]", builtin=builtin) for i, r in enumerate(data["rules"])
    ]


@lru_cache(maxsize=1)
def builtin_ruleset() -> RuleSet:
    """The rules shipped in `webhook/secrets/rules.yaml` (loaded once)."""
    text = resources.files("webhook.secrets").joinpath("rules.yaml").read_text("utf-8")
    return RuleSet(load_rules_yaml(text, "webhook/secrets/rules.yaml", builtin=True))
