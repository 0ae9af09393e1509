"""rules-republish-latency: chat/out -> room republish rule -> chat/pub/<room>, 500 msg/s, QoS 1.

The same load as gateway-latency, but every message crosses the rules engine: a publisher
sends chat envelopes to ``chat/out``, the chat's republish rule (SQL evaluated, ``${room}``
template rendered) republishes them, and ten subscribers on ``chat/pub/<room>`` record the
end-to-end latency. The baseline, measured on the same gateway in the same run, is direct
delivery on one topic, so the ratio is the price of the rule.
"""

from __future__ import annotations

import os
from typing import Any

from tests.support.stack_files import republish, write_rules

from . import _harness as h
from .gateway_latency import RATE, SUBSCRIBERS, WARMUP_MESSAGES, latency_once

NAME = "rules-republish-latency"

ROOM_RULE: dict[str, Any] = {
    "sql": "SELECT *, clientid() AS sender, timestamp() AS ts FROM 'chat/out' "
    "WHERE type = 'message' AND regexp_matches(room, '^[A-Za-z0-9_-]{1,64}$')",
    "awsIotSqlVersion": "2016-03-23",
    "actions": [republish("chat/pub/${room}")],
}


def measure(*, seconds: float, repetitions: int = 1) -> list[dict[str, Any]]:
    load = round(os.getloadavg()[0], 2)
    pooled: dict[str, list[int]] = {"rule": [], "direct": []}
    received: dict[str, list[float]] = {"rule": [], "direct": []}
    with h.temp_dir("rules-latency") as workdir:
        rules_dir = write_rules(workdir, {"RoomRepublish": ROOM_RULE})
        with h.gateway(workdir, extra=["--rules-dir", str(rules_dir)]) as gw:
            for _ in range(repetitions):
                for mode in ("direct", "rule"):
                    result = latency_once(gw, workdir, seconds=seconds, through_rule=mode == "rule")
                    pooled[mode] += result["latencies_ns"]
                    received[mode].append(result["received"] / result["expected"])
    for mode, samples in pooled.items():
        if not samples:
            raise h.BenchmarkError(f"no latency samples for {mode}")
    params = {
        "qos": 1,
        "subscribers": SUBSCRIBERS,
        "rate_per_s": RATE,
        "seconds": seconds,
        "warmup_messages": WARMUP_MESSAGES,
        "repetitions": repetitions,
        "loadavg_1m": load,
    }
    counts = {
        "samples_count": len(pooled["rule"]),
        "delivered_fraction": round(min(received["rule"]), 4),
        "baseline_delivered_fraction": round(min(received["direct"]), 4),
    }
    return h.latency_lines(
        NAME,
        params,
        pooled["rule"],
        pooled["direct"],
        "direct delivery on the same gateway",
        lambda metric: {**counts, "target": "p99 <= 10 ms" if metric == "p99" else None},
    )


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(seconds=3)
    return measure(seconds=10, repetitions=2)
