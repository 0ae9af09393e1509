"""Benchmarks, each a module with ``run(quick: bool) -> list[dict]`` printing JSON lines."""

from __future__ import annotations

import importlib
import json
import signal
import sys

BENCHMARKS = {
    "gateway-fanout": "benchmarks.gateway_fanout",
    "gateway-latency": "benchmarks.gateway_latency",
    "gateway-connections": "benchmarks.gateway_connections",
    "rules-eval": "benchmarks.rules_eval",
    "rules-republish-latency": "benchmarks.rules_republish_latency",
    "lambda-invoke": "benchmarks.lambda_invoke",
    "authz": "benchmarks.authz",
    "sigv4-connect": "benchmarks.sigv4_connect",
    "store-latency": "benchmarks.store_latency",
    "history-scaling": "benchmarks.history_scaling",
    "reliability": "benchmarks.reliability",
}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so every benchmark's cleanup (finally blocks) runs on SIGTERM too


def run_benchmark(name: str, *, quick: bool = False) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    names = list(BENCHMARKS) if name == "all" else [name]
    for bench in names:
        if bench not in BENCHMARKS:
            print(f"unknown benchmark {bench!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        module = importlib.import_module(BENCHMARKS[bench])
        for result in module.run(quick=quick):
            print(json.dumps(result), flush=True)
    return 0
