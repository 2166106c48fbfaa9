"""What is *not* a secret: references, placeholders, identifiers, and names.

Everything here is generic (Kubernetes, shell and template conventions, and the
statistics of random strings); nothing refers to particular values.

Two questions are answered:

* `name_strength(name)`: does a key name (env `name`, ConfigMap key, annotation key,
  flag, header or assignment name) say that its value is a credential?
  `STRONG` (password, token, secret, api key...), `WEAK` (a bare `..._KEY`, a plural such
  as `..._SECRETS`) or `NONE` (no credential word, or the name ends in a word that says
  the value is about the credential, not the credential: `_ID`, `_NAME`, `_URL`,
  `_FILE`, `_PATH`, `_VERSION`...).
* `is_reference`, `is_placeholder`, `is_benign`, `is_identifier_like`: is a value a
  reference to a secret kept elsewhere, an obvious placeholder, or a kind of value
  that is never a credential (UUID, git SHA, digest, path, host name, e-mail, ARN,
  secret-manager reference, public key or certificate)?
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from enum import IntEnum
from functools import lru_cache

# ---------------------------------------------------------------------------- names


class Strength(IntEnum):
    NONE = 0
    WEAK = 1
    STRONG = 2


# Whole name segments that say "credential" (segments come from splitting on
# separators and camelCase: `dbPass` -> db, pass).
_STRONG_SEGMENTS = frozenset(
    {
        "pass",
        "pwd",
        "pw",
        "passwd",
        "password",
        "passwords",
        "passphrase",
        "secret",
        "token",
        "auth",
        "oauth",
        "creds",
        "cred",
        "credential",
        "bearer",
        "apikey",
        "psk",
        "cookie",
        "authorization",
        "dsn",
        "sas",
    }
)
# Substrings of the squashed (separator-free, lower-case) name that say "credential".
_STRONG_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "authkey",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "licensekey",
    "connectionstring",
    "sessionkey",
)
# A last segment that makes the whole name weak: it names a collection or a key.
_PLURAL_LAST = frozenset({"keys", "secrets", "tokens", "passwords", "credentials"})
_WEAK_LAST = frozenset({"key", "signature", "salt", "hmac"})
# A last segment that says the value is *about* the credential, not the credential.
_EXCLUDED_LAST = frozenset(
    {
        "id",
        "ids",
        "name",
        "names",
        "url",
        "uri",
        "urls",
        "endpoint",
        "endpoints",
        "host",
        "hostname",
        "file",
        "filename",
        "files",
        "path",
        "paths",
        "dir",
        "directory",
        "location",
        "version",
        "region",
        "zone",
        "type",
        "kind",
        "mode",
        "format",
        "length",
        "len",
        "size",
        "ttl",
        "timeout",
        "expiry",
        "expiration",
        "expires",
        "lifetime",
        "duration",
        "seconds",
        "enabled",
        "enable",
        "disabled",
        "required",
        "optional",
        "ref",
        "reference",
        "label",
        "field",
        "prefix",
        "suffix",
        "chars",
        "charset",
        "alphabet",
        "count",
        "limit",
        "policy",
        "algorithm",
        "alg",
        "method",
        "scope",
        "scopes",
        "provider",
        "issuer",
        "audience",
        "arn",
        "template",
        "regex",
        "pattern",
        "mount",
        "volume",
        "username",
        "email",
        "port",
        "interval",
        "rotation",
        "usage",
        "description",
        "hint",
        "help",
    }
)
# Words that say the value is public.
_PUBLIC_SEGMENTS = frozenset({"public", "publishable", "pub"})

_SEGMENT = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_segments(name: str) -> list[str]:
    """`automountServiceAccountToken` -> ['automount', 'service', 'account', 'token']."""
    return [s.lower() for s in _SEGMENT.findall(name)]


@lru_cache(maxsize=65536)
def name_strength(name: str) -> Strength:
    """How strongly a key name says its value is a credential."""
    if not name:
        return Strength.NONE
    segments = name_segments(name)
    if not segments:
        return Strength.NONE
    last = segments[-1]
    if last in _EXCLUDED_LAST:
        return Strength.NONE
    if _PUBLIC_SEGMENTS.intersection(segments):
        return Strength.NONE
    if last in _PLURAL_LAST:
        return Strength.WEAK
    squashed = "".join(segments)
    if any(s in _STRONG_SEGMENTS for s in segments) or any(
        sub in squashed for sub in _STRONG_SUBSTRINGS
    ):
        return Strength.STRONG
    if last in _WEAK_LAST:
        return Strength.WEAK
    return Strength.NONE


_CHECKSUM_SEGMENTS = frozenset(
    {
        "checksum",
        "chksum",
        "hash",
        "digest",
        "sha",
        "sha1",
        "sha256",
        "sha512",
        "md5",
        "md",  # MD5 splits into md, 5
        "fingerprint",
        "etag",
        "revision",
        "rev",
        "commit",
        "srcrev",
        "version",
        "nonce",
        "uid",
        "uuid",
        "id",
        "ulid",
        "ksuid",
        "trace",
        "traceparent",
        "tracestate",
        "span",
        "correlation",
    }
)


@lru_cache(maxsize=65536)
def name_says_not_secret(name: str) -> bool:
    """A name that announces a checksum, revision or identifier: no entropy test."""
    segments = name_segments(name)
    if _CHECKSUM_SEGMENTS.intersection(segments) or _PUBLIC_SEGMENTS.intersection(segments):
        return True
    return bool(segments) and segments[-1] in _EXCLUDED_LAST


# ------------------------------------------------------------------ value classes

# References: resolved elsewhere (shell, Kubernetes `$(VAR)`, Helm, Argo, ERB, Windows).
# The paired forms (`${...}`, `{{...}}`, `<%...%>`, `` `...` ``) are found with str.find:
# as regexes (`\{\{.*?\}\}`) they rescan the rest of the value from every opening, which is
# quadratic on a value made of openings.
_REFERENCE_WORDS = re.compile(
    r"\$[A-Z_][A-Z0-9_]{2,}"  # $UPPER_VAR
    r"|^\$[A-Za-z_]\w*$"  # $var
    r"|^%[A-Za-z_]\w*%$"  # %VAR%
    r"|^@[A-Za-z_]\w*@$",  # @VAR@
)


def _paired(value: str, opening: str, closing: str) -> bool:
    """`opening`, then `closing` somewhere after it (one pass: the first opening is the
    one with the most room for a closing after it)."""
    at = value.find(opening)
    return at >= 0 and value.find(closing, at + len(opening)) >= 0


def _backquoted(value: str) -> bool:
    """`` `command` ``: two backquotes with at least one other character between them."""
    at = value.find("`")
    while at >= 0:
        nxt = value.find("`", at + 1)
        if nxt < 0:
            return False
        if nxt > at + 1:
            return True
        at = nxt
    return False


# Secret-manager and secret-store references.
_SECRET_MANAGER = re.compile(
    r"^(?:arn:aws[\w-]*:|projects/[^/]+/secrets/|vault:|ref\+[a-z0-9]+://|"
    r"(?:secret|vault|awssm|gcpsm|azkv|op|sops|k8s|secretsmanager)://|"
    r"https://[\w.-]+\.vault\.azure\.net/)",
    re.I,
)

# Placeholder marks. One alternation of all of them costs ~10x these checks: `re`
# tries every branch at every position, where `in` on the lower-cased value is one C
# scan per word. The same marks as the alternation
#   <[^<>]{1,80}> | \[[A-Za-z][A-Za-z0-9 _-]*\] | ^\{[A-Za-z_][\w. -]*\}$
#   | x{4,} | X{4,} | \*{3,} | #{3,} | \.{3,} | • | … | EXAMPLE
#   | (?i: redacted | changeme | change[_-]me | replace[_-]?me | placeholder | dummy
#        | notreal | not[_-]a[_-]real | your[_-]?[a-z]{0,40}[_-]?(?:key|...|id)
#        | put[_-]your | insert[_-]?(?:your|here) | here$ | _here | goes[_-]?here
#        | ^example | [_-]example)
_ANGLE = re.compile(r"<[^<>]{1,80}>")  # <token>, <user:password>
_BRACKETED = re.compile(r"\[[A-Za-z][A-Za-z0-9 _-]*\]")  # [PASSWORD]
_BRACED = re.compile(r"^\{[A-Za-z_][\w. -]*\}$")  # {SumoAccessKey}
_MASKS = ("xxxx", "XXXX", "***", "###", "...", "•", "…", "EXAMPLE")
_PLACEHOLDER_WORDS_IN = (
    "redacted",
    "changeme",
    "change_me",
    "change-me",
    "replaceme",
    "replace_me",
    "replace-me",
    "placeholder",
    "dummy",
    "notreal",
    "not_a_real",
    "not_a-real",
    "not-a_real",
    "not-a-real",
    "put_your",
    "put-your",
    "_here",
    "_example",
    "-example",
)
_YOUR_SOMETHING = re.compile(r"(?i:your[_-]?[a-z]{0,40}[_-]?(?:key|token|secret|password|pass|id))")
_INSERT_OR_GOES = re.compile(r"(?i:insert[_-]?(?:your|here)|goes[_-]?here)")


def _has_placeholder_mark(value: str) -> bool:
    if "<" in value and _ANGLE.search(value) is not None:
        return True
    if "[" in value and _BRACKETED.search(value) is not None:
        return True
    if value.startswith("{") and _BRACED.match(value) is not None:
        return True
    for mark in _MASKS:
        if mark in value:
            return True
    lowered = value.lower()
    for word in _PLACEHOLDER_WORDS_IN:
        if word in lowered:
            return True
    if lowered.startswith("example") or lowered.endswith(("here", "here\n")):
        return True
    if "your" in lowered and _YOUR_SOMETHING.search(value) is not None:
        return True
    return ("insert" in lowered or "goes" in lowered) and _INSERT_OR_GOES.search(value) is not None


# Words that, on their own, make up a placeholder ("my-bot-token", "Slack_BOT_TOKEN").
_PLACEHOLDER_WORDS = frozenset(
    {
        "token",
        "key",
        "secret",
        "password",
        "pass",
        "api",
        "bot",
        "my",
        "your",
        "here",
        "access",
        "configuration",
        "config",
        "string",
        "random",
        "value",
        "app",
        "user",
        "auth",
        "test",
        "sample",
        "example",
        "slack",
        "dummy",
        "fake",
        "foo",
        "bar",
        # written as an instruction: "set-me-in-vault", "fill_in_later", "TODO_replace"
        "set",
        "me",
        "in",
        "vault",
        "todo",
        "tbd",
        "fixme",
        "fill",
        "later",
        "provide",
        "override",
        "replace",
        "change",
        "insert",
        "put",
        "via",
    }
)
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+|[^A-Za-z0-9]+")
_BOOLEAN_LIKE = frozenset(
    {"true", "false", "yes", "no", "on", "off", "null", "none", "nil", "enabled", "disabled"}
)


def is_reference(value: str) -> bool:
    """The value refers to a secret kept elsewhere (or is computed at run time)."""
    return (
        "$(" in value  # $(X), $(cmd ...)
        or _paired(value, "${", "}")
        or _paired(value, "{{", "}}")  # {{ .Values.x }}, {{workflow.parameters.x}}
        or _paired(value, "<%", "%>")  # ERB
        or _backquoted(value)
        or _REFERENCE_WORDS.search(value) is not None
        or _SECRET_MANAGER.match(value) is not None
    )


def sequential_fraction(value: str) -> float:
    """Share of characters in runs (>= 4) of repeated or consecutive characters:
    `aaaa`, `1234`, `abcd`. Random strings have almost none; placeholders are made of them.

    A pair (previous, current) continues a run when `ord(current) - ord(previous)` is 0 or
    1 and `current` is alphanumeric. For ASCII text that test is done on whole byte
    strings (XOR of the text with itself shifted, a translate table, one regex for runs of
    good pairs): no Python-level loop per character."""
    n = len(value)
    if n < 4:
        return 0.0
    if n <= 32 or not value.isascii():  # below ~32 characters the loop is cheaper
        return _sequential_fraction_loop(value)
    raw = value.encode("ascii")
    prev, cur = raw[:-1], raw[1:]
    width = n - 1
    cur_int = int.from_bytes(cur, "big")
    same = (cur_int ^ int.from_bytes(prev, "big")).to_bytes(width, "big")
    step = (
        int.from_bytes(cur.translate(_MINUS_ONE), "big") ^ int.from_bytes(prev, "big")
    ).to_bytes(width, "big")
    good = (
        (
            int.from_bytes(same.translate(_ZERO_TO_ONE), "big")
            | int.from_bytes(step.translate(_ZERO_TO_ONE), "big")
        )
        & int.from_bytes(cur.translate(_ALNUM_TO_ONE), "big")
    ).to_bytes(width, "big")
    covered = 0
    for m in _GOOD_PAIR_RUN.finditer(good):
        covered += m.end() - m.start() + 1  # k good pairs: a run of k + 1 characters
    return covered / n


# Byte tables for sequential_fraction: x -> x - 1 (mod 256); 0 -> 1, else 0; ASCII
# alphanumerics -> 1, else 0.
_MINUS_ONE = bytes((b - 1) % 256 for b in range(256))
_ZERO_TO_ONE = bytes([1] + [0] * 255)
_ALNUM_TO_ONE = bytes(1 if chr(b).isalnum() and b < 128 else 0 for b in range(256))
_GOOD_PAIR_RUN = re.compile(b"\x01{3,}")


def _sequential_fraction_loop(value: str) -> float:
    """The per-character definition, for short or non-ASCII text (never long: callers
    cap what they judge at MAX_JUDGED characters)."""
    n = len(value)
    covered = 0
    run = 1
    prev = ord(value[0])
    for ch in value[1:]:
        cur = ord(ch)
        if cur - prev in (0, 1) and ch.isalnum():
            run += 1
        else:
            if run >= 4:
                covered += run
            run = 1
        prev = cur
    if run >= 4:
        covered += run
    return covered / n


def is_placeholder(value: str) -> bool:
    """An obvious placeholder: masked, templated, sequential, or made of words."""
    if _has_placeholder_mark(value):
        return True
    if sequential_fraction(value) >= 0.5:
        return True
    body = value
    # A value whose letters are all upper case and carry no digit ("THISISATOKEN").
    if _letter_count(body) >= 12 and not _has_digit(body):
        tail = body.split(".", 1)[-1] if "." in body[:4] else body
        if tail.isalpha() and tail.isupper():
            return True
    # Made only of words, at least one of which names what should go there.
    parts = [p for p in _WORDS.findall(body) if p[0].isalnum()]
    if len(parts) >= 2 and all(p.isalpha() for p in parts):
        lowered = {p.lower() for p in parts}
        if lowered & _PLACEHOLDER_WORDS and len(lowered - _PLACEHOLDER_WORDS) <= 2:
            return True
    # Few distinct characters for its length.
    return len(value) >= 12 and len(set(value)) <= max(3, min(6, len(value) // 10))


_ASCII_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DELETE_LETTERS = str.maketrans("", "", _ASCII_LETTERS)
_ASCII_DIGIT = re.compile(r"[0-9]")


def _letter_count(value: str) -> int:
    if value.isascii():
        return len(value) - len(value.translate(_DELETE_LETTERS))
    return sum(1 for c in value if c.isalpha())


def _has_digit(value: str) -> bool:
    if value.isascii():
        return _ASCII_DIGIT.search(value) is not None
    return any(c.isdigit() for c in value)


_UUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
_GIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_DIGEST = re.compile(r"(?:^|[@:/])(?:sha256|sha384|sha512|sha1|md5)[:=][0-9a-fA-F]{32,}", re.I)
_PATH = re.compile(r"^(?:~|\.{1,2})?(?:/[\w.@+-]+)+/?$|^[\w.-]+(?:/[\w.-]+)*\.[A-Za-z][\w]{0,5}$")
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,12}\.?(?::[0-9]{1,5})?$")
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(?:\.[\w-]+)+$")
_URL_NO_CREDS = re.compile(r"^[a-z][a-z0-9+.-]*://[^\s@]*$", re.I)
_VERSION = re.compile(r"^v?[0-9]+(?:\.[0-9]+){1,3}(?:[-+][\w.-]*)?$")
_NUMBER = re.compile(r"^[+-]?[0-9]+(?:\.[0-9]+)?$")
_PUBLIC_MATERIAL = re.compile(
    r"-----BEGIN (?:CERTIFICATE|PUBLIC KEY|RSA PUBLIC KEY|X509 CRL|CERTIFICATE REQUEST|NEW CERTIFICATE REQUEST|PGP PUBLIC KEY BLOCK)"
    r"|^(?:ssh-(?:rsa|ed25519|dss)|ecdsa-sha2-nistp\d+|sk-(?:ssh|ecdsa)-[\w@.-]+) AAAA"
    r"|^age1[02-9ac-hj-np-z]{58}$"
    r"|^LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"  # base64 of -----BEGIN CERTIFICATE-----
    r"|^LS0tLS1CRUdJTiBQVUJMSUMgS0VZLS0tLS"  # base64 of -----BEGIN PUBLIC KEY-----
    r"|^MII[A-Za-z0-9+/]{1,3}CCA"  # DER certificate (SEQUENCE { SEQUENCE { ...)
    r"|^pk_(?:live|test)_[A-Za-z0-9]{16,}$",  # Stripe publishable key: public by design
)


# ------------------------------------------------------ formats that are not secrets
# Written from the formats' own definitions, so that a value is recognised by its
# structure rather than by looking random or not.

# Subresource Integrity (W3C SRI): sha256/384/512 + '-' + the digest in base64, whose
# length is fixed by the hash: 32, 48, 64 bytes -> 44, 64, 88 characters with padding.
_SRI = re.compile(
    r"^(?:sha256-[A-Za-z0-9+/]{43}=|sha384-[A-Za-z0-9+/]{64}|sha512-[A-Za-z0-9+/]{86}==)$"
)
# Go module checksums (go.sum): h1: + base64 of a SHA-256 (32 bytes -> 44 characters).
_GO_SUM = re.compile(r"^h1:[A-Za-z0-9+/]{43}=$")
# W3C Trace Context traceparent: version-traceid(32 hex)-parentid(16 hex)-flags.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
# ULID: 26 Crockford base32 characters, 48-bit millisecond time first (so 0-7 first).
_ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ULID_EARLIEST_MS = 1_420_070_400_000  # 2015-01-01: ULIDs were specified in 2016
_ULID_LATEST_MS = 2_208_988_800_000  # 2040-01-01
# Names Kubernetes generates: a ReplicaSet's pod-template hash and the 5-character
# suffix of generateName, both from the alphabet of its rand.String (no vowels, no
# 0/1/3 that could spell words): `web-7d4b9c8f6-x2k9p`, `job-x2k9p`.
_K8S_RAND = "bcdfghjklmnpqrstvwxz2456789"
_GENERATED_NAME = re.compile(
    rf"^[a-z0-9](?:[a-z0-9-]{{0,200}}[a-z0-9])?(?:-[{_K8S_RAND}]{{5,10}})?-[{_K8S_RAND}]{{5}}$"
)
# An auth scheme with no credential after it.
_SCHEME_WORDS = frozenset({"bearer", "basic", "token", "digest", "negotiate", "apikey", "api-key"})


def is_trace_context(value: str) -> bool:
    """A W3C traceparent (its fixed layout is no vendor's key format)."""
    return len(value) == 55 and _TRACEPARENT.match(value) is not None


def _ulid_time_is_plausible(value: str) -> bool:
    ms = 0
    for c in value[:10]:
        ms = ms * 32 + _CROCKFORD.index(c)
    return _ULID_EARLIEST_MS <= ms <= _ULID_LATEST_MS


def is_known_format(value: str) -> bool:
    """A value whose format says what it is, and that is not a credential: a content
    hash (SRI, go.sum), a trace context, a ULID, a name Kubernetes generated, a bare
    auth scheme word."""
    if value.lower() in _SCHEME_WORDS:
        return True
    head = value[:7]
    if head.startswith("sha") and _SRI.match(value):
        return True
    if head.startswith("h1:"):
        return _GO_SUM.match(value) is not None
    if is_trace_context(value):
        return True
    if len(value) == 26 and _ULID.match(value):
        return _ulid_time_is_plausible(value)
    return "-" in value and _GENERATED_NAME.match(value) is not None


def is_benign(value: str) -> bool:
    """A kind of value that is never a credential on its own."""
    return (
        value.lower() in _BOOLEAN_LIKE
        or is_known_format(value)
        or _NUMBER.match(value) is not None
        or _UUID.match(value) is not None
        or _GIT_SHA.match(value) is not None
        or _DIGEST.search(value) is not None
        or _PATH.match(value) is not None
        or _HOST.match(value) is not None
        or _EMAIL.match(value) is not None
        or _URL_NO_CREDS.match(value) is not None
        or _VERSION.match(value) is not None
        or _PUBLIC_MATERIAL.search(value) is not None
    )


_SEGMENT_SPLIT = re.compile(r"[-_.:/ @+,]+")
# camelCase or PascalCase words (`fooBar`, `FooBar`), or an upper-case run then words
# (`HTTPServer`). Written so that no character can be matched two ways: the obvious
# `^(?:[A-Z]?[a-z]+)+$` backtracks exponentially on `aaaa...aaBB`.
_CAMEL_WORDS = re.compile(r"^[a-z]*(?:[A-Z][a-z]+)*$|^[A-Z]+(?:[a-z]+(?:[A-Z][a-z]+)*)?$")
_DELETE_VOWELS = str.maketrans("", "", "aeiouyAEIOUY")
_CONSONANT_RUN = re.compile(r"[^aeiouyAEIOUY]{5}")


def _wordy(segment: str) -> bool:
    if not segment:
        return True
    if segment.isdigit():
        return len(segment) <= 10
    if segment.isalpha():
        if not _CAMEL_WORDS.match(segment):
            return False
        if len(segment) <= 8:
            return True
        vowels = len(segment) - len(segment.translate(_DELETE_VOWELS))
        if vowels / len(segment) < 0.25:
            return False
        return _CONSONANT_RUN.search(segment) is None  # no run of 5 or more consonants
    if len(segment) <= 5:
        return True
    # A word and a number ("Gost28147", "hunter2"): at most one letter/digit switch.
    runs = _ALNUM_RUNS.findall(segment)
    return len(runs) == 2 and all(r.isdigit() or _wordy(r) for r in runs)


_ALNUM_RUNS = re.compile(r"[A-Za-z]+|[0-9]+")


def is_identifier_like(value: str) -> bool:
    """Made of words, short numbers and short codes: `SalesResults-1.2`, `K8S_CRED`."""
    return all(_wordy(s) for s in _SEGMENT_SPLIT.split(value))


# ------------------------------------------------------------------------ entropy


def shannon_entropy(value: str) -> float:
    """Bits per character: log2(n) - sum(c * log2(c)) / n over the character counts c
    (the same sum as -sum(p * log2(p)), with c * log2(c) from a table: no per-character
    or per-count Python arithmetic)."""
    n = len(value)
    if n == 0:
        return 0.0
    counts = Counter(value).values()
    if n < len(_C_LOG_C):
        total = sum(map(_C_LOG_C.__getitem__, counts))
    else:
        total = sum(c * math.log2(c) for c in counts)
    return max(0.0, math.log2(n) - total / n)


_C_LOG_C = [0.0] + [c * math.log2(c) for c in range(1, 8193)]


_B64_TEXT = re.compile(r"^[A-Za-z0-9+/_-]+={0,2}$")


def decodes_to_document(value: str) -> bool:
    """Base64 of readable structured text (JSON, YAML, prose): encoded configuration,
    not a key. A base64 user:password (no spaces, no structure) does not count."""
    if len(value) < 16 or not _B64_TEXT.match(value):
        return False
    padded = value + "=" * (-len(value) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    if not text.isprintable() and not all(c.isprintable() or c in "\n\r\t" for c in text):
        return False
    return text.lstrip()[:1] in ("{", "[") or text.count(" ") >= 2 or "\n" in text
