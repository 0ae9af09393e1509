"""Before ``iotchat up`` listens: is each port it wants free, and if not, whose is it?

A bare ``[Errno 98] address already in use`` names neither the option to change nor the
program in the way. :func:`check_ports` tries each fixed port first and, for one in use, names
the ``--...-port`` option and, when the listener belongs to one of this user's processes
(found through ``/proc``, Linux only), whether it is another iotchat stack.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Mapping
from pathlib import Path

# State dir of another stack, read from its command line when it names one.
_STATE_DIR_OPTION = "--state-dir"


class PortInUse(OSError):
    """A port ``iotchat up`` was asked to listen on is taken; the message says what to do."""


def check_ports(host: str, ports: Mapping[str, int | None]) -> None:
    """Raise :class:`PortInUse` for the first of ``ports`` (option name -> port; 0 or None:
    any free port, not checked) that cannot be bound on ``host``."""
    for option, port in ports.items():
        if not port:
            continue
        if _bindable(host, port):
            continue
        owner = listener_pid(port)
        raise PortInUse(describe_busy(option, port, owner))


def describe_busy(option: str, port: int, owner: int | None) -> str:
    hint = f"pass {option} 0 (any free port) or another port"
    if owner is None:
        return f"port {port} ({option}) is already in use by another program; {hint}"
    command = _command_line(owner)
    if _is_iotchat_up(command):
        state_dir = _option_value(command, _STATE_DIR_OPTION) or ".iotchat"
        return (
            f"port {port} ({option}) is already in use by another iotchat stack (pid {owner}, "
            f"state dir {state_dir}); stop it, or {hint}"
        )
    name = Path(command[0]).name if command else "unknown"
    return f"port {port} ({option}) is already in use by {name} (pid {owner}); {hint}"


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As asyncio's servers do, so a port in TIME_WAIT is not reported as taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def listener_pid(port: int) -> int | None:
    """The pid of this user's process listening on TCP ``port``, if /proc can tell."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    proc = Path("/proc")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return int(entry.name)
        except OSError:  # another user's process, or gone meanwhile
            continue
    return None


def _listening_inodes(port: int) -> set[str]:
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _is_iotchat_up(command: list[str]) -> bool:
    names = [Path(part).name for part in command]
    return "up" in command and any(name == "iotchat" or name == "cli.main" for name in names)


def _option_value(command: list[str], option: str) -> str | None:
    for index, part in enumerate(command):
        if part == option and index + 1 < len(command):
            return command[index + 1]
        if part.startswith(option + "="):
            return part.split("=", 1)[1]
    return None
