"""A clean stop and start of the stack mid-conversation, on the same state dir and ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import restart

pytestmark = pytest.mark.timeout(150)


def test_history_clients_and_persistent_sessions_survive_a_restart(
    tmp_path: Path, report: Any
) -> None:
    counts = report(restart(tmp_path, before=20, after=20))
    # History intact: everything said before and after is stored, once.
    assert counts["stored"] == 40 and counts["storedTwice"] == 0
    # The ChatClient users came back by themselves and saw the whole conversation.
    assert counts["reconnectedByThemselves"] == 2
    assert counts["seenByAda"] == counts["seenByBob"] == 40
    # The offline persistent session was saved (owner-only file), restored, and received
    # every QoS 1 message queued for it before the stop and after the start.
    assert counts["sessionSaved"] and counts["sessionFileMode"] == "0o600"
    assert counts["sessionPresent"]
    assert counts["persistentReceived"] == counts["persistentExpected"] == 40
