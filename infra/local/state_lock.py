"""One stack per state dir: ``iotchat up`` holds ``up.lock`` in it for as long as it runs.

Two stacks on one state dir would share dynalite's files, the Lambda logs and ``stack.json``,
and the second would remove the first's stack file on its way up (and on its failure). So the
lock is taken before anything in the dir is touched, and a second ``iotchat up`` stops at once,
naming the running stack. The lock is ``flock`` on an open file: the kernel drops it when its
process ends however it ends, so a lock file left by a killed stack is simply taken over (its
pid is named in a note). The file says who holds it (pid, web URL) for the refusal message.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from infra.local.state_files import PRIVATE_FILE_MODE, private_dir

if sys.platform != "win32":
    import fcntl

LOCK_FILE_NAME = "up.lock"

log = logging.getLogger("iotchat.stack")


class StackAlreadyRunning(RuntimeError):
    """Another ``iotchat up`` holds the state dir."""

    def __init__(self, pid: int | None, web_url: str | None) -> None:
        where = f"pid {pid}" if pid else "pid unknown"
        where += f", web on {web_url}" if web_url else ", still starting"
        super().__init__(
            f"iotchat is already running here ({where}); "
            "stop it or pass --state-dir for a second stack"
        )
        self.pid = pid
        self.web_url = web_url


class StateDirLock:
    """The running stack's claim on its state dir; :meth:`acquire` once, :meth:`release` once."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE_NAME
        self._fd: int | None = None
        # What the previous holder's file said, when it was left by a process now gone.
        self.taken_over_from: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`StackAlreadyRunning`; nothing else is touched."""
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            pid = holder.get("pid")
            web = holder.get("web")
            raise StackAlreadyRunning(
                pid if isinstance(pid, int) else None, web if isinstance(web, str) else None
            ) from None
        previous = _read(fd).get("pid")
        if isinstance(previous, int) and previous != os.getpid():
            self.taken_over_from = previous
            log.warning(
                "took over the state dir's lock from pid %d, which is no longer running", previous
            )
        self._fd = fd
        self.record(web_url=None)

    def record(self, *, web_url: str | None) -> None:
        """Say who holds the lock (and, once it serves, where the web app is)."""
        if self._fd is None:
            return
        holder = {"pid": os.getpid(), "since": int(time.time()), "web": web_url}
        data = json.dumps(holder).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        if self._fd is None:
            return
        # Emptied first: a file that names no pid is not mistaken for a stale stack's.
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _read(fd: int) -> dict[str, object]:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
