"""CloudWatch Logs over the stack's own log files: each function's log, the rules engine's.

Log groups, as AWS names them:

- ``/aws/lambda/<function>``: the function's log (``<state>/logs/<function>.log``, what
  ``iotchat logs`` prints), as Lambda sends it to CloudWatch
  (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html);
- ``AWSIotLogsV2``: the rules engine's per-message entries (rule matched, action outcome, error
  action, trace id), one JSON object per line in ``<state>/logs/rules-engine.jsonl``, the log
  group AWS IoT's logging writes to
  (https://docs.aws.amazon.com/iot/latest/developerguide/cloud-watch-logs.html).

Each group has one stream. A line is one log event; its timestamp is the one the line carries
(the ``timestamp`` of a JSON entry, the ISO time of a handler's ``[LEVEL]`` line) or else the
time the service first read it, which is when CloudWatch would have ingested it. Files are read
on demand from where the last read stopped; the newest :data:`KEEP_EVENTS` events of each
group are kept in memory, so a long-running stack stays bounded.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.api.signed import ServiceError

KEEP_EVENTS = 10_000
LAMBDA_PREFIX = "/aws/lambda/"
RULES_GROUP = "AWSIotLogsV2"
# Where the rules engine writes its entries (issue 19's trace log), relative to the state dir.
RULES_LOG = Path("logs") / "rules-engine.jsonl"
MAX_LINE = 256 * 1024  # CloudWatch's event size limit is 256 KB
_HANDLER_STAMP = re.compile(r"^\[[A-Z]+\]\t(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\t")


@dataclass(frozen=True)
class LogEvent:
    sequence: int  # position in its group, from 0: what the paging tokens count
    timestamp: int  # ms since the epoch
    ingestion_time: int
    message: str


def _ms(epoch: float) -> int:
    return int(epoch * 1000)


def _line_time(line: str, json_lines: bool) -> int | None:
    """The time a line says it was written, if it says so."""
    try:
        if json_lines:
            stamp = json.loads(line).get("timestamp")
            if isinstance(stamp, int | float):
                return int(stamp)
            parsed = datetime.datetime.strptime(str(stamp), "%Y-%m-%d %H:%M:%S.%f")
            return _ms(parsed.replace(tzinfo=datetime.UTC).timestamp())
        found = _HANDLER_STAMP.match(line)
        if found is not None:
            text = found.group(1).replace("Z", "+00:00")
            return _ms(datetime.datetime.fromisoformat(text).timestamp())
    except (ValueError, AttributeError, TypeError):
        return None
    return None


@dataclass
class LogGroup:
    """One log group over one file; :meth:`read` takes in what was appended since."""

    name: str
    path: Path
    json_lines: bool = False
    clock: Callable[[], float] = time.time
    events: deque[LogEvent] = field(default_factory=lambda: deque(maxlen=KEEP_EVENTS))
    created: int = 0
    _position: int = 0
    _next: int = 0
    _partial: bytes = b""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.created = _ms(self.clock())

    @property
    def stream(self) -> str:
        """The one stream's name, shaped like Lambda's ``YYYY/MM/DD/[$LATEST]<id>``."""
        day = datetime.datetime.fromtimestamp(self.created / 1000, datetime.UTC)
        digest = hashlib.sha256(self.name.encode()).hexdigest()[:32]
        return f"{day:%Y/%m/%d}/[$LATEST]{digest}"

    def read(self) -> list[LogEvent]:
        """Take in the lines appended since the last read; every event kept, oldest first."""
        with self._lock:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                size = 0
            if size < self._position:  # truncated or recreated: read it again
                self._position, self._partial = 0, b""
            if size > self._position:
                with self.path.open("rb") as handle:
                    handle.seek(self._position)
                    chunk = handle.read(size - self._position)
                self._position += len(chunk)
                self._take(self._partial + chunk)
            return list(self.events)

    def _take(self, data: bytes) -> None:
        lines = data.split(b"\n")
        self._partial = lines.pop()[-MAX_LINE:]  # an unfinished line waits for its end
        now = _ms(self.clock())
        for raw in lines:
            line = raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r")
            if not line:
                continue
            stamp = _line_time(line, self.json_lines) or now
            self.events.append(LogEvent(self._next, stamp, now, line))
            self._next += 1


def matches(pattern: str | None, message: str) -> bool:
    """CloudWatch's filter pattern for unstructured events, terms only: every term (a word, or
    a phrase in double quotes) must appear, case-sensitively; an empty pattern matches all
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html)."""
    if not pattern or not pattern.strip():
        return True
    terms = re.findall(r'"([^"]*)"|(\S+)', pattern)
    return all((quoted or word) in message for quoted, word in terms)


def not_found(what: str) -> ServiceError:
    return ServiceError(400, "ResourceNotFoundException", f"The specified {what} does not exist.")


class LocalLogs:
    """The stack's log groups, looked up by name."""

    def __init__(self, state_dir: Path, functions: Iterable[str]) -> None:
        self.groups: dict[str, LogGroup] = {
            LAMBDA_PREFIX + name: LogGroup(LAMBDA_PREFIX + name, state_dir / "logs" / f"{name}.log")
            for name in functions
        }
        self.groups[RULES_GROUP] = LogGroup(RULES_GROUP, state_dir / RULES_LOG, json_lines=True)

    def group(self, name: str) -> LogGroup:
        group = self.groups.get(name)
        if group is None:
            raise not_found("log group")
        return group

    def stream(self, group_name: str, stream_name: str) -> LogGroup:
        group = self.group(group_name)
        if stream_name != group.stream:
            raise not_found("log stream")
        return group

    def describe_log_groups(self, prefix: str | None) -> list[LogGroup]:
        return [g for name, g in sorted(self.groups.items()) if name.startswith(prefix or "")]


__all__ = ["LocalLogs", "LogEvent", "LogGroup", "matches", "not_found"]


def event_json(event: LogEvent) -> dict[str, Any]:
    return {
        "timestamp": event.timestamp,
        "message": event.message,
        "ingestionTime": event.ingestion_time,
    }
