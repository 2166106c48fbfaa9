"""Benchmark: HTTP `successCondition` evaluation (run by hand).

    .venv/bin/python bench/success_condition.py [--rounds 5] [--number 2000]

For three conditions of the forms people write (a status code; a status range and a
content type; a JSON body with a predicate), per evaluation: compile + evaluate (what
the agent does per task: `evaluate_bool`) and evaluate only (a compiled program), next
to a baseline in the same run: the same test written as Python code over the same
dicts. Medians over rounds; the machine is shared, so compare within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webhook.expression import (
    NIL_STRINGS,
    GoMap,
    StringList,
    compile_expression,
    evaluate_bool,
)

ENV: dict[str, Any] = {
    "request": {
        "method": "GET",
        "url": "u",
        "body": "",
        "bodyBytes": None,
        "headers": GoMap({}, NIL_STRINGS),
    },
    "response": {
        "statusCode": 201,
        "body": '{"status": "ok", "items": [1, 2, 3]}',
        "headers": GoMap({"Content-Type": StringList(["application/json"])}, NIL_STRINGS),
    },
}
R = ENV["response"]
CASES: list[tuple[str, Callable[[], bool]]] = [
    ("response.statusCode == 201", lambda: R["statusCode"] == 201),
    (
        'response.statusCode >= 200 && response.statusCode < 300 && response.headers["Content-Type"][0] startsWith "application/json"',
        lambda: (
            200 <= R["statusCode"] < 300
            and R["headers"]["Content-Type"][0].startswith("application/json")
        ),
    ),
    (
        'fromJSON(response.body).status == "ok" && all(fromJSON(response.body).items, # > 0)',
        lambda: (
            json.loads(R["body"])["status"] == "ok"
            and all(i > 0 for i in json.loads(R["body"])["items"])
        ),
    ),
]


def per_call(function: Callable[[], Any], number: int, rounds: int) -> float:
    return statistics.median(timeit.repeat(function, number=number, repeat=rounds)) / number


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    print(f"{'chars':>5}  {'compile+eval':>13}  {'eval only':>10}  {'python baseline':>16}")
    for source, baseline in CASES:
        program = compile_expression(source, ENV)
        assert program.evaluate(ENV) is True and baseline() is True
        full = per_call(lambda s=source: evaluate_bool(s, ENV), args.number, args.rounds)
        only = per_call(lambda p=program: p.evaluate(ENV), args.number, args.rounds)
        base = per_call(baseline, args.number, args.rounds)
        print(
            f"{len(source):5d}  {full * 1e6:10.1f} us  {only * 1e6:7.1f} us  {base * 1e6:13.2f} us"
        )


if __name__ == "__main__":
    main()
