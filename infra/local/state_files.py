"""Files under the stack's state dir: private to their owner, written atomically, in turns.

The state dir holds what no other local user may read: the DynamoDB and Kinesis data and logs
(every direct message in clear text), Lambda logs and failure records, the gateway's sessions,
the CA key, Cognito's users and the stack file. So it is ``0700`` and every file in it ``0600``
(:func:`private_dir` tightens what an older version left ``0755``/``0644``), every file the
stack creates is created ``0600`` (:func:`append_private`, :func:`write_atomic`), and the
stack's children run with umask ``077`` (:data:`PRIVATE_UMASK`) for the files they create.

``iotchat up`` and commands such as ``iotchat device create`` run in different processes and
write the same files (the local CA, the device registry). A reader must never see half a file,
and two first runs must not both create one, so writers replace whole files through a rename
and hold an exclusive lock on the folder while they read-modify-write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal, overload

if sys.platform != "win32":  # POSIX: serialise writers in different processes
    import fcntl

LOCK_FILE = ".lock"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# For the stack's child processes (dynalite, kinesalite, Lambda workers): what they create is
# private too (``subprocess.Popen(umask=...)``; ignored where there is no umask).
PRIVATE_UMASK = 0o077

log = logging.getLogger("iotchat.state")


def private_dir(path: Path, *, tree: bool = False) -> Path:
    """Create ``path`` (and its missing parents) ``0700``, or tighten it to ``0700``; with
    ``tree``, everything already in it too: directories ``0700``, files their owner's bits only
    (``0600`` for what the stack writes). Symbolic links are left alone and not followed."""
    missing = []
    at = path
    while not at.is_dir():
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):  # mkdir(parents=True) would give parents the umask's mode
        directory.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)
    if tree:
        for root, dirs, files in os.walk(path):
            for name in dirs:
                _tighten(Path(root, name), PRIVATE_DIR_MODE)
            for name in files:
                _tighten(Path(root, name), None)
    return path


def _tighten(path: Path, mode: int | None) -> None:
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return
        current = stat.S_IMODE(st.st_mode)
        wanted = mode if mode is not None else current & 0o700
        if current != wanted:
            os.chmod(path, wanted)
    except FileNotFoundError:  # removed meanwhile (a LevelDB compaction, a rename)
        return
    except PermissionError:  # not ours: say so once per file, never fail the stack for it
        log.warning("cannot make %s private (owned by another user?)", path)


@overload
def append_private(path: Path, binary: Literal[True]) -> IO[bytes]: ...
@overload
def append_private(path: Path, binary: Literal[False] = False) -> IO[str]: ...
def append_private(path: Path, binary: bool = False) -> IO[bytes] | IO[str]:
    """``path`` opened for appending, created ``0600`` (its folder ``0700``) and tightened to
    ``0600`` if an older version left it readable by others."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, PRIVATE_FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, PRIVATE_FILE_MODE)
        if binary:
            return os.fdopen(fd, "ab")
        return os.fdopen(fd, "a", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


def write_atomic(path: Path, data: bytes, mode: int = 0o600, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` through a temporary file beside it (synced unless
    ``sync`` is false, for often-rewritten positions), which has ``mode`` before it gets the
    name: readers see the old file or the new one, never half."""
    if not path.parent.is_dir():
        private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory``'s lock file exclusively for the block (created on first use)."""
    if not directory.is_dir():
        private_dir(directory)
    if sys.platform == "win32":  # pragma: no cover - no flock; one process at a time there
        yield
        return
    with append_private(directory / LOCK_FILE) as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
