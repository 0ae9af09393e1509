"""Processes of the stack killed under it: a Lambda worker mid-invoke, then dynalite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import (
    StackProcess,
    dynalite_kill,
    lambda_worker_kill,
    running_stack,
    slow_manifest,
)

pytestmark = pytest.mark.timeout(150)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[StackProcess, Path]]:
    """A stack whose commands Lambda can be held mid-invoke (tests/reliability/slow_handler)."""
    root = tmp_path_factory.mktemp("faults")
    manifest, markers = slow_manifest(root)
    with running_stack(root / "state", manifest=manifest) as stack:
        yield stack, markers


def test_a_killed_lambda_worker_is_retried_without_a_duplicate_store(
    faulty: tuple[StackProcess, Path], report: Any
) -> None:
    stack, markers = faulty
    counts = report(lambda_worker_kill(stack, markers))
    for when in ("before", "after"):  # killed before storing, and after storing
        outcome = counts[when]
        assert outcome["attempts"] == 2, when  # the killed attempt, then the retry
        assert outcome["storedItems"] == 1, when
        assert outcome["deliveredCopies"] >= 1, when
    # A retry after the store delivers the stored copy again; clients drop it by id.
    assert counts["before"]["deliveredCopies"] == 1


def test_a_killed_dynalite_reports_store_failures_and_storing_resumes(
    faulty: tuple[StackProcess, Path], report: Any
) -> None:
    stack, _ = faulty
    counts = report(dynalite_kill(stack, rate=20.0, seconds_after=1.0))
    assert counts["healthDownSeen"] and counts["restartedPid"]
    assert counts["storeFailedReported"] > 0  # the errorAction told the sender
    assert counts["silentlyLost"] == 0  # every message: stored, or reported
    assert counts["storedTwice"] == 0
    assert counts["tailStored"] == 5  # after the supervisor restarted dynalite
    assert stack.health()["status"] == "ok"
