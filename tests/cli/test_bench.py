"""``iotchat bench`` runs from anywhere, not only from the repository's root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_runs_from_another_directory_and_prints_json_lines(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "bench", "authz", "--quick"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert {line["metric"] for line in lines} >= {"cached_decision_us", "cached_iam_decision_us"}
