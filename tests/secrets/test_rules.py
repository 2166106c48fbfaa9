"""Every value-format rule in rules.yaml, tested from its own definition: a token generated
from the documented format is found; the same shape filled with `x`, and the token glued
to a preceding word, are not. Plus rule loading and validation."""

from __future__ import annotations

import base64
import re

import pytest

from tests.support.secrets_testkit import make_token
from webhook.secrets import RuleError, ScanConfig, config_from_parameters, scan_value
from webhook.secrets.rules import RuleSet, builtin_ruleset, parse_rule

_JWT_HEADER = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k1"}').decode().rstrip("=")

# One generator template per built-in rule (the vendor's documented format).
TEMPLATES: dict[str, str] = {
    "github-token": "ghp_{an:36}",
    "github-fine-grained-pat": "github_pat_{an:22}_{an:59}",
    "gitlab-token": "glpat-{b:20}",
    "gitlab-runner-registration-token": "GR1348941{b:20}",
    "gitlab-session-cookie": "_gitlab_session={ld:32}",
    "bitbucket-app-password": "ATATT3{b:180}",
    "npm-token": "npm_{an:36}",
    "pypi-token": "pypi-AgEIcHlwaS5vcmc{b:60}",
    "rubygems-token": "rubygems_{h:48}",
    "clojars-token": "CLOJARS_{ld:60}",
    "docker-hub-pat": "dckr_pat_{b:27}",
    "artifactory-api-key": "AKCp{an:69}",
    "artifactory-reference-token": "cmVmd{an:59}",
    "octopus-deploy-api-key": "API-{ud:26}",
    "sourcegraph-token": "sgp_{h:16}_{h:40}",
    "pulumi-token": "pul-{h:40}",
    "prefect-api-key": "pnu_{an:36}",
    "readme-api-key": "rdme_{ld:70}",
    "harness-token": "pat.{b:22}.{an:24}.{an:20}",
    "scalingo-token": "tk-us-{b:48}",
    "terraform-cloud-token": "{an:14}.atlasv1.{b:67}",
    "aws-access-key-id": "AKIA{u2:16}",
    "aws-bedrock-api-key": "bedrock-api-key-{b64:40}",
    "gcp-api-key": "AIza{b:35}",
    "azure-ad-client-secret": "{an:3}8Q~{an:34}",
    "azure-storage-account-key": "AccountKey={b64:86}==",
    "alibaba-access-key-id": "LTAI{an:20}",
    "digitalocean-token": "dop_v1_{h:64}",
    "cloudflare-origin-ca-key": "v1.0-{h:24}-{h:146}",
    "flyio-token": "fo1_{b:43}",
    "heroku-api-key": "HRKU-{b:60}",
    "openshift-token": "sha256~{b:43}",
    "vault-token": "hvs.{b:90}",
    "doppler-token": "dp.pt.{an:43}",
    "yandex-token": "AQVN{b:36}",
    "dynatrace-token": "dt0c01.{ud:24}.{ud:64}",
    "databricks-token": "dapi{h:32}",
    "planetscale-token": "pscale_tkn_{b:43}",
    "grafana-token": "glsa_{an:32}_{h:8}",
    "sentry-token": "sntryu_{h:64}",
    "new-relic-key": "NRAK-{ud:27}",
    "onepassword-token": "A3-{ud:6}-{ud:11}-{ud:5}-{ud:5}-{ud:5}",
    "age-secret-key": "AGE-SECRET-KEY-1{bech:58}",
    "anthropic-api-key": "sk-ant-api03-{b:93}AA",
    "openai-api-key": "sk-proj-{b:40}T3BlbkFJ{b:40}",
    "huggingface-token": "hf_{al:34}",
    "perplexity-api-key": "pplx-{an:48}",
    "infracost-api-key": "ico-{an:32}",
    "slack-token": "xoxb-{d:12}-{d:13}-{an:24}",
    "slack-webhook-url": "https://hooks.slack.com/services/T{ud:8}/B{ud:8}/{an:24}",
    "discord-webhook-url": "https://discord.com/api/webhooks/{d:18}/{b:68}",
    "discord-bot-token": "M{b:23}.{b:6}.{b:27}",
    "telegram-bot-token": "{d:9}:AA{b:33}",
    "twilio-api-key": "SK{h:32}",
    "sendgrid-api-key": "SG.{b:22}.{b:43}",
    "sendinblue-api-key": "xkeysib-{h:64}-{an:16}",
    "mailchimp-api-key": "{h:32}-us{d:2}",
    "mailgun-api-key": "key-{h:32}",
    "postman-api-key": "PMAK-{h:24}-{h:34}",
    "linear-api-key": "lin_api_{an:40}",
    "notion-token": "ntn_{d:11}{an:35}",
    "shopify-token": "shpat_{h:32}",
    "stripe-secret-key": "sk_live_{an:24}",
    "square-token": "sq0atp-{b:22}",
    "facebook-access-token": "EAAB{an:120}",
    "facebook-app-token": "{d:15}|{b:27}",
    "shippo-token": "shippo_live_{h:40}",
    "duffel-token": "duffel_test_{b:43}",
    "easypost-api-key": "EZAK{an:54}",
    "flutterwave-key": "FLWSECK_TEST-{h:32}-X",
    "frameio-token": "fio-u-{b:64}",
    "typeform-token": "tfp_{b:59}",
    "settlemint-token": "sm_pat_{ld:16}",
    "adobe-client-secret": "p8e-{an:32}",
    "airtable-pat": "pat{an:14}.{h:64}",
    "intra42-client-secret": "s-s4t2ud-{h:64}",
    "clickhouse-cloud-key": "4b1d{an:38}",
    "maxmind-license-key": "{an:6}_{an:29}_mmk",
    "jwt": _JWT_HEADER + ".eyJ{b:40}.{b:43}",
    "plaid-token": "access-production-{h:8}-{h:4}-{h:4}-{h:4}-{h:12}",
}

RULE_IDS = [rule.id for rule in builtin_ruleset().rules]
BOUNDED = {rule.id for rule in builtin_ruleset().rules if rule.source.startswith("(?<!")}


def test_every_builtin_rule_has_a_generated_test() -> None:
    assert sorted(TEMPLATES) == sorted(RULE_IDS)


@pytest.mark.parametrize("rule_id", RULE_IDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_generated_token_is_found(rule_id: str, seed: int) -> None:
    token = make_token(TEMPLATES[rule_id], seed)
    for text in (token, f'export VALUE="{token}"\nrun --now', f"prefix={token};next=1"):
        hits = scan_value(text)
        assert rule_id in {h.rule for h in hits}, (rule_id, [h.rule for h in hits])


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_placeholder_of_the_same_shape_is_not_reported(rule_id: str) -> None:
    for fill in ("x", "X", "0"):
        placeholder = make_token(TEMPLATES[rule_id], fill=fill)
        assert scan_value(placeholder) == [], (rule_id, placeholder)
        assert scan_value(placeholder, "API_TOKEN") == [], (rule_id, placeholder)


@pytest.mark.parametrize("rule_id", sorted(BOUNDED))
def test_token_glued_to_a_word_is_not_this_rule(rule_id: str) -> None:
    token = make_token(TEMPLATES[rule_id], 7)
    assert rule_id not in {h.rule for h in scan_value("Zq9" + token)}


def test_hint_is_at_most_four_characters() -> None:
    for rule_id in RULE_IDS:
        token = make_token(TEMPLATES[rule_id], 3)
        for hit in scan_value(token):
            assert len(hit.hint.rstrip("…")) <= 4
            assert hit.hint.endswith("…")


@pytest.mark.parametrize(
    "value",
    [
        "AKIA" + "EXAMPLE" * 2 + "AB",  # documentation example keys are allowed
        "pk_live_" + make_token("{an:24}"),  # Stripe publishable key: public by design
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "xoxb-" + "1" * 12 + "-" + "2" * 13 + "-" + "#" * 24,  # redacted
        "TODAYINASIAAKIAWASDAKMOREEBBZZBOAT",  # a prefix inside a word
    ],
)
def test_look_alikes(value: str) -> None:
    assert scan_value(value) == []


def test_user_rule_from_policy_parameters() -> None:
    config = config_from_parameters(
        {
            "rules": [
                {
                    "id": "acme-key",
                    "description": "ACME key",
                    "regex": "acme_[a-z0-9]{20}",
                    "prefixes": ["acme_"],
                }
            ]
        }
    )
    token = make_token("acme_{ld:20}")
    assert [h.rule for h in scan_value(token, config=config)] == ["acme-key"]
    assert scan_value(token, config=ScanConfig()) == [] or "acme-key" not in {
        h.rule for h in scan_value(token)
    }


def test_user_rule_without_prefix_or_keyword_is_searched_everywhere() -> None:
    rule = parse_rule({"id": "zz-key", "regex": "ZZ[0-9]{12}ZZ"})
    rules = RuleSet([rule])
    found = list(rules.find("abc=ZZ" + "902871346150" + "ZZ"))
    assert [(r.id, s) for r, s, _ in found] == [("zz-key", 4)]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"id": "Bad_Id", "regex": "x"}, "kebab-case"),
        ({"id": "ok-id", "regex": "(unclosed"}, "invalid regex"),
        ({"id": "ok-id", "regex": "(?P<name>x)"}, "named groups"),
        ({"id": "ok-id", "regex": "x*"}, "empty string"),
        ({"id": "ok-id", "regex": "x", "colour": "red"}, "unknown field"),
        ({"id": "ok-id", "regex": "x", "prefixes": "x"}, "list of strings"),
    ],
)
def test_bad_rules_are_rejected_with_a_clear_message(data: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)):
        parse_rule(data)


def test_duplicate_rule_ids_are_rejected() -> None:
    rule = parse_rule({"id": "dup-rule", "regex": "x{3}"})
    with pytest.raises(RuleError, match="duplicate"):
        RuleSet([rule, rule])
