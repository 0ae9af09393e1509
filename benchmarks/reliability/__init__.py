"""Reliability under load and real faults: soak, clean restart, crash, killed Lambda worker,
killed dynalite, slow consumer and publish throttling.

Every scenario runs ``iotchat up`` as a subprocess on a fresh state directory (ephemeral
ports), drives it with real clients (Cognito guest credentials, SigV4 WebSocket, paho-mqtt or
the project's own :class:`client.chat_client.ChatClient`), injects its fault for real
(SIGTERM, SIGKILL of the stack, of a Lambda worker, of dynalite; a socket nobody reads) and
returns counts. ``tests/e2e/reliability/`` runs them at bounded sizes and asserts on the counts;
``iotchat bench reliability [--quick]`` runs them at full size and prints them as JSON.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.reliability.crash_state import crash_state
from benchmarks.reliability.faults import dynalite_kill, faults, lambda_worker_kill, slow_manifest
from benchmarks.reliability.group_stop import group_stop
from benchmarks.reliability.overload import slow_consumer, throttle
from benchmarks.reliability.pipeline_overload import pipeline_overload
from benchmarks.reliability.restarts import crash, restart
from benchmarks.reliability.room_client import RoomClient
from benchmarks.reliability.soak import SoakSize, soak
from benchmarks.reliability.stack_process import StackProcess, running_stack
from benchmarks.reliability.store import stored_ids


def run(quick: bool = False) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="iotchat-reliability-"))
    results: list[dict[str, Any]] = []
    try:
        sizes: SoakSize
        if quick:
            sizes = {"clients": 20, "messages": 200, "rooms": 4, "rate": 20.0, "timeout": 300.0}
        else:
            # 1,000 messages/s offered in all (50 clients at 20/s each, 10 rooms): the target
            # rate; docs/reliability.md says what a 2-core machine does with it.
            sizes = {"clients": 50, "messages": 1000, "rooms": 10, "rate": 20.0, "timeout": 900.0}
        for name, scenario in (
            ("soak", lambda: soak(workdir, **sizes)),
            ("restart", lambda: restart(workdir, before=100 if quick else 500, after=100)),
            (
                "crash",
                lambda: crash(workdir, clients=10, messages=100 if quick else 400, rate=20.0),
            ),
            ("faults", lambda: faults(workdir, rate=20.0)),
            (
                "slow-consumer",
                lambda: slow_consumer(
                    workdir, messages=5000 if quick else 20000, payload_bytes=16384
                ),
            ),
            ("throttle", lambda: throttle(workdir, burst=300)),
            ("group-stop", lambda: group_stop(workdir, burst=50 if quick else 200)),
            ("crash-state", lambda: crash_state(workdir, senders=2, rate=20.0, retained=5)),
            (
                "pipeline-overload",
                lambda: pipeline_overload(workdir, rate=1500, seconds=10.0 if quick else 30.0),
            ),
        ):
            began = time.monotonic()
            try:
                outcome = scenario()
            except Exception as exc:  # one failed scenario must not hide the others' counts
                outcome = {"scenario": name, "error": f"{type(exc).__name__}: {exc}"}
            for result in outcome if isinstance(outcome, list) else [outcome]:
                result.setdefault("seconds", round(time.monotonic() - began, 1))
                results.append({"benchmark": "reliability", **result})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


__all__ = [
    "RoomClient",
    "StackProcess",
    "crash",
    "crash_state",
    "dynalite_kill",
    "faults",
    "group_stop",
    "lambda_worker_kill",
    "pipeline_overload",
    "restart",
    "run",
    "running_stack",
    "slow_consumer",
    "slow_manifest",
    "soak",
    "stored_ids",
    "throttle",
]
