"""The scan is linear in its input, whatever the input holds: proven by counting work.

Nothing here is timed. `webhook.secrets.work` counts every pass the scanner makes over a
piece of text and the characters it was given; for each hostile shape the count at 4x
the size must stay within 4.4x (a quadratic pass gives 16x). Each shape is one that
made a pass of the old scanner rescan the rest of the value from every occurrence of
something: `=` starting an assignment, `{{` opening a reference, `://`, `sk-`...
The predicates rewritten for speed are checked against their plain definitions."""

from __future__ import annotations

import random
import re
import string
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from webhook.secrets import UNLIMITED, ScanConfig, scan
from webhook.secrets.allow import _sequential_fraction_loop, is_identifier_like, sequential_fraction
from webhook.secrets.work import Work, counting

SIZES = (16384, 65536)  # the larger is 4x the smaller; both above MAX_TOKEN
GROWTH = 4.4  # allowed growth of the work for 4x the input (linear: 4, quadratic: 16)
B64 = string.ascii_letters + string.digits


def _random(alphabet: str, n: int, seed: str) -> str:
    return "".join(random.Random(seed).choices(alphabet, k=n))


def _repeat(unit: str, n: int) -> str:
    return (unit * (n // len(unit) + 1))[:n]


def configmap(value: str, key: str = "payload") -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {key: value}}


def pod_env(n: int) -> dict[str, Any]:
    env = [{"name": f"SETTING_{i}", "value": _random(B64, 20, f"env{i}")} for i in range(n // 40)]
    return {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"env": env}]}}


def deep(n: int) -> dict[str, Any]:
    """Trees 50 levels deep, as many as the size asks for."""

    def tree(seed: int) -> Any:
        node: Any = _random(B64, 20, f"leaf{seed}")
        for i in range(50):
            node = {f"k{i % 7}": node, "s": "plain words"}
        return node

    trees = [tree(i) for i in range(n // 1024)]
    return {
        "kind": "Workflow",
        "metadata": {"name": "w"},
        "spec": {"templates": [{"name": "t", "plugin": {"deep": trees}}]},
    }


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "random base64 with +/=": lambda n: configmap(_random(B64 + "+/=", n, "a")),
    "random base64 with =": lambda n: configmap(_random(B64 + "=", n, "b")),
    "hex": lambda n: configmap(_random("0123456789abcdef", n, "c")),
    "key=key=...": lambda n: configmap(_repeat("key=", n)),
    "password=<long blob>": lambda n: configmap("password=" + _random(B64, n, "d")),
    "token: {{ {{ {{ ...": lambda n: configmap("token: " + _repeat("{{", n)),
    "secret=${${${...": lambda n: configmap("secret=" + _repeat("${", n)),
    "ABSK/ABSK/...": lambda n: configmap(_repeat("ABSK/", n)),
    "sk-...-sk-...T3BlbkFJ": lambda n: configmap(_repeat("sk-" + "a" * 17 + "-", n) + "T3BlbkFJ"),
    "x://u:p x://u:p ...": lambda n: configmap(_repeat("x://u:p", n)),
    "Bearer <long>": lambda n: configmap("Authorization: Bearer " + _random(B64, n, "e")),
    "authorization=authorization=...": lambda n: configmap(_repeat("authorization=", n)),
    "PEM headers": lambda n: configmap(_repeat("-----BEGIN PRIVATE KEY-----A:B", n)),
    "PuTTY headers": lambda n: configmap(_repeat("PuTTY-User-Key-File-2:x", n)),
    "eyJ.eyJ.=eyJ": lambda n: configmap(_repeat("eyJaaaaaaaaaaaa.eyJaaaaaaaaaaaa.=", n)),
    "many env entries": pod_env,
    "deep nesting": deep,
}


# Without the scan limits (`limits.py`): they cap the work outright, which would hide a
# pass that grows too fast; the limits have their own tests (test_limits.py).
WHOLE_SCAN = ScanConfig(limits=UNLIMITED)


def work_for(obj: dict[str, Any]) -> Work:
    with counting() as work:
        scan(obj, config=WHOLE_SCAN)
    return work


@pytest.mark.parametrize("shape", list(SHAPES))
def test_work_grows_linearly(shape: str) -> None:
    small, large = (work_for(SHAPES[shape](n)) for n in SIZES)
    assert small.chars > 0 and small.passes > 0, "the scan did nothing: counting is broken"
    ratio = SIZES[1] / SIZES[0]
    assert large.chars <= GROWTH / 4 * ratio * small.chars, (shape, small, large)
    assert large.passes <= GROWTH / 4 * ratio * small.passes + 8, (shape, small, large)


def test_counting_sees_a_quadratic_pass() -> None:
    """The measure can fail: a pass that rescans the rest of a value from every
    occurrence (as the old assignment parser did) shows as ~16x for 4x the input."""
    from webhook.secrets.work import tally

    def quadratic(text: str) -> None:
        for i in range(0, len(text), 4):
            tally(len(text) - i)

    counts = []
    for n in SIZES:
        with counting() as work:
            quadratic("x" * n)
        counts.append(work.chars)
    assert counts[1] > 10 * counts[0]


def test_long_candidate_is_judged_on_a_prefix_and_says_so() -> None:
    value = "password=" + _random(B64, 10_000, "long")
    findings = scan(configmap(value, "app.conf"))
    assert [f.rule for f in findings] == ["credential-assignment"]
    assert "judged on its first 4096" in findings[0].message
    assert value[9:40] not in findings[0].message


def test_long_blob_is_scanned_through_to_its_end() -> None:
    """A token in the middle or at the end of a 1 MiB blob is still found."""
    token = "ghp_" + _random(B64, 36, "gh")
    blob = _random(B64 + "+/", 512 * 1024, "x") + "," + token + "," + _random(B64, 512 * 1024, "y")
    assert [f.rule for f in scan(configmap(blob))] == ["github-token"]


# ------------------------------------------------------ predicates against definitions

_CAMEL_DEFINITION = re.compile(r"^(?:[A-Z]?[a-z]+)+$|^[A-Z]+(?:[A-Z][a-z]+)*$")


def test_sequential_fraction_is_the_per_character_definition() -> None:
    rng = random.Random(3)
    alphabets = ["abcd", "0123456789", "aAbB01", "xyz{|}~", "@ABC`abc/01", B64 + "+/="]
    for _ in range(4000):
        alphabet = rng.choice(alphabets)
        value = "".join(rng.choices(alphabet, k=rng.randrange(4, 200)))
        assert sequential_fraction(value) == _sequential_fraction_loop(value), value


def test_identifier_words_are_the_camel_case_definition() -> None:
    from webhook.secrets.allow import _CAMEL_WORDS

    rng = random.Random(4)
    for _ in range(20000):
        value = "".join(rng.choices("aBcD", k=rng.randrange(1, 14)))
        expected = _CAMEL_DEFINITION.match(value) is not None
        assert (_CAMEL_WORDS.match(value) is not None) is expected, value


def test_identifier_check_does_not_backtrack() -> None:
    """`aaaa...aaBB` took exponential time in the old camel-case regex (40 letters:
    minutes). Run in a child process, so a regression fails on the timeout, not hangs."""
    code = (
        "from webhook.secrets.allow import is_identifier_like\n"
        "from webhook.secrets import scan_value\n"
        "for n in (40, 400, 4000):\n"
        "    is_identifier_like('xkqjzmwvprtlnbgdfhsy' * (n // 20) + 'BB')\n"
        "    scan_value('xkqjzmwvprtlnbgdfhsy' * (n // 20) + 'BB-1234', 'SETTING')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert is_identifier_like("SalesResults-1.2")
