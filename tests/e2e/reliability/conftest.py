"""Reliability tests: each runs a scenario of ``benchmarks.reliability`` at a bounded size
against ``iotchat up`` as a subprocess, asserts on the counts it returns and prints them (run
pytest with ``-s`` to see them; ``iotchat bench reliability`` runs the full sizes)."""

from __future__ import annotations

import json
from typing import Any

import pytest


@pytest.fixture
def report(record_property: Any) -> Any:
    """Print a scenario's counts as one JSON line and attach them to the test's report."""

    def emit(result: dict[str, Any]) -> dict[str, Any]:
        print(json.dumps(result))
        record_property("counts", json.dumps(result))
        return result

    return emit
