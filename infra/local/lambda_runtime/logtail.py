"""``iotchat logs``: print a function's log file, and with ``follow`` keep printing what is added.

Works on the files alone (no running stack needed), like ``tail -f``: a log that does not exist
yet is waited for, and a log that shrinks (deleted state dir) is read again from the start.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import BinaryIO

from infra.local.lambda_runtime.runtime import log_path, logs_dir
from lambdas.manifest import Manifest

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def known_functions(state_dir: Path, manifest: Manifest | None = None) -> list[str]:
    """The project manifest's functions plus any function that has a log in this state dir."""
    names = set((manifest or Manifest.load()).names())
    directory = logs_dir(state_dir)
    if directory.is_dir():
        names.update(path.stem for path in directory.glob("*.log"))
    return sorted(names)


def is_known(state_dir: Path, name: str, manifest: Manifest | None = None) -> bool:
    return bool(_NAME.match(name)) and name in known_functions(state_dir, manifest)


def copy_log(
    state_dir: Path, name: str, out: BinaryIO, *, follow: bool, poll_interval: float = 0.1
) -> None:
    """Write the log to ``out``; with ``follow``, loop until interrupted (KeyboardInterrupt)."""
    path = log_path(state_dir, name)
    position = 0
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < position:  # truncated or recreated: start over
            position = 0
        if size > position:
            with path.open("rb") as log:
                log.seek(position)
                chunk = log.read(size - position)
            position += len(chunk)
            out.write(chunk)
            out.flush()
        if not follow:
            return
        time.sleep(poll_interval)
