"""Running the edge component as its process manager would: ``python -m client.edge``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_python(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """This interpreter with ``args`` (e.g. ``["-m", "client.edge", ...]``), output captured."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
