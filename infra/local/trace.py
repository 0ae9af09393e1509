"""Message traces: one trace id per accepted publish, and the steps it causes, as JSON lines.

The gateway gives every publish a trace id (a UUID, what IoT SQL's ``traceid()`` returns). The
rules engine, its actions, the Lambda invocations they queue and the messages those publish
carry it on: within the stack's process in :data:`current_trace` (a context variable, so a
rule's republish, run synchronously, inherits it), into a Lambda worker as the ``_X_AMZN_TRACE_ID``
variable AWS sets per invocation, and back from a handler's iot-data publish in the
``X-Amzn-Trace-Id`` header botocore adds from that variable
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html: "Propagate the tracing
header").

:class:`TraceLog` writes one JSON object per step to ``logs/rules-engine.jsonl`` in the state
dir, with the attributes AWS IoT's own log entries have (``timestamp``, ``logLevel``,
``traceId``, ``accountId``, ``status``, ``eventType``, ``clientId``, ``topicName``,
``ruleName``, ``ruleAction``, ``resources``, ``details``:
https://docs.aws.amazon.com/iot/latest/developerguide/cwl-format.html), so the file reads as
the ``AWSIotLogsV2`` log group; docs/tracing.md is the format. It also keeps the newest entries
in memory (bounded) for the developer page.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from infra.local.state_files import append_private
from iot_rules.topics import filter_matches

if TYPE_CHECKING:
    from infra.local.gateway.delivery import PublishEvent

log = logging.getLogger("iotchat.trace")

TRACE_FILE = Path("logs") / "rules-engine.jsonl"
# The file is renamed to ``.1`` (replacing the previous one) when it grows past this.
MAX_FILE_BYTES = 32 * 1024 * 1024
# Entries the developer page can ask for.
KEEP_IN_MEMORY = 2000
# Payload text kept in a Publish-In entry: enough to recognise a message, never a whole file.
PREVIEW_CHARS = 200
# Entries are written at least this often (seconds), and at once past this many.
FLUSH_INTERVAL = 0.2
FLUSH_EVERY = 256
# How many traces' "shown or not" decisions a TraceFilter remembers.
REMEMBERED_TRACES = 10_000

current_trace: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "iotchat_trace", default=None
)

_XRAY_ROOT = re.compile(r"(?:^|;)\s*Root=1-([0-9a-f]{8})-([0-9a-f]{24})(?:;|$)")


# Trace ids are UUID-shaped: a random prefix per process and a counter, unique for as long as the
# stack runs and as cheap as a counter (a uuid4 per publish costs the gateway measurably).
_ID_PREFIX = uuid.uuid4().hex[:20]
_id_counter = itertools.count(1)


def new_trace_id() -> str:
    p = _ID_PREFIX
    return f"{p[:8]}-{p[8:12]}-{p[12:16]}-{p[16:20]}-{next(_id_counter):012x}"


def xray_header(trace_id: str) -> str:
    """The trace id as X-Ray's ``Root=1-<8 hex>-<24 hex>`` (the UUID's 32 hex digits)."""
    digits = trace_id.replace("-", "")
    return f"Root=1-{digits[:8]}-{digits[8:]};Sampled=0"


def from_xray_header(header: str | None) -> str | None:
    """The trace id an ``X-Amzn-Trace-Id`` header carries, or None if it carries none."""
    if not header:
        return None
    found = _XRAY_ROOT.search(header)
    if found is None:
        return None
    return str(uuid.UUID(found.group(1) + found.group(2)))


@contextlib.contextmanager
def traced(trace_id: str | None) -> Iterator[None]:
    """Publishes made inside carry ``trace_id`` (a new one each when it is None)."""
    token = current_trace.set(trace_id)
    try:
        yield
    finally:
        current_trace.reset(token)


_last_second: tuple[int, str] = (-1, "")
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def aws_timestamp(epoch: float) -> str:
    """AWS IoT log entries' ``timestamp``: ``2017-08-10 15:37:23.476``, UTC."""
    global _last_second
    second = int(epoch)
    if _last_second[0] != second:
        _last_second = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second)))
    return f"{_last_second[1]}.{int(epoch * 1000) % 1000:03d}"


def payload_preview(payload: bytes) -> str:
    text = payload[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"


class TraceLog:
    """Where trace entries go: the JSON-lines file (if any) and a bounded in-memory tail.

    ``emit`` may be called from any thread; writes are buffered and flushed by
    :meth:`flush` (the stack calls it every :data:`FLUSH_INTERVAL`) or when the buffer fills.
    """

    def __init__(self, path: Path | None, account_id: str, keep: int = KEEP_IN_MEMORY) -> None:
        self.path = path
        self.account_id = account_id
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self.sequence = 0
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def emit(
        self, event_type: str, trace_id: str | None, *, ok: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Record one step; ``fields`` are the entry's other attributes (None ones dropped)."""
        now = time.time()
        entry: dict[str, Any] = {
            "timestamp": aws_timestamp(now),
            "logLevel": "INFO" if ok else "ERROR",
            "traceId": trace_id or "",
            "accountId": self.account_id,
            "status": "Success" if ok else "Failure",
            "eventType": event_type,
        }
        entry.update((key, value) for key, value in fields.items() if value is not None)
        with self._lock:
            self.sequence += 1
            entry["seq"] = self.sequence
            self.recent.append(entry)
            if self.path is not None:
                self._pending.append(_ENCODER.encode(entry))
                full = len(self._pending) >= FLUSH_EVERY
            else:
                full = False
        if full:
            self.flush()
        return entry

    def since(self, sequence: int, limit: int = 500) -> list[dict[str, Any]]:
        """The in-memory entries after ``sequence``, oldest first, at most ``limit``."""
        with self._lock:
            newer = [entry for entry in self.recent if entry["seq"] > sequence]
        return newer[-limit:]

    def flush(self) -> None:
        with self._lock:
            lines, self._pending = self._pending, []
            if not lines or self.path is None:
                return
            try:
                self._write("".join(line + "\n" for line in lines))
            except OSError as exc:  # a full disk must not stop the stack
                log.warning("trace entries not written to %s: %s", self.path, exc)

    def _write(self, text: str) -> None:
        assert self.path is not None
        if self._file is None:
            self._file = append_private(self.path)
        self._file.write(text)
        self._file.flush()
        if self._file.tell() > MAX_FILE_BYTES:
            self._file.close()
            self._file = None
            self.path.replace(self.path.with_name(self.path.name + ".1"))

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class TraceFilter:
    """Which traces to show: those with a message on a topic matching ``topic`` (an MQTT
    filter) and from client ``client``; a trace is shown from its first matching message on."""

    def __init__(self, topic: str | None = None, client: str | None = None) -> None:
        self.topic = topic
        self.client = client
        self._decided: OrderedDict[str, bool] = OrderedDict()

    def wants(self, entry: dict[str, Any]) -> bool:
        if self.topic is None and self.client is None:
            return True
        trace = str(entry.get("traceId", ""))
        if self._decided.get(trace):
            return True
        if entry.get("eventType") != "Publish-In" or not self._matches(entry):
            return False
        self._decided[trace] = True
        if len(self._decided) > REMEMBERED_TRACES:
            self._decided.popitem(last=False)
        return True

    def _matches(self, entry: dict[str, Any]) -> bool:
        if self.client is not None and entry.get("clientId") != self.client:
            return False
        topic = str(entry.get("topicName", ""))
        return self.topic is None or filter_matches(self.topic, topic)


def publish_tap(trace_log: TraceLog) -> Callable[[PublishEvent], None]:
    """The gateway tap that records every accepted publish as a ``Publish-In`` entry."""

    def tap(event: PublishEvent) -> None:
        log.debug(
            "publish %s from %s (%d B, %s) trace %s",
            event.topic,
            event.client_id,
            len(event.payload),
            event.source,
            event.trace_id,
        )
        trace_log.emit(
            "Publish-In",
            event.trace_id,
            clientId=event.client_id,
            topicName=event.topic,
            principalId=event.principal.identifier if event.principal else None,
            source=event.source,
            bytes=len(event.payload),
            qos=event.qos,
            payload=payload_preview(event.payload),
        )

    return tap
