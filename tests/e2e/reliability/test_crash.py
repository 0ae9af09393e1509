"""The stack SIGKILLed during a burst of messages, then started again on the same state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import crash

pytestmark = pytest.mark.timeout(150)


def test_completed_stores_survive_a_crash_and_resends_are_stored_once(
    tmp_path: Path, report: Any
) -> None:
    counts = report(crash(tmp_path, clients=4, messages=40, rate=20.0, burst=20))
    # Killed mid-burst: part of what was sent is not stored.
    assert counts["storedAfterRestart"] < counts["sent"]
    # Every store that had completed before the kill is still there.
    assert counts["completedStoresKept"]
    assert counts["storedAfterRestart"] >= counts["storedBeforeKill"] > 0
    # What was lost in flight is exactly what a sender finds missing from the stored history
    # (a Query, like its own history read); resending it with the same ids stores each
    # message once: nothing is stored twice, nothing stays lost.
    assert (
        counts["resent"]
        == counts["missingAfterRestart"]
        == counts["sent"] - counts["storedAfterRestart"]
    )
    assert counts["storedAfterResend"] == counts["storedItems"] == counts["sent"]
    assert counts["storedTwice"] == 0
    # Persistent sessions are written through as they change: a crash keeps them
    # (docs/gateway.md; test_crash_state.py checks their queues and retained messages).
    assert counts["persistentSessionSurvived"] is True
