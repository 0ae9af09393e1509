"""The ``iotchat up`` arguments for a stack in its own process: every listener on the port the
caller names or on an ephemeral one. Benchmarks and fault scenarios build their command lines
here, so a new listener option is added in one place.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_for

PORT_NAMES = ("mqtt", "mqtts", "wss", "ws", "api", "web")
ROOT = Path(__file__).resolve().parents[2]


def up_arguments(
    state_dir: Path, ports: dict[str, int] | None = None, limits: Sequence[str] = ()
) -> list[str]:
    """``up`` and its options (after the ``iotchat`` command itself): every listener on
    ``ports`` (by name, e.g. ``{"mqtt": 1883}``), the others on ephemeral ports; ``limits``
    as ``--limit`` options."""
    ports = ports or {}
    args = ["up", "--state-dir", str(state_dir)]
    for name in PORT_NAMES:
        args += [f"--{name}-port", str(ports.get(name, 0))]
    for item in limits:
        args += ["--limit", item]
    return args


@contextmanager
def up_process(
    state_dir: Path,
    *,
    log: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 30.0,
) -> Iterator[dict[str, Any]]:
    """``iotchat up`` on ``state_dir`` in its own process, every listener on an ephemeral port:
    its stack file once written. Its output goes to ``log`` (or nowhere); ``preexec_fn`` runs in
    the child before exec. At the end it is stopped with SIGTERM, and killed if it lingers."""
    output = log.open("wb") if log is not None else None
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *up_arguments(state_dir)],
            cwd=ROOT,
            stdout=output or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
        stack_file = state_dir / "stack.json"
        try:
            wait_for(lambda: stack_file.exists() or proc.poll() is not None, timeout=timeout)
            assert proc.poll() is None, log.read_text() if log else "iotchat up exited early"
            yield json.loads(stack_file.read_text())
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    finally:
        if output is not None:
            output.close()


__all__ = ["PORT_NAMES", "ROOT", "up_arguments", "up_process"]
