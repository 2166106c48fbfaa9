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
    name_says_not_secret,
    name_strength,
    shannon_entropy,
)
from webhook.secrets.rules import RuleSet

MAX_ATOM = 2048  # longer single-line values are scanned as text
MIN_VALUE = 6


@dataclass(frozen=True, slots=True)
class Hit:
    """One secret inside one string: where (span) and by which rule. No value."""

    rule: str
    description: str
    start: int
    end: int
    hint: str


def redact(secret: str) -> str:
    """At most the first 4 characters (fewer for short values), then an ellipsis."""
    keep = min(4, len(secret) // 4)
    return f"{secret[:keep]}…" if keep else "…"


# ----------------------------------------------------------------------- patterns

_WS = re.compile(r"\s")
# Long runs of token characters inside text (vendor tokens are never shorter).
_TOKEN = re.compile(r"[A-Za-z0-9_+/=.~|:^-]{20,}")
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-----"
    r"((?:\s*[A-Za-z0-9-]+:[^\n]*)*)"  # optional RFC 1421 headers (Proc-Type, DEK-Info)
    r"([\sA-Za-z0-9+/=]*)"
)
_PUTTY = re.compile(r"PuTTY-User-Key-File-[0-9]+:[^\n]*\n(?:.*\n){0,4}?Private-Lines:", re.I)
# scheme://user:password@host  -- the password may hold reserved characters; the greedy
# password group backs off to the last '@' that is followed by a host.
_URL_CREDS = re.compile(
    r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{1,30}://"
    r"([^\s:/?#@\"'<>]*):([^\s\"'<>]+)@(?=[A-Za-z0-9\[])[A-Za-z0-9.\-\[\]:_]+"
)
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

    def scan_string(self, value: str, name: str | None = None) -> list[Hit]:
        """Every secret in `value`; `name` is the key it sits under (env name, data key...)."""
        if len(value) < _CACHE_MIN_LENGTH or len(value) > _CACHE_MAX_LENGTH:
            return self._scan_string(value, name)
        key = (value, name)
        cached = self._text_cache.get(key)
        if cached is None:
            cached = self._scan_string(value, name)
            if len(self._text_cache) >= _CACHE_ENTRIES:
                self._text_cache.clear()  # simple and thread-safe under the GIL
            self._text_cache[key] = cached
        return list(cached)

    def _scan_string(self, value: str, name: str | None) -> list[Hit]:
        if len(value) < MIN_VALUE:
            return []
        hits: list[Hit] = []
        if len(value) <= MAX_ATOM and _WS.search(value) is None:
            self._atom(value, name, hits)
        else:
            self._text(value, hits)
        if not hits:
            return hits
        if self.allow_values:
            hits = [
                h
                for h in hits
                if not any(p.search(value[h.start : h.end]) for p in self.allow_values)
            ]
        return _non_overlapping(hits)

    # ------------------------------------------------------------------ atoms

    def _atom(self, value: str, name: str | None, hits: list[Hit]) -> None:
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
            if self._named_literal(value, strength):
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
            self._entropy(value, hits)

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

    def _entropy(self, value: str, hits: list[Hit]) -> None:
        n = len(value)
        if n < self.entropy_min_length or _TOKENISH.match(value) is None:
            return
        has_digit = any(c.isdigit() for c in value)
        has_upper = any(c.isupper() for c in value)
        has_lower = any(c.islower() for c in value)
        if not ((has_digit and (has_upper or has_lower)) or (has_upper and has_lower and n >= 20)):
            return
        if is_benign(value) or is_reference(value) or is_placeholder(value):
            return
        if is_identifier_like(value) or decodes_to_document(value):
            return
        entropy = shannon_entropy(value)
        if _HEX.match(value):
            ok = n >= 32 and entropy >= 3.0
        else:
            # Compare with what a random string of this length over this alphabet gives:
            # at most log2(length) and log2(alphabet size) bits per character.
            alphabet = 10 * has_digit + 26 * has_upper + 26 * has_lower + 2
            ok = entropy >= 0.8 * min(math.log2(n), math.log2(alphabet))
        if ok:
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
            for m in _PUTTY.finditer(text):
                hits.append(
                    Hit("private-key", "PuTTY private key", m.start(), m.end(), redact(m.group()))
                )
        if "://" in text:
            self._url_credentials(text, hits)
        # Whitespace-separated chunks first (str.split is C-fast), then the token runs of
        # the long ones only: about 3x cheaper than one regex pass over a whole script.
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
            body = re.sub(r"\s+", "", m.group(3).split("-----END", 1)[0])
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
        for m in _URL_CREDS.finditer(text):
            password = m.group(2)
            if not password or is_reference(password) or is_placeholder(password):
                continue
            if password.startswith("$") or password in {"x-oauth-basic"}:
                continue
            hits.append(
                Hit(
                    "url-credentials",
                    "password in a URL (scheme://user:password@host)",
                    m.start(2),
                    m.end(2),
                    redact(password),
                )
            )

    def _auth_headers(self, text: str, lowered: str, hits: list[Hit]) -> None:
        for word, tail in _AUTH_WORDS:
            at = lowered.find(word)
            while at >= 0:
                if at == 0 or not text[at - 1].isalnum():
                    m = tail.match(text, at + len(word))
                    if m is not None:
                        self._auth_credential(m, hits)
                at = lowered.find(word, at + len(word))

    @staticmethod
    def _auth_credential(m: re.Match[str], hits: list[Hit]) -> None:
        credential = m.group(1)
        if is_reference(credential) or is_placeholder(credential):
            return
        if is_identifier_like(credential) or shannon_entropy(credential) < 2.5:
            return
        hits.append(
            Hit(
                "authorization-header",
                "credential in an Authorization header",
                m.start(1),
                m.end(1),
                redact(credential),
            )
        )

    def _assignments(self, text: str, lowered: str | None, hits: list[Hit]) -> None:
        """`NAME=value`, `name: value`, `"name": "value"`, `--flag value` where the name
        says credential and the value is a literal that does not look like code."""
        if lowered is None:
            lowered = text.lower()
        positions: list[int] = []
        for word in _CRED_WORDS:
            at = lowered.find(word)
            while at >= 0:
                positions.append(at)
                at = lowered.find(word, at + len(word))
        if not positions:
            return
        positions.sort()
        done = 0
        for position in positions:
            if position < done:
                continue
            start = position
            while start > 0 and text[start - 1] in _NAME_CHARS:
                start -= 1
            end = _NAME_AT.match(text, position).end()  # type: ignore[union-attr]
            done = end
            raw_name = text[start:end]
            is_flag = raw_name.startswith("-")
            name = raw_name.lstrip("-")
            strength = name_strength(name)
            if strength is Strength.NONE:
                continue
            tail = _SEP_TAIL.match(text, end)
            if tail is None and is_flag:
                tail = _SPACE_TAIL.match(text, end)
            if tail is None:
                continue
            quote = tail.group(1)
            vstart = tail.end()
            if quote in ("'", '"'):
                close = text.find(quote, vstart, vstart + 400)
                if close < 0:
                    continue
                value = text[vstart:close]
                if "\n" in value:
                    continue
                vend = close
            else:
                vm = _UNQUOTED_VALUE.match(text, vstart)
                if vm is None:
                    continue
                value = vm.group()
                vend = vm.end()
                if vend < len(text) and text[vend] in "([":
                    continue  # a call or an index: code, not a literal
            if not self._assigned_literal(value, strength):
                continue
            hits.append(
                Hit(
                    "credential-flag" if is_flag else "credential-assignment",
                    f"literal assigned to a credential name ({_shorten(name)})",
                    vstart,
                    vend,
                    redact(value),
                )
            )
            done = vend

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


def _random_id_shape(value: str) -> bool:
    """UUID- or hex-shaped values are benign as identifiers but can be API keys too
    (several vendors issue UUID-shaped keys): under a credential name they count."""
    return len(value) >= 16 and all(c in "0123456789abcdefABCDEF-" for c in value)


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
