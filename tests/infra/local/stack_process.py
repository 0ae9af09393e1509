"""``iotchat up`` as a user starts it: its own process, every listener on an ephemeral port.

The tests that need the real process (signals, the stack file on disk, the emulators as its
Node children, restarts) start it here, so each passes the same arguments and waits for the
same sign of readiness: the stack file. The /proc helpers let a test find those children and
see them go.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.up_command import up_arguments
from tests.support.waiting import wait_for

IOTCHAT = [sys.executable, "-m", "cli.main"]
ROOT = Path(__file__).resolve().parents[3]


def up_command(state_dir: Path, **ports: int) -> list[str]:
    """``iotchat up`` on ``state_dir``: a listener named in ``ports`` (``mqtt=1883``) on that
    port, every other one on an ephemeral port."""
    return [*IOTCHAT, *up_arguments(state_dir, ports)]


def start_stack(state_dir: Path, output: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """Start ``iotchat up``; its stdout and stderr both go to ``output``."""
    return subprocess.Popen(
        up_command(state_dir), cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
    )


@contextmanager
def running_stack(
    state_dir: Path, output: int = subprocess.PIPE
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """The process and its stack file once written; killed at the end if still running."""
    proc = start_stack(state_dir, output)
    stack_file = state_dir / "stack.json"
    try:
        wait_for(lambda: stack_file.exists() or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        yield proc, json.loads(stack_file.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def live_children(pid: int, command_part: str) -> list[int]:
    """Live child processes of ``pid`` whose command line holds ``command_part`` (Linux
    /proc), so a test can find an emulator among the stack's Node children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and command_part.encode() in command:
            found.append(int(stat.parent.name))
    return found


def is_alive(pid: int) -> bool:
    """False once the process is gone or a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
