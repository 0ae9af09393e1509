"""Benchmarks, each a module with ``run(quick: bool) -> list[dict]`` printing JSON lines.

``iotchat bench all`` runs every one, keeps going past a failure, and writes the results file,
plots and the generated section of docs/performance.md (see :mod:`benchmarks.report`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

BENCHMARKS = {
    "gateway-fanout": "benchmarks.gateway_fanout",
    "gateway-latency": "benchmarks.gateway_latency",
    "gateway-connections": "benchmarks.gateway_connections",
    "rules-eval": "benchmarks.rules_eval",
    "rules-republish-latency": "benchmarks.rules_republish_latency",
    "trace-overhead": "benchmarks.trace_overhead",
    "lambda-invoke": "benchmarks.lambda_invoke",
    "authz": "benchmarks.authz",
    "sigv4-connect": "benchmarks.sigv4_connect",
    "store-latency": "benchmarks.store_latency",
    "chat-throughput": "benchmarks.chat_throughput",
    "history-scaling": "benchmarks.history_scaling",
    "reliability": "benchmarks.reliability",
}

# Benchmarks ``bench all --quick`` leaves out, with the reason it prints. Empty: measured on a
# 2-core machine, every quick mode together takes ~3 min (reliability ~50 s of it), well
# inside the 10-minute budget.
QUICK_SKIP: dict[str, str] = {}
# ``bench all --quick`` must end within 10 minutes even if a benchmark hangs (a deadlocked
# client, a stack that never answers): each one may use what is left of this budget.
QUICK_BUDGET_SECONDS = 540.0


class TimeLimit(BaseException):
    """Raised in a benchmark that outlives the quick budget. A BaseException, like Ctrl-C, so
    a benchmark's own ``except Exception`` cannot swallow it and its ``finally`` blocks run."""


def _time_limit(signum: int, frame: object) -> None:
    raise TimeLimit


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so every benchmark's cleanup (finally blocks) runs on SIGTERM too


def run_benchmark(name: str, *, quick: bool = False) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    if name == "all":
        return run_all(quick=quick)
    if name not in BENCHMARKS:
        print(f"unknown benchmark {name!r}; known: all, {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[name])
    for result in module.run(quick=quick):
        print(json.dumps(result), flush=True)
    return 0


def _note(text: str) -> None:
    print(f"bench all: {text}", file=sys.stderr, flush=True)


def _failure(lines: list[dict[str, Any]]) -> str | None:
    """A benchmark that reports a failed part in its lines (reliability's scenarios do)."""
    failed = [x for x in lines if x.get("error")]
    if not failed:
        return None
    return "; ".join(f"{x.get('scenario') or x.get('metric') or '?'}: {x['error']}" for x in failed)


def run_one(
    name: str, module_name: str, *, quick: bool, limit: float | None = None
) -> dict[str, Any]:
    """Run one benchmark for ``bench all``: its lines, duration and status, never raising.

    ``limit``: seconds it may take (SIGALRM, so only from the main thread); ``<= 0``: skip it.
    """
    entry: dict[str, Any] = {"name": name, "status": "ok", "seconds": 0.0, "lines": []}
    if limit is not None and limit <= 0:
        entry.update(status="skipped", note="no time left in the quick run's budget")
        _note(f"{name} skipped: no time left in the quick run's budget")
        return entry
    if quick and name in QUICK_SKIP:
        entry.update(status="skipped", note=QUICK_SKIP[name])
        _note(f"{name} skipped: {QUICK_SKIP[name]}")
        return entry
    if importlib.util.find_spec(module_name) is None:
        entry.update(status="skipped", note=f"module {module_name} not found")
        _note(f"{name} skipped: module {module_name} not found")
        return entry
    _note(f"{name} ...")
    began = time.monotonic()
    timed = limit is not None and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGALRM, _time_limit) if timed else None
    outer = signal.getitimer(signal.ITIMER_REAL)[0] if timed else 0.0  # e.g. a test's timeout
    try:
        if timed and limit is not None:
            signal.setitimer(signal.ITIMER_REAL, limit)
        try:
            module = importlib.import_module(module_name)
            for line in module.run(quick=quick):
                print(json.dumps(line), flush=True)
                entry["lines"].append(line)
        finally:
            if timed:
                signal.setitimer(signal.ITIMER_REAL, 0)
        error = _failure(entry["lines"])
    except TimeLimit:
        error = f"stopped after {limit:.0f} s, the time left in the quick run's budget"
    except Exception as exc:  # one broken benchmark must not hide the others' figures
        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if timed:
            signal.signal(signal.SIGALRM, previous)
            if outer:
                signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - began), 0.01))
    if error:
        entry.update(status="failed", error=error[:500])
    entry["seconds"] = round(time.monotonic() - began, 1)
    _note(f"{name} {entry['status']} in {entry['seconds']} s" + (f": {error}" if error else ""))
    return entry


def run_all(
    *,
    quick: bool = False,
    registry: dict[str, str] | None = None,
    out_dir: Path | None = None,
    doc: Path | None = None,
) -> int:
    """Every benchmark in ``registry``, then results.json, plots and the doc section.

    Exit code 1 if any benchmark failed (the others' results are written all the same).
    ``out_dir``/``doc`` default to docs/performance/ and docs/performance.md.
    """
    from . import report

    registry = BENCHMARKS if registry is None else registry
    if out_dir is None:
        out_dir, doc = report.OUT_DIR, report.DOC
    machine = report.machine_info()
    date = report.now_iso()
    began = time.monotonic()
    entries = []
    for name, module in registry.items():
        limit = QUICK_BUDGET_SECONDS - (time.monotonic() - began) if quick else None
        entries.append(run_one(name, module, quick=quick, limit=limit))
    machine["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    results = {
        "date": date,
        "mode": "quick" if quick else "full",
        "total_seconds": round(time.monotonic() - began, 1),
        "machine": machine,
        "benchmarks": entries,
    }
    report.save(results, out_dir / report.RESULTS_NAME)
    images = report.generate(results, out_dir, doc)
    failed = [e["name"] for e in entries if e["status"] == "failed"]
    skipped = [e["name"] for e in entries if e["status"] == "skipped"]
    _note(
        f"{len(entries) - len(failed) - len(skipped)} ok, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
        + f", {len(skipped)} skipped in {results['total_seconds']} s; "
        f"wrote {out_dir / report.RESULTS_NAME} and {len(images)} plots"
    )
    return 1 if failed else 0
