"""Handlers the lambda-invoke benchmark deploys to the local runtime."""

from __future__ import annotations

import os
import time
from typing import Any


def noop(event: Any, context: Any) -> Any:
    return event


def record_start(event: Any, context: Any) -> None:
    """Appends how long after its invoke_async call this handler started (ns)."""
    started = time.monotonic_ns()
    with open(os.environ["LATENCY_FILE"], "a", encoding="utf-8") as out:
        out.write(f"{started - event['sent']}\n")
