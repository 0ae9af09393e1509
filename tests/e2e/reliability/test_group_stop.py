"""A stop by a signal to the stack's whole process group (Ctrl-C, ``kill -- -PGID``) loses no
message its subscribers already saw: dynalite and kinesalite are not in that group, and the
stack stops them itself after its drain."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import group_stop

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_every_delivered_message_is_stored_after_a_group_stop(
    tmp_path: Path, report: Any, sig: signal.Signals
) -> None:
    counts = report(group_stop(tmp_path, burst=40, sig=sig))
    assert counts["delivered"] == counts["sent"] == 40
    assert counts["stored"] == counts["delivered"], counts
    assert counts["storedTwice"] == 0
    assert counts["stoppedClean"]
