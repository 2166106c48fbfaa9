"""Values whose format says they are not secrets (issue 13): recognised by structure,
with test values generated here from the formats (never from the corpus)."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest

from tests.support.secrets_testkit import make_token
from webhook.secrets import scan_value
from webhook.secrets.allow import is_known_format

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
K8S_RAND = "bcdfghjklmnpqrstvwxz2456789"


def sri(algorithm: str, data: bytes) -> str:
    digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode()}"


def go_sum(data: bytes) -> str:
    return "h1:" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def ulid(ms: int, seed: int) -> str:
    rng = random.Random(seed)
    head = ""
    for _ in range(10):
        head = CROCKFORD[ms % 32] + head
        ms //= 32
    return head + "".join(rng.choices(CROCKFORD, k=16))


def generated_name(base: str, seed: int, with_hash: bool = True) -> str:
    rng = random.Random(seed)
    parts = [base]
    if with_hash:
        parts.append("".join(rng.choices(K8S_RAND, k=rng.randrange(5, 11))))
    parts.append("".join(rng.choices(K8S_RAND, k=5)))
    return "-".join(parts)


def traceparent(seed: int) -> str:
    rng = random.Random(seed)
    return f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"


NOT_SECRETS = [
    *(sri(a, f"bundle-{i}.js".encode()) for a in ("sha256", "sha384", "sha512") for i in range(3)),
    *(go_sum(f"module v1.{i}.0".encode()) for i in range(3)),
    *(traceparent(i) for i in range(3)),
    *(ulid(1_750_000_000_000 - i * 86_400_000, i) for i in range(3)),
    *(generated_name(b, i) for i, b in enumerate(["web", "api-gateway", "worker"])),
    *(generated_name(b, i, with_hash=False) for i, b in enumerate(["backup-job", "migrate"])),
    "Bearer",
    "Basic",
    "Token",
]


@pytest.mark.parametrize("value", NOT_SECRETS)
@pytest.mark.parametrize("name", ["SETTING_7", "APP_CONFIG_VALUE", "AUTH_TOKEN", "Authorization"])
def test_known_format_is_not_reported(value: str, name: str) -> None:
    assert is_known_format(value)
    assert scan_value(value, name) == [], (value, name)


@pytest.mark.parametrize(
    "value",
    [
        "set-me-in-vault",
        "REPLACE_ME",
        "TODO_set_in_vault",
        "fill-in-later",
        "<your-api-token>",
        "changeme",
        "${API_TOKEN}",
        "$(API_TOKEN)",
        "{{ .Values.token }}",
        "xxxxxxxxxxxxxxxx",
    ],
)
def test_placeholders_under_credential_names(value: str) -> None:
    assert scan_value(value, "API_TOKEN") == []


@pytest.mark.parametrize(
    "value",
    [
        make_token("{an:26}", "not-ulid"),  # 26 random letters and digits, lower case in it
        ulid(32**10 - 1, 5),  # ULID-shaped, time far in the future: not recognised
        make_token("sha256-{b64:40}", "short"),  # SRI prefix with the wrong length
        make_token("h1:{b64:40}", "h1short"),
        make_token("{h:32}", "hex"),  # a bare 32-hex value is no trace id without its name
    ],
)
def test_look_alikes_are_not_recognised(value: str) -> None:
    assert not is_known_format(value)


def test_secrets_under_the_same_names_are_still_found() -> None:
    password = make_token("{an:14}{d:2}", "pw")
    assert scan_value(password, "AUTH_TOKEN")
    assert scan_value("Bearer " + make_token("{b:40}", "bearer"), None)
    assert scan_value(make_token("ghp_{an:36}", "gh"), "SETTING_7")


def test_trace_ids_by_name() -> None:
    rng = random.Random(1)
    trace_id = f"{rng.getrandbits(128):032x}"
    span_id = f"{rng.getrandbits(64):016x}"
    assert scan_value(trace_id, "TRACE_ID") == []
    assert scan_value(trace_id, "OTEL_TRACE") == []
    assert scan_value(span_id + span_id, "SPAN") == []
