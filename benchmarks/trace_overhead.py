"""trace-overhead: what the trace log (docs/tracing.md) costs the stack per message.

Room messages at 500 msg/s cross the chat's room rule (chat/out -> republish -> ten subscribers
on chat/pub/<room>) on one ``iotchat up``, then on a second one started with ``--no-trace``,
the baseline, in the same run. Each traced message writes three entries (its Publish-In, the
rule's match, the republish) plus the republished copy's Publish-In. Reported: the stack
process's CPU per message and the p99 latency, traced / untraced.
"""

from __future__ import annotations

import os
from typing import Any

from tests.support.stack_files import write_rules

from . import _harness as h
from .gateway_latency import RATE, SUBSCRIBERS, latency_once
from .rules_republish_latency import ROOM_RULE

NAME = "trace-overhead"


def _run(workdir: Any, rules_dir: Any, seconds: float, traced: bool) -> tuple[float, float]:
    """(stack CPU seconds per message, p99 latency in ms) for one stack."""
    extra = ["--rules-dir", str(rules_dir)] + ([] if traced else ["--no-trace"])
    run_dir = workdir / ("traced" if traced else "untraced")
    run_dir.mkdir()
    with h.gateway(run_dir, extra=extra) as gw:
        latency_once(gw, run_dir, seconds=1, through_rule=True)  # warm-up
        before = gw.cpu_seconds()
        result = latency_once(gw, run_dir, seconds=seconds, through_rule=True)
        cpu = gw.cpu_seconds() - before
    messages = max(1, result["expected"] // SUBSCRIBERS)
    return cpu / messages, h.percentile(result["latencies_ns"], 99) / 1e6


def measure(*, seconds: float) -> list[dict[str, Any]]:
    load = round(os.getloadavg()[0], 2)
    with h.temp_dir("trace-overhead") as workdir:
        rules_dir = write_rules(workdir, {"RoomRepublish": ROOM_RULE})
        cpu_off, p99_off = _run(workdir, rules_dir, seconds, traced=False)
        cpu_on, p99_on = _run(workdir, rules_dir, seconds, traced=True)
    params = {"rate_per_s": RATE, "subscribers": SUBSCRIBERS, "seconds": seconds}
    params["loadavg_1m"] = load
    baseline = "the same stack with --no-trace, same run"
    return [
        {
            "name": NAME,
            "metric": "stack_cpu_per_message",
            "unit": "us",
            **params,
            "value": round(cpu_on * 1e6, 1),
            "baseline": round(cpu_off * 1e6, 1),
            "baseline_name": baseline,
            "ratio": h.ratio(cpu_on, cpu_off),
        },
        {
            "name": NAME,
            "metric": "p99",
            "unit": "ms",
            **params,
            "value": round(p99_on, 3),
            "baseline": round(p99_off, 3),
            "baseline_name": baseline,
            "ratio": h.ratio(p99_on, p99_off),
        },
    ]


def run(quick: bool = False) -> list[dict[str, Any]]:
    return measure(seconds=3 if quick else 10)
