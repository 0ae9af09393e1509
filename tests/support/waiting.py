"""Polling with a deadline: the one way tests and benchmarks wait for something to become true.

Tests fail with an ``AssertionError`` (:func:`wait_for`); benchmarks and load scenarios want a
``TimeoutError`` naming what they waited for (:func:`wait_until`, whose error class a caller
may narrow, as ``benchmarks._harness`` does). Both poll one predicate the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(
    predicate: Callable[[], Any],
    timeout: float,
    interval: float,
    on_timeout: Callable[[], BaseException],
) -> Any:
    """The first truthy ``predicate()``; raises ``on_timeout()`` once ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise on_timeout()
        time.sleep(interval)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message at the deadline."""
    return poll(
        predicate,
        timeout,
        interval,
        lambda: AssertionError(f"condition not met within {timeout}s"),
    )


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.02,
    error: type[Exception] = TimeoutError,
) -> Any:
    """Poll ``predicate`` until truthy; raise ``error`` naming ``what`` at the deadline."""
    return poll(
        predicate,
        timeout,
        interval,
        lambda: error(f"timed out after {timeout:.0f}s waiting for {what}"),
    )


__all__ = ["poll", "wait_for", "wait_until"]
