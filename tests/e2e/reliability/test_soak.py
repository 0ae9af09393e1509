"""Soak: many clients, many QoS 1 room messages, nothing lost and nothing stored twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import soak

pytestmark = pytest.mark.timeout(150)


def test_every_message_is_stored_once_and_reaches_every_room_member(
    tmp_path: Path, report: Any
) -> None:
    counts = report(soak(tmp_path, clients=10, messages=100, rooms=3, rate=40.0, timeout=60.0))
    assert counts["outcome"] == "complete"
    assert counts["sent"] == counts["acked"] == 1000
    # Stored: one item per message (a Query per room), none missing, none extra.
    assert counts["stored"] == counts["storedItems"] == 1000
    assert counts["lostStore"] == counts["storedUnexpected"] == counts["storedTwice"] == 0
    # Delivered: every subscriber of a room saw each of its messages.
    assert counts["deliveriesExpected"] == 4 * 100 * 4 + 3 * 100 * 3 * 2
    assert counts["delivered"] == counts["deliveriesExpected"]
    assert counts["lostDelivery"] == 0
