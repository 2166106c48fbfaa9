"""Decide whether one string (with the name it sits under) holds a secret.

A string is either an *atom* (one line, no whitespace: an env value, a flag, a token)
or *text* (a script, an embedded config file, a header line). The order of tests:

1. value-format rules (`rules.yaml` plus the policy's own), for atoms and for every long
   token of a text;
2. structural rules written in code: PEM and base64/DER private keys, credentials in
   URLs (`scheme://user:pass@host`, reserved characters included), `Authorization`
   headers, and `name=value` / `name: value` / `--flag value` assignments inside text
   whose name says credential;
3. name plus value: the key the atom sits under says credential and the atom is a
   literal (not a reference, placeholder, path, host...);
4. last, for atoms only, an entropy test, behind the allow list (`allow.py`).

Nothing here keeps or returns a value: a hit carries a span and a redacted hint.

Every pass is linear in the length of the string, whatever it holds: rules are bounded
(`rules.py`), the allow-list predicates are (`allow.py`), searches over whole texts run on
RE2 or on `str.find`, and a candidate value is judged on at most its first `MAX_JUDGED`
characters: no credential is longer, and a hit on a longer one says so (`Hit.judged`).
`work.py` counts the passes, and the tests check that the count grows like the input.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from webhook.secrets.allow import (
    Strength,
    decodes_to_document,
    is_benign,
    is_identifier_like,
    is_placeholder,
    is_reference,
    is_trace_context,
    name_says_not_secret,
    name_strength,
    shannon_entropy,
)
from webhook.secrets.limits import Budget
from webhook.secrets.linear import LinearPattern
from webhook.secrets.rules import MAX_TOKEN, RuleSet
from webhook.secrets.work import tally

MAX_ATOM = 2048  # longer single-line values are scanned as text
MIN_VALUE = 6
# A candidate (an assigned value, a header credential, a URL password) longer than this
# is judged on its first MAX_JUDGED characters: no credential is that long.
MAX_JUDGED = MAX_TOKEN
MAX_NAME = 256  # an assignment's name is read back at most this far from its credential word
MAX_PEM_BODY = 16 * 1024  # judged of a PEM body (an RSA-16384 key is ~12 KiB)


@dataclass(frozen=True, slots=True)
class Hit:
    """One secret inside one string: where (span) and by which rule. No value."""

    rule: str
    description: str
    start: int
    end: int
    hint: str
    judged: int | None = None  # set when only this many characters of it were judged


def redact(secret: str) -> str:
    """At most the first 4 characters (fewer for short values), then an ellipsis."""
    keep = min(4, len(secret) // 4)
    return f"{secret[:keep]}…" if keep else "…"


# ----------------------------------------------------------------------- patterns

_WS = re.compile(r"\s")
_WS_RUN = re.compile(r"\s+")
# Long runs of token characters inside text (vendor tokens are never shorter).
_TOKEN = re.compile(r"[A-Za-z0-9_+/=.~|:^-]{20,}")
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-----"
    r"((?:\s*[A-Za-z0-9-]+:[^\n]*)*)"  # optional RFC 1421 headers (Proc-Type, DEK-Info)
    r"([\sA-Za-z0-9+/=]*)"
)
# On RE2: with `re`, a line of repeated headers rescans the rest of the line from each.
_PUTTY = LinearPattern(r"(?i:PuTTY-User-Key-File-[0-9]+:[^\n]*\n(?:.*\n){0,4}?Private-Lines:)")
# scheme://user:password@host  -- the password may hold reserved characters; the greedy
# password group backs off to the last '@' that is followed by a host. On RE2: with `re`
# that back-off rescans the rest of the line from every `://`. Groups: 1 the whole
# credential part (user:password), 2 the password.
_URL_CREDS = LinearPattern(
    r"[A-Za-z][A-Za-z0-9+.-]{1,30}://"
    r"[^\s:/?#@\"'<>]*:([^\s\"'<>]+)@[A-Za-z0-9\[][A-Za-z0-9.\-\[\]:_]*",
    before=r"(?:^|[^A-Za-z0-9+.-])",
)
_URL_PASSWORD = 2  # the password's group in _URL_CREDS
# After "bearer"/"basic" (found with str.find): the credential.
_AUTH_SCHEME_TAIL = re.compile(r"[ \t]+([A-Za-z0-9._~+/=-]{8,})")
# After "authorization": a separator, an optional scheme, the credential.
_AUTHORIZATION_TAIL = re.compile(
    r"[\"']?[ \t]*[:=][ \t]*[\"']?"
    r"(?:(?i:bearer|basic|token|apikey|api-key|digest|negotiate|sso-key)[ \t]+)?"
    r"([A-Za-z0-9._~+/=-]{8,})"
)
# Credential words (lower case) that anchor the assignment scan in text. Found with
# str.find on the lower-cased text: much faster than a case-insensitive alternation.
_CRED_WORDS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "key",
    "auth",
    "cred",
    "bearer",
    "cookie",
    "dsn",
    "psk",
)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_NAME_AT = re.compile(r"[\w.-]*")
_SEP_TAIL = re.compile(r"[\"']?[ \t]*(?::=|=>|=|:(?!//))[ \t]*([\"'`]?)")
_SPACE_TAIL = re.compile(r"[ \t]+([\"']?)(?=[^\s-])")
_UNQUOTED_VALUE = re.compile(r"[^\s\"'`,;&<>(){}\[\]\\]+")
_FLAG = re.compile(r"^-{1,2}[A-Za-z][\w.-]*$")
_TOKENISH = re.compile(r"^[A-Za-z0-9+/=_~.|:^-]+$")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DIGIT = re.compile(r"[0-9]")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")
_AUTH_WORDS = (
    ("bearer", _AUTH_SCHEME_TAIL),
    ("basic", _AUTH_SCHEME_TAIL),
    ("authorization", _AUTHORIZATION_TAIL),
)


_CACHE_MIN_LENGTH = 512
_CACHE_MAX_LENGTH = 64 * 1024
_CACHE_ENTRIES = 256


class Detector:
    """Scans strings. Immutable once built; safe to share between threads."""

    __slots__ = ("_text_cache", "allow_values", "entropy", "entropy_min_length", "rules")

    def __init__(
        self,
        rules: RuleSet,
        *,
        allow_values: Sequence[re.Pattern[str]] = (),
        entropy: bool = True,
        entropy_min_length: int = 16,
    ) -> None:
        self.rules = rules
        self.allow_values = tuple(allow_values)
        self.entropy = entropy
        self.entropy_min_length = entropy_min_length
        # Long texts (a plugin's server script, a config file in a ConfigMap) are the
        # costly ones, and the same plugin is applied again and again (GitOps syncs,
        # API-server retries): their hits are remembered. Bounded in entries and in the
        # size of what is kept; the hits themselves hold no value, only spans.
        self._text_cache: dict[tuple[str, str | None], list[Hit]] = {}

    def forget(self) -> None:
        """Drop remembered hits (benchmarks use it to measure the first-seen cost)."""
        self._text_cache.clear()

    # ------------------------------------------------------------------ entry

    def scan_string(
        self, value: str, name: str | None = None, budget: Budget | None = None
    ) -> list[Hit]:
        """Every secret in `value`; `name` is the key it sits under (env name, data key...).

        `budget`: the judgements the whole scan has left (`limits.py`); a value that
        would need one when none is left is not judged (`budget.skipped` counts it)."""
        if len(value) < _CACHE_MIN_LENGTH or len(value) > _CACHE_MAX_LENGTH:
            return self._scan_string(value, name, budget)
        key = (value, name)
        cached = self._text_cache.get(key)
        if cached is None:
            skipped = budget.skipped if budget is not None else 0
            cached = self._scan_string(value, name, budget)
            if budget is not None and budget.skipped != skipped:
                return cached  # judged in part: not the answer for the next scan
            if len(self._text_cache) >= _CACHE_ENTRIES:
                self._text_cache.clear()  # simple and thread-safe under the GIL
            self._text_cache[key] = cached
        return list(cached)

    def _scan_string(self, value: str, name: str | None, budget: Budget | None) -> list[Hit]:
        if len(value) < MIN_VALUE:
            return []
        hits: list[Hit] = []
        if len(value) <= MAX_ATOM and _WS.search(value) is None:
            self._atom(value, name, hits, budget)
        else:
            self._text(value, hits)
        if not hits:
            return hits
        if self.allow_values:
            hits = [
                h
                for h in hits
                if not any(
                    p.search(value[h.start : min(h.end, h.start + MAX_JUDGED)])
                    for p in self.allow_values
                )
            ]
        return _non_overlapping(hits)

    # ------------------------------------------------------------------ atoms

    def _atom(self, value: str, name: str | None, hits: list[Hit], budget: Budget | None) -> None:
        tally(len(value))  # judged whole: at most MAX_ATOM characters
        if len(value) >= self.rules.min_length:  # shorter than every rule's shortest match
            self._format_rules(value, 0, hits)
        if "://" in value:
            self._url_credentials(value, hits)
        if value.startswith(("LS0tLS1", "MII")):
            self._encoded_private_key(value, 0, hits)
        if hits:
            return
        if "=" in value or (value.startswith("-") and ":" in value):
            self._assignments(value, None, hits)
            if hits:
                return
        strength = name_strength(name) if name else Strength.NONE
        if strength is not Strength.NONE:
            if (budget is None or budget.take()) and self._named_literal(value, strength):
                hits.append(
                    Hit(
                        "named-credential",
                        f"literal value under a credential name ({_shorten(name or '')})",
                        0,
                        len(value),
                        redact(value),
                    )
                )
            return
        if self.entropy and not (name and name_says_not_secret(name)):
            self._entropy(value, hits, budget)

    def _named_literal(self, value: str, strength: Strength) -> bool:
        if is_reference(value) or is_placeholder(value):
            return False
        if is_benign(value) and not _random_id_shape(value):
            return False
        if strength is Strength.STRONG:
            return True
        # Weak names (a bare `..._KEY`): the value must also look random.
        return (
            not is_benign(value)
            and len(value) >= 12
            and not is_identifier_like(value)
            and shannon_entropy(value) >= 3.0
        )

    def _entropy(self, value: str, hits: list[Hit], budget: Budget | None) -> None:
        n = len(value)
        if n < self.entropy_min_length or _TOKENISH.match(value) is None:
            return
        # _TOKENISH: ASCII only, so the classes are [0-9], [A-Z], [a-z].
        has_digit = _DIGIT.search(value) is not None
        has_upper = _UPPER.search(value) is not None
        has_lower = _LOWER.search(value) is not None
        if not ((has_digit and (has_upper or has_lower)) or (has_upper and has_lower and n >= 20)):
            return
        # What mixes character classes like a token costs a judgement: the entropy and
        # the allow list below are the costly part of a scan.
        if budget is not None and not budget.take():
            return
        # The entropy test first: it is the cheap one, and the allow list below can only
        # take a hit away, so the order changes nothing but the cost.
        entropy = shannon_entropy(value)
        if _HEX.match(value):
            ok = n >= 32 and entropy >= 3.0
        else:
            # Compare with what a random string of this length over this alphabet gives:
            # at most log2(length) and log2(alphabet size) bits per character.
            alphabet = 10 * has_digit + 26 * has_upper + 26 * has_lower + 2
            ok = entropy >= 0.8 * min(math.log2(n), math.log2(alphabet))
        if not ok:
            return
        if is_benign(value) or is_reference(value) or is_placeholder(value):
            return
        if is_identifier_like(value) or decodes_to_document(value):
            return
        hits.append(
            Hit(
                "high-entropy-string",
                "random-looking literal (high entropy)",
                0,
                n,
                redact(value),
            )
        )

    # ------------------------------------------------------------------- text

    def _text(self, text: str, hits: list[Hit]) -> None:
        if "-----BEGIN" in text:
            self._pem(text, hits)
        if "PuTTY-User-Key-File" in text:
            for start, end in _PUTTY.spans(text):
                hits.append(
                    Hit("private-key", "PuTTY private key", start, end, redact(text[start:end]))
                )
        if "://" in text:
            self._url_credentials(text, hits)
        # Whitespace-separated chunks first (str.split is C-fast), then the token runs of
        # the long ones only: about 3x cheaper than one regex pass over a whole script.
        tally(len(text))
        cursor = 0
        for chunk in [c for c in text.split() if len(c) >= 20]:
            base = text.find(chunk, cursor)
            cursor = base + len(chunk)
            for m in _TOKEN.finditer(chunk):
                token = m.group()
                start = base + m.start()
                self._format_rules(token, start, hits)
                if token.startswith(("LS0tLS1", "MII")):
                    self._encoded_private_key(token, start, hits)
        lowered = text.lower()
        tally(len(text))
        self._auth_headers(text, lowered, hits)
        self._assignments(text, lowered, hits)

    def _format_rules(self, text: str, offset: int, hits: list[Hit]) -> None:
        for rule, start, end in self.rules.find(text):
            hits.append(
                Hit(
                    rule.id,
                    rule.description,
                    offset + start,
                    offset + end,
                    redact(text[start:end]),
                )
            )

    def _pem(self, text: str, hits: list[Hit]) -> None:
        for m in _PEM.finditer(text):
            tally(m.end() - m.start())
            body = _WS_RUN.sub("", m.group(3).split("-----END", 1)[0])[:MAX_PEM_BODY]
            if len(body) < 64 or is_placeholder(body) or shannon_entropy(body) < 4.0:
                continue
            kind = (m.group(1) or "").strip()
            label = f"{kind} private key" if kind else "private key"
            hits.append(Hit("private-key", f"PEM {label}", m.start(), m.end(), redact(m.group())))

    def _encoded_private_key(self, token: str, offset: int, hits: list[Hit]) -> None:
        if token.startswith("LS0tLS1"):
            head = token[: 4 * 24]
            try:
                decoded = base64.b64decode(head + "=" * (-len(head) % 4)).decode("latin-1")
            except (binascii.Error, ValueError):
                return
            if "PRIVATE KEY" in decoded and len(token) >= 200:
                hits.append(
                    Hit(
                        "private-key",
                        "base64-encoded PEM private key",
                        offset,
                        offset + len(token),
                        redact(token),
                    )
                )
        # DER: SEQUENCE (long form) then INTEGER version 0 -> "MII?" + "?IBA" / "AgEA"
        elif len(token) >= 200 and re.match(r"MII[A-Za-z0-9+/]{1,2}(?:IBA|AgEA|QIBA|gIBA)", token):
            hits.append(
                Hit(
                    "private-key",
                    "base64 DER private key",
                    offset,
                    offset + len(token),
                    redact(token),
                )
            )

    def _url_credentials(self, text: str, hits: list[Hit]) -> None:
        for start, end in _URL_CREDS.spans(text, _URL_PASSWORD):
            password = _judged(text, start, end)
            if not password or is_reference(password) or is_placeholder(password):
                continue
            if password.startswith("$") or password in {"x-oauth-basic"}:
                continue
            hits.append(
                Hit(
                    "url-credentials",
                    "password in a URL (scheme://user:password@host)",
                    start,
                    end,
                    redact(password),
                    _judged_length(start, end),
                )
            )

    def _auth_headers(self, text: str, lowered: str, hits: list[Hit]) -> None:
        for word, tail in _AUTH_WORDS:
            tally(len(lowered))
            at = lowered.find(word)
            while at >= 0:
                after = at + len(word)
                if at == 0 or not text[at - 1].isalnum():
                    # Bounded: separators and scheme (~40) plus the longest judged credential.
                    stop = min(len(text), after + 64 + MAX_JUDGED)
                    tally(stop - after)
                    m = tail.match(text, after, stop)
                    if m is not None:
                        end = _token_end(text, m.start(1), m.end(1), stop)
                        self._auth_credential(text, m.start(1), end, hits)
                        after = max(after, end)
                at = lowered.find(word, after)

    @staticmethod
    def _auth_credential(text: str, start: int, end: int, hits: list[Hit]) -> None:
        credential = _judged(text, start, end)
        if is_reference(credential) or is_placeholder(credential):
            return
        if is_identifier_like(credential) or shannon_entropy(credential) < 2.5:
            return
        hits.append(
            Hit(
                "authorization-header",
                "credential in an Authorization header",
                start,
                end,
                redact(credential),
                _judged_length(start, end),
            )
        )

    def _assignments(self, text: str, lowered: str | None, hits: list[Hit]) -> None:
        """`NAME=value`, `name: value`, `"name": "value"`, `--flag value` where the name
        says credential and the value is a literal that does not look like code.

        One pass: credential words in order; each assignment is read from its word (name
        back and forth, separator, value) and the next word is looked for after it, so
        no character is read twice, however many `key=key=...` a value holds."""
        if lowered is None:
            lowered = text.lower()
        done = 0
        for position in _credential_words(lowered):
            if position < done:
                continue
            found = _assignment_at(text, position, done)
            if found is None:
                continue
            done = found.resume
            if found.value_end < 0:
                continue
            value = _judged(text, found.value_start, found.value_end)
            if not self._assigned_literal(value, found.strength):
                continue
            hits.append(
                Hit(
                    "credential-flag" if found.is_flag else "credential-assignment",
                    f"literal assigned to a credential name ({_shorten(found.name)})",
                    found.value_start,
                    found.value_end,
                    redact(value),
                    _judged_length(found.value_start, found.value_end),
                )
            )

    def _assigned_literal(self, value: str, strength: Strength) -> bool:
        if len(value) < MIN_VALUE or _WS.search(value):
            return False
        if is_reference(value) or is_placeholder(value):
            return False
        if is_benign(value) and not _random_id_shape(value):
            return False
        if is_identifier_like(value):
            return False
        if strength is Strength.WEAK:
            return len(value) >= 12 and shannon_entropy(value) >= 3.0 and not is_benign(value)
        return True


def _credential_words(lowered: str) -> list[int]:
    """Where a credential word starts in the lower-cased text, in order."""
    tally(len(lowered) * len(_CRED_WORDS))
    positions: list[int] = []
    for word in _CRED_WORDS:
        at = lowered.find(word)
        while at >= 0:
            positions.append(at)
            at = lowered.find(word, at + len(word))
    positions.sort()
    return positions


@dataclass(frozen=True, slots=True)
class _Assignment:
    """What `_assignment_at` read: the name, and where the value is (value_end < 0: no
    literal value). `resume`: where the next credential word may start."""

    name: str
    is_flag: bool
    strength: Strength
    value_start: int
    value_end: int
    resume: int


def _assignment_at(text: str, position: int, floor: int) -> _Assignment | None:
    """The assignment whose name holds the credential word at `position`, or None when
    the name does not say credential. Reads nothing before `floor`."""
    start, end = _name_around(text, position, floor)
    raw_name = text[start:end]
    is_flag = raw_name.startswith("-")
    name = raw_name.lstrip("-")
    strength = name_strength(name)
    if strength is Strength.NONE:
        return _Assignment(name, is_flag, strength, end, -1, end)
    span = _value_after(text, end, is_flag)
    if span is None:
        return _Assignment(name, is_flag, strength, end, -1, end)
    value_start, value_end = span
    return _Assignment(name, is_flag, strength, value_start, value_end, max(end, value_end))


def _name_around(text: str, position: int, floor: int) -> tuple[int, int]:
    """The run of name characters around `position`: back at most MAX_NAME characters
    (and never before `floor`), forward to the end of the run."""
    lowest = max(floor, position - MAX_NAME)
    start = position
    while start > lowest and text[start - 1] in _NAME_CHARS:
        start -= 1
    end = _NAME_AT.match(text, position).end()  # type: ignore[union-attr]
    tally(end - start)
    return start, end


def _value_after(text: str, name_end: int, is_flag: bool) -> tuple[int, int] | None:
    """The literal after a name: separator (or, for a flag, spaces), then a quoted value
    on one line or an unquoted one. None when there is none, or it is code (a call)."""
    tail = _SEP_TAIL.match(text, name_end, name_end + 64)
    if tail is None and is_flag:
        tail = _SPACE_TAIL.match(text, name_end, name_end + 64)
    if tail is None:
        return None
    quote = tail.group(1)
    value_start = tail.end()
    if quote in ("'", '"'):
        close = text.find(quote, value_start, value_start + 400)
        tally(400)
        if close < 0 or "\n" in text[value_start:close]:
            return None
        return value_start, close
    stop = min(len(text), value_start + MAX_JUDGED + 1)
    vm = _UNQUOTED_VALUE.match(text, value_start, stop)
    if vm is None:
        return None
    value_end = _token_end(text, value_start, vm.end(), stop, _UNQUOTED_VALUE)
    tally(value_end - value_start)
    if value_end < len(text) and text[value_end] in "([":
        return None  # a call or an index: code, not a literal
    return value_start, value_end


def _token_end(
    text: str, start: int, end: int, stop: int, run: re.Pattern[str] | None = None
) -> int:
    """`end` of a bounded match; when the match was cut at `stop`, the end of the whole
    run it belongs to (found in one more pass, so a hit spans the whole value)."""
    if end < stop or stop >= len(text):
        return end
    more = (run or _CREDENTIAL_RUN).match(text, end)
    return more.end() if more is not None else end


_CREDENTIAL_RUN = re.compile(r"[A-Za-z0-9._~+/=-]*")


def _judged(text: str, start: int, end: int) -> str:
    """The part of a candidate that is judged: all of it up to MAX_JUDGED characters."""
    stop = min(end, start + MAX_JUDGED)
    tally(stop - start)
    return text[start:stop]


def _judged_length(start: int, end: int) -> int | None:
    return MAX_JUDGED if end - start > MAX_JUDGED else None


def _random_id_shape(value: str) -> bool:
    """UUID- or hex-shaped values are benign as identifiers but can be API keys too
    (several vendors issue UUID-shaped keys): under a credential name they count."""
    return (
        len(value) >= 16
        and not is_trace_context(value)
        and all(c in "0123456789abcdefABCDEF-" for c in value)
    )


def _shorten(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "..."


def _non_overlapping(hits: list[Hit]) -> list[Hit]:
    if len(hits) < 2:
        return hits
    ordered = sorted(enumerate(hits), key=lambda p: (p[1].start, p[0]))
    kept: list[Hit] = []
    last_end = -1
    for _, hit in ordered:
        if hit.start >= last_end:
            kept.append(hit)
            last_end = hit.end
    return kept
