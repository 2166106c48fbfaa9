"""Structural rules, name-plus-value, the allow list and the entropy fallback, each with
positives and look-alike negatives built from the rule's definition."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from tests.support.secrets_testkit import make_token
from webhook.secrets import scan_value
from webhook.secrets.allow import Strength, name_strength


def rules_of(value: str, name: str | None = None) -> set[str]:
    return {h.rule for h in scan_value(value, name)}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def random_b64_lines(seed: int, lines: int = 12) -> str:
    rng = random.Random(seed)
    raw = bytes(rng.randrange(256) for _ in range(48 * lines))
    text = b64(raw)
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))


PASSWORD = make_token("{an:10}{d:2}", "pw")  # a generated, random-looking password


# ---------------------------------------------------------------- private keys


@pytest.mark.parametrize("kind", ["", "RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", "DSA "])
def test_pem_private_key(kind: str) -> None:
    pem = f"-----BEGIN {kind}PRIVATE KEY-----\n{random_b64_lines(1)}\n-----END {kind}PRIVATE KEY-----\n"
    assert "private-key" in rules_of(pem)
    assert "private-key" in rules_of(f"key: |\n  {pem}")  # inside a config file


def test_pem_with_rfc1421_headers() -> None:
    pem = (
        "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00FF\n\n"
        f"{random_b64_lines(2)}\n-----END RSA PRIVATE KEY-----"
    )
    assert "private-key" in rules_of(pem)


@pytest.mark.parametrize(
    "value",
    [
        "-----BEGIN PRIVATE KEY-----\nanything\n-----END PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
        f"-----BEGIN CERTIFICATE-----\n{random_b64_lines(3)}\n-----END CERTIFICATE-----",
        f"-----BEGIN PUBLIC KEY-----\n{random_b64_lines(4)}\n-----END PUBLIC KEY-----",
    ],
)
def test_pem_look_alikes(value: str) -> None:
    assert rules_of(value) == set()


def test_base64_wrapped_pem_private_key_and_not_certificate() -> None:
    key = f"-----BEGIN PRIVATE KEY-----\n{random_b64_lines(5)}\n-----END PRIVATE KEY-----\n"
    cert = f"-----BEGIN CERTIFICATE-----\n{random_b64_lines(6)}\n-----END CERTIFICATE-----\n"
    assert "private-key" in rules_of(b64(key.encode()))
    assert rules_of(b64(cert.encode())) == set()
    assert rules_of(b64(cert.encode()), "TLS_CERT") == set()


def test_ssh_public_key_and_age_recipient_are_allowed() -> None:
    pub = "ssh-ed25519 AAAA" + make_token("{b64:64}") + " user@host"
    assert rules_of(pub, "SSH_AUTHORIZED_KEY") == set()
    assert rules_of("ssh-ed25519 AAAA" + make_token("{b64:64}")) == set()


# ----------------------------------------------------------------------- JWT


def make_jwt(seed: int) -> str:
    rng = random.Random(seed)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": str(rng.randrange(10**9)), "iat": 1700000000}).encode())
    signature = b64url(bytes(rng.randrange(256) for _ in range(32)))
    return f"{header}.{payload}.{signature}"


def test_jwt() -> None:
    token = make_jwt(1)
    assert "jwt" in rules_of(token)
    assert "jwt" in rules_of(f"curl -H 'X-Id-Token: {token}' https://api.internal")


def test_jwt_header_alone_is_not_a_secret() -> None:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    assert rules_of(header) == set()


# ---------------------------------------------------------------- URL credentials


@pytest.mark.parametrize(
    "password",
    [PASSWORD, "p@ss#w/rd!" + PASSWORD[:4], "a:b" + PASSWORD, "q+r=s&" + PASSWORD[:6], "password"],
)
def test_url_credentials_including_reserved_characters(password: str) -> None:
    for scheme in ("postgres", "https", "amqp", "redis"):
        url = f"{scheme}://app:{password}@db.internal:5432/app"
        hits = scan_value(url)
        assert [h.rule for h in hits] == ["url-credentials"]
        assert url[hits[0].start : hits[0].end] == password
        assert "url-credentials" in rules_of(f"psql {url} -c 'select 1'")


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/argoproj/argo-workflows",
        "git@github.com:argoproj/argo-workflows.git",
        "https://user:${DB_PASSWORD}@db.internal/app",
        "https://user:$(DB_PASSWORD)@db.internal/app",
        "https://user:{{workflow.parameters.password}}@db.internal/app",
        "https://user:<password>@db.internal/app",
        "https://user:****@db.internal/app",
        "https://user@db.internal/app",
    ],
)
def test_url_look_alikes(url: str) -> None:
    assert rules_of(url) == set()


# ----------------------------------------------------------- Authorization headers


def test_authorization_headers_in_shell_strings() -> None:
    token = make_token("{an:40}", "bearer")
    basic = b64(f"admin:{PASSWORD}".encode())
    for script in (
        f'curl -H "Authorization: Bearer {token}" https://api.example.com',
        f"curl -H 'Authorization: Basic {basic}' https://api.example.com",
        f"wget --header=Authorization:token {token} https://api.example.com",
    ):
        assert "authorization-header" in rules_of(script), script


@pytest.mark.parametrize(
    "script",
    [
        'curl -H "Authorization: Bearer $TOKEN" https://api.example.com',
        'curl -H "Authorization: Bearer ${TOKEN}" https://api.example.com',
        'curl -H "Authorization: Bearer $(cat /var/run/argo/token)" https://x',
        'if headers.get("Authorization") != "Bearer " + token:\n    deny()',
        "Authorization: Basic <base64 of user:password>",
        "Bearer <your API token>",
        "Bearer XXXXXXXXXXXXXXXX",
    ],
)
def test_authorization_look_alikes(script: str) -> None:
    assert rules_of(script) == set()


# ------------------------------------------------------ flags and assignments


def test_flags_with_equals_in_args_and_shell() -> None:
    assert "credential-flag" in rules_of(f"--password={PASSWORD}")
    assert "credential-flag" in rules_of(f"mysql --user app --password {PASSWORD} -h db")
    assert "credential-flag" in rules_of(f"app --api-token={PASSWORD} --verbose") | rules_of(
        f"app --api-token {PASSWORD} --verbose"
    )


def test_separate_flag_value_uses_the_flag_as_name() -> None:
    assert rules_of(PASSWORD, "token") == {"named-credential"}


@pytest.mark.parametrize(
    "text",
    [
        f'DB_PASSWORD="{PASSWORD}"\nexport DB_PASSWORD',
        f"db.password={PASSWORD}\ndb.user=app",
        f'{{"client_secret": "{PASSWORD}", "client_id": "app"}}',
        f"auth:\n  password: {PASSWORD}\n  user: app\n",
        f'API_KEY = "{make_token("{an:32}")}"\nprint("hi")',
        f"Server=db;User Id=app;Password={PASSWORD};",
    ],
)
def test_assignments_in_text(text: str) -> None:
    assert "credential-assignment" in rules_of(text)


@pytest.mark.parametrize(
    "text",
    [
        'TOKEN_PATH = "/var/run/argo/token"\nPLUGIN_KEY = "hello"',
        "token = read_token()\nif token and self.headers:\n    pass",
        'password = os.environ["DB_PASSWORD"]\nsecret = get_secret("db")',
        "password: ${DB_PASSWORD}\ntoken: {{ .Values.token }}\n",
        'api_key = settings.api_key\nkey = "primary"',
        "--password-file=/etc/app/password --token-path /var/run/token",
        '{"error": "bad token", "secretName": "app-credentials"}',
        "password: changeme\napi_key: <your-api-key>\ntoken: REPLACE_ME",
        "?access_token=ACCESS_TOKEN&client_id=abc",
    ],
)
def test_assignment_look_alikes(text: str) -> None:
    assert rules_of(text) == set()


# ------------------------------------------------------------- name plus value


@pytest.mark.parametrize(
    ("name", "strength"),
    [
        ("DB_PASSWORD", Strength.STRONG),
        ("dbPass", Strength.STRONG),
        ("GITHUB_TOKEN", Strength.STRONG),
        ("sidecar.automountServiceAccountToken", Strength.STRONG),
        ("STRIPE_SECRET_KEY", Strength.STRONG),
        ("x-api-key", Strength.STRONG),
        ("NEO4J_AUTH", Strength.STRONG),
        ("CLIENT_CREDENTIALS", Strength.WEAK),
        ("SIGNING_KEY", Strength.STRONG),
        ("ENCRYPTION_KEY", Strength.STRONG),
        ("OKTA_KEY", Strength.WEAK),
        ("KMS_KEY_ID", Strength.NONE),
        ("TOKEN_URL", Strength.NONE),
        ("SECRET_NAME", Strength.NONE),
        ("PASSWORD_FILE", Strength.NONE),
        ("AUTHOR", Strength.NONE),
        ("KEYWORD", Strength.NONE),
        ("STRIPE_PUBLISHABLE_KEY", Strength.NONE),
        ("LOG_LEVEL", Strength.NONE),
    ],
)
def test_name_strength(name: str, strength: Strength) -> None:
    assert name_strength(name) is strength


def test_literal_under_credential_name() -> None:
    assert rules_of(PASSWORD, "DB_PASSWORD") == {"named-credential"}
    uuid_key = "{h:8}-{h:4}-4{h:3}-a{h:3}-{h:12}"
    assert rules_of(make_token(uuid_key), "HEROKU_API_KEY") == {"named-credential"}
    assert rules_of(make_token("{h:40}"), "SERVICE_API_KEY") == {"named-credential"}


@pytest.mark.parametrize(
    "value",
    [
        "false",
        "true",
        "3600",
        "/var/run/secrets/token",
        "${DB_PASSWORD}",
        "$(DB_PASSWORD)",
        "{{ .Values.db.password }}",
        "{{workflow.parameters.token}}",
        "{{inputs.parameters.password}}",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
        "projects/my-project/secrets/db-password/versions/latest",
        "vault:secret/data/db#password",
        "ref+vault://secret/db#/password",
        "changeme",
        "<password>",
        "xxxxxxxxxxxxxxxx",
        "YOUR_API_KEY_HERE",
        "EXAMPLEPASSWORD1",
        "**********",
        "https://vault.internal:8200",
    ],
)
def test_credential_name_with_non_literal_value(value: str) -> None:
    assert rules_of(value, "DB_PASSWORD") == set()
    assert rules_of(value, "API_TOKEN") == set()


def test_weak_name_needs_a_random_value() -> None:
    assert rules_of("SalesResults-1.2", "BUCKET_KEY") == set()
    assert rules_of("primary", "CLICKHOUSE_KEY") == set()
    assert rules_of(make_token("{an:32}"), "CLICKHOUSE_KEY") == {"named-credential"}


# -------------------------------------------------------- entropy fallback


def test_entropy_fallback_on_random_literals() -> None:
    for template in ("{an:32}", "{ld:24}", "{b64:40}"):
        assert rules_of(make_token(template), "SETTING") == {"high-entropy-string"}


@pytest.mark.parametrize(
    "value",
    [
        make_token("{h:40}"),  # git SHA
        "sha256:" + make_token("{h:64}"),
        "registry.example/app@sha256:" + make_token("{h:64}"),
        "d41d8cd9-8f00-4b20-9e98-00998ecf8427",  # UUID (v4 shape)
        "0123456789abcdefghijklmnopqrstuvwxyz",  # alphabet
        "aaaaaaaaaa1111111111bbbbbbbbbb",
        "SalesResults-2024-Q3-Final",
        "hello-executor-plugin-7x2kq",
        "registry.example.com:5000",
        "v1.27.3-rc.1+build.20240101",
        b64(b'{"auths": {"registry.example": {"email": "a@b.c"}}}'),  # base64 JSON
        "/etc/ssl/certs/ca-certificates.crt",
        "org.example.service:api-client:1.2.3",
    ],
)
def test_entropy_allow_list(value: str) -> None:
    assert rules_of(value, "SETTING") == set()


def test_entropy_skipped_for_checksum_names() -> None:
    assert rules_of(make_token("{h:64}"), "checksum/config") == set()
    assert rules_of(make_token("{an:32}"), "BUILD_REVISION") == set()


def test_entropy_can_be_disabled() -> None:
    from webhook.secrets import config_from_parameters

    config = config_from_parameters({"entropy": {"enabled": False}})
    assert scan_value(make_token("{an:32}"), "SETTING", config=config) == []


def test_short_and_empty_values() -> None:
    for value in ("", "a", "12345", "abc"):
        assert scan_value(value, "PASSWORD") == []


def test_random_password_characters() -> None:
    rng = random.Random(5)
    pw = "".join(rng.choice(string.ascii_letters + string.digits + "!@#%^&*") for _ in range(16))
    assert rules_of(pw, "ADMIN_PASSWORD") == {"named-credential"}
