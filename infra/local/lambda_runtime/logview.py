"""``iotchat logs``' readable view of a function's log: time, request id, what was logged.

The log file is what Lambda writes to CloudWatch (START, the handler's output, END, REPORT), one
text line per line. Read raw, a line of ``print`` output says neither when nor for which
request; this view prefixes every line with the time, request id and trace of its invocation (the
time from the runtime's timestamped log lines, the trace from its REPORT line, so an
invocation's lines are printed once it has ended), folds START and END away, shortens REPORT to
its duration and cold start, and can keep only invocations since a moment (``--since 10m``).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_START = re.compile(r"^START RequestId: (\S+)")
_END = re.compile(r"^END RequestId: (\S+)")
_REPORT = re.compile(r"^REPORT RequestId: (\S+)\tDuration: ([0-9.]+) ms")
_INIT = re.compile(r"\tInit Duration: ([0-9.]+) ms")
_TRACE = re.compile(r"\tXRAY TraceId: 1-([0-9a-f]{8})")
_STATUS = re.compile(r"\tStatus: (\w+)")
# The Python runtime's logging format: [LEVEL]\t<UTC time>Z\t<request id>\t<message>
_LOGGED = re.compile(r"^\[(\w+)\]\t(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z\t(\S*)\t(.*)$")
# What the runtime writes for a timeout: <UTC time>Z <request id> Task timed out ...
_STAMPED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z (\S+) (.*)$")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

BLANK_TIME = " " * 12


def parse_since(text: str, now: float | None = None) -> float:
    """``10m``, ``90s``, ``2h``, ``1d`` -> the epoch that long ago; ValueError otherwise."""
    found = _DURATION.match(text.strip())
    if found is None:
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 2h or 1d")
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    return (time.time() if now is None else now) - seconds


def _epoch(whole: str, millis: str) -> float:
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + f".{int(epoch * 1000) % 1000:03d}"


@dataclass
class _Invocation:
    request_id: str
    began: float | None = None
    # (time if the line has one, request id, text), until the invocation's REPORT.
    pending: list[tuple[float | None, str, str]] = field(default_factory=list)
    trace: str = ""  # the first 8 hex digits of its trace id, from the REPORT line


class LogView:
    """Feed it the log's lines in order; it returns the readable lines to print."""

    def __init__(self, since: float | None = None) -> None:
        self.since = since
        self.current: _Invocation | None = None

    def feed(self, line: str) -> list[str]:
        line = line.rstrip("\n")
        if found := _START.match(line):
            self.current = _Invocation(found.group(1))
            return []
        if _END.match(line):
            return []
        if found := _REPORT.match(line):
            if self.current is not None and (trace := _TRACE.search(line)):
                self.current.trace = trace.group(1)
            self._emit(None, found.group(1), self._report(line, found))
            return self._finish()
        if found := _LOGGED.match(line):
            at = _epoch(found.group(2), found.group(3))
            text = f"{found.group(1):<5} {found.group(5)}"
            return self._emit(at, found.group(4) or self._request(), text)
        if found := _STAMPED.match(line):
            at = _epoch(found.group(1), found.group(2))
            return self._emit(at, found.group(3), found.group(4))
        return self._emit(None, self._request(), line)

    def _request(self) -> str:
        return self.current.request_id if self.current is not None else ""

    @staticmethod
    def _prefix(at: float | None, request_id: str, text: str, trace: str = "") -> str:
        stamp = _clock(at) if at is not None else BLANK_TIME
        return f"{stamp} {request_id[:8]:<8} {trace or '-':<8} {text}"

    @staticmethod
    def _report(line: str, found: re.Match[str]) -> str:
        parts = [f"{float(found.group(2)):.1f} ms"]
        if init := _INIT.search(line):
            parts.append(f"cold start {float(init.group(1)):.0f} ms")
        if status := _STATUS.search(line):
            parts.append(status.group(1))
        return "REPORT " + ", ".join(parts)

    def _emit(self, at: float | None, request_id: str, text: str) -> list[str]:
        """An invocation's lines wait for its REPORT, which names its trace (and they are
        printed with their invocation's time when they carry none); lines outside any
        invocation (an init error) go at once."""
        invocation = self.current
        if invocation is None:
            return [self._prefix(at, request_id, text)] if self.since is None else []
        invocation.pending.append((at, request_id, text))
        if invocation.began is None and at is not None:
            invocation.began = at
        return []

    def _finish(self) -> list[str]:
        invocation, self.current = self.current, None
        if invocation is None:
            return []
        began = invocation.began
        if self.since is not None and (began is None or began < self.since):
            return []  # too old, or it cannot be placed in time
        return [
            self._prefix(at or began, request_id, text, invocation.trace)
            for at, request_id, text in invocation.pending
        ]


def print_log(
    path: Path,
    write: Callable[[str], None],
    *,
    follow: bool,
    since: float | None = None,
    poll_interval: float = 0.1,
) -> None:
    """The readable view of the log at ``path``; with ``follow``, loop until interrupted
    (KeyboardInterrupt). A log that does not exist yet is waited for; one that shrinks
    (a deleted state dir) is read again from its start."""
    view = LogView(since)
    position = 0
    partial = b""
    while True:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size < position:
            position, partial, view = 0, b"", LogView(since)
        if size > position:
            with path.open("rb") as log:
                log.seek(position)
                chunk = log.read(size - position)
            position += len(chunk)
            *lines, partial = (partial + chunk).split(b"\n")
            for raw in lines:
                for text in view.feed(raw.decode("utf-8", errors="replace")):
                    write(text + "\n")
        if not follow:
            return
        time.sleep(poll_interval)
