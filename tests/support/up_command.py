"""The ``iotchat up`` arguments for a stack in its own process: every listener on the port the
caller names or on an ephemeral one. Benchmarks and fault scenarios build their command lines
here, so a new listener option is added in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

PORT_NAMES = ("mqtt", "mqtts", "wss", "ws", "api", "web")


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


__all__ = ["PORT_NAMES", "up_arguments"]
