"""rules-eval: evaluations per second of the chat's republish rule, on one core, in-process.

Each evaluation is what the engine does per message: match the FROM filter, parse the JSON
payload, run WHERE (type check and room regex) and build the SELECT output, plus rendering
the ``chat/pub/${room}`` template. The baseline, timed in the same run, is the least any
evaluator must do per message: ``json.loads`` of the payload and a dict copy with two fields
added; the ratio says how much the SQL engine costs on top of that.
"""

from __future__ import annotations

import json
import time
from typing import Any

from iot_rules.sql import SqlMessage, compile_sql, compile_template

from .rules_republish_latency import ROOM_RULE

NAME = "rules-eval"


def _rate(fn: Any, seconds: float) -> float:
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(1000):
            fn()
        count += 1000
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def measure(seconds: float) -> list[dict[str, Any]]:
    statement = compile_sql(ROOM_RULE["sql"], ROOM_RULE["awsIotSqlVersion"])
    template = compile_template("chat/pub/${room}", ROOM_RULE["awsIotSqlVersion"])
    payload = json.dumps(
        {
            "type": "message",
            "id": "0b7c6a1e-2f",
            "room": "lobby",
            "body": "hello there, how is everyone today?",
        }
    ).encode()
    msg = SqlMessage(topic="chat/out", payload=payload, client_id="alice", timestamp_ms=1)
    assert statement.evaluate(msg) is not None

    def evaluate() -> None:
        if statement.matches(msg.topic):
            result = statement.evaluate(msg)
            if result is not None:
                template.render(msg)
                result.to_bytes()

    def baseline() -> None:
        body = json.loads(msg.payload)
        json.dumps({**body, "sender": msg.client_id, "ts": msg.timestamp_ms})

    rates = []
    baselines = []
    for _ in range(3):  # interleave, so drift on the machine hits both alike
        rates.append(_rate(evaluate, seconds / 3))
        baselines.append(_rate(baseline, seconds / 3))
    value, base = sorted(rates)[1], sorted(baselines)[1]
    return [
        {
            "name": NAME,
            "metric": "evaluations_per_s",
            "unit": "1/s",
            "value": round(value),
            "baseline": round(base),
            "baseline_name": "json.loads + dict copy + json.dumps",
            "ratio": round(value / base, 3),
            "target": ">= 50000",
            "rule": ROOM_RULE["sql"],
        }
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return measure(1.5 if quick else 6.0)
