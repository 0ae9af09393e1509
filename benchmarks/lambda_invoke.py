"""lambda-invoke: the local Lambda runtime's overhead per invocation, warm and cold.

Warm figures use a handler that does nothing: RequestResponse is the full round trip to a
warm worker process; Event (asynchronous, what rule actions use) is the time from
``invoke_async`` until the handler starts. Cold start is the first invocation of a freshly
started function (a new worker process importing the handler). The baseline, timed in the
same run, is a bare JSON line echoed by a Python child process over pipes: the floor for any
runtime that isolates functions in their own processes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infra.local.lambda_runtime import LambdaRuntime
from lambdas.manifest import Manifest

from . import _harness as h

NAME = "lambda-invoke"
_ECHO = "import sys\nfor line in sys.stdin:\n    sys.stdout.write(line)\n    sys.stdout.flush()\n"


def _pipe_echo_ns(count: int) -> list[int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    samples = []
    try:
        for i in range(count):
            line = json.dumps({"event": {"n": i}}).encode() + b"\n"
            start = time.monotonic_ns()
            proc.stdin.write(line)
            proc.stdin.flush()
            proc.stdout.readline()
            samples.append(time.monotonic_ns() - start)
    finally:
        proc.stdin.close()
        proc.wait(5)
    return samples


async def _measure(workdir: Path, count: int, cold_starts: int) -> dict[str, Any]:
    latency_file = workdir / "async-latency.txt"
    functions = [
        {"name": "noop", "handler": "benchmarks.lambda_handlers.noop"},
        {
            "name": "record",
            "handler": "benchmarks.lambda_handlers.record_start",
            "environment": {"LATENCY_FILE": str(latency_file)},
            "reservedConcurrency": 1,
        },
    ]
    functions += [
        {"name": f"cold{i}", "handler": "benchmarks.lambda_handlers.noop"}
        for i in range(cold_starts)
    ]
    runtime = LambdaRuntime(Manifest.from_dict({"functions": functions}), workdir / "state", {})
    await runtime.start()
    try:
        cold = []
        for i in range(cold_starts):
            start = time.monotonic_ns()
            result = await runtime.invoke(f"cold{i}", {"n": i})
            cold.append(time.monotonic_ns() - start)
            assert result.ok and result.cold, result
        await runtime.invoke("noop", {})  # warm the worker
        warm = []
        for i in range(count):
            start = time.monotonic_ns()
            result = await runtime.invoke("noop", {"n": i})
            warm.append(time.monotonic_ns() - start)
            assert result.ok
        await runtime.invoke("record", {"sent": time.monotonic_ns()})  # warm, not counted
        latency_file.unlink(missing_ok=True)
        for _ in range(count):
            runtime.invoke_async("record", {"sent": time.monotonic_ns()})
            await asyncio.sleep(0.002)  # a steady trickle, not a burst that measures queueing
        await runtime.drain(60)
        async_ns = [int(x) for x in latency_file.read_text().split()]
    finally:
        await runtime.stop()
    return {"warm": warm, "async": async_ns, "cold": cold}


def measure(count: int, cold_starts: int) -> list[dict[str, Any]]:
    with h.temp_dir("lambda-invoke") as workdir:
        samples = asyncio.run(_measure(workdir, count, cold_starts))
    pipe = _pipe_echo_ns(count)
    base_p50 = h.percentile(pipe, 50) / 1e6
    params = {"invocations": count, "handler": "no-op"}
    lines = []
    for key, metric in (("warm", "request_response"), ("async", "event_to_handler_start")):
        for pct_name, pct in (("p50", 50.0), ("p99", 99.0)):
            value = h.percentile(samples[key], pct) / 1e6
            baseline = h.percentile(pipe, pct) / 1e6
            lines.append(
                {
                    "name": NAME,
                    "metric": f"{metric}_{pct_name}",
                    "unit": "ms",
                    **params,
                    "value": round(value, 5),
                    "baseline": round(baseline, 5),
                    "baseline_name": "JSON line echoed by a child process over pipes",
                    "ratio": h.ratio(value, baseline),
                    "target": "p50 <= 5 ms" if (key, pct_name) == ("async", "p50") else None,
                }
            )
    cold_p50 = h.percentile(samples["cold"], 50) / 1e6
    lines.append(
        {
            "name": NAME,
            "metric": "cold_start_p50",
            "unit": "ms",
            "cold_starts": cold_starts,
            "value": round(cold_p50, 5),
            "baseline": round(base_p50, 5),
            "baseline_name": "JSON line echoed by a child process over pipes (warm)",
            "ratio": h.ratio(cold_p50, base_p50),
        }
    )
    return lines


def run(quick: bool = False) -> list[dict[str, Any]]:
    return measure(count=200 if quick else 2000, cold_starts=3 if quick else 10)
