"""Retained messages and persistent sessions survive a SIGKILL of the stack while guests
send: the gateway writes them through to its state dir as they change (docs/gateway.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability.crash_state import crash_state

pytestmark = pytest.mark.timeout(180)


def test_retained_messages_and_persistent_sessions_survive_a_sigkill(
    tmp_path: Path, report: Any
) -> None:
    counts = report(crash_state(tmp_path, senders=2, rate=20.0, retained=5))
    assert counts["sent"] > counts["seenBeforeSnapshot"] > 0  # killed while sending
    # Every retained message in its last version; the deleted one stays deleted.
    assert counts["retainedKept"] == counts["retainedTopics"] == 4
    assert counts["deletedRetainedStayedDeleted"]
    # The offline session and its queue: everything a live subscriber had seen before.
    assert counts["offlineSessionPresent"]
    assert counts["queuedReceivedAfterRestart"] == counts["seenBeforeSnapshot"]
    # The session connected at the kill comes back with its subscription.
    assert counts["onlineSessionPresent"]
    assert counts["onlineSubscriptionKept"]
