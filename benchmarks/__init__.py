"""Benchmarks, each a module with ``run(quick: bool) -> list[dict]`` printing JSON lines."""

from __future__ import annotations

import importlib
import json
import sys

BENCHMARKS = {
    "gateway-fanout": "benchmarks.gateway_fanout",
    "gateway-latency": "benchmarks.gateway_latency",
    "gateway-connections": "benchmarks.gateway_connections",
}


def run_benchmark(name: str, *, quick: bool = False) -> int:
    names = list(BENCHMARKS) if name == "all" else [name]
    for bench in names:
        if bench not in BENCHMARKS:
            print(f"unknown benchmark {bench!r}; known: {', '.join(BENCHMARKS)}", file=sys.stderr)
            return 2
        module = importlib.import_module(BENCHMARKS[bench])
        for result in module.run(quick=quick):
            print(json.dumps(result), flush=True)
    return 0
