"""Retained messages and persistent sessions written through to the state dir, so that a
SIGKILL of the stack loses at most the last ~100 ms of their changes.

An append-only journal of JSON lines: ``{"r": retained}``, ``{"rd": topic}`` (a retained
message deleted), ``{"s": session}`` (the whole record of one persistent session, connected or
not) and ``{"sd": client_id}`` (a session gone). The router marks what changed; the journal
writes it in one append every ``FLUSH_SECONDS`` (a session that changed ten times in that
interval is written once). Replaying the lines in order gives the last state. The journal is
compacted (rewritten as one line per live item, then swapped in atomically) at start, at a
clean stop and whenever it has grown past ``COMPACT_FACTOR`` times its last compacted size.

Retained messages are kept because AWS keeps them (for three years after their last update,
https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-retain); persistent
sessions because AWS keeps them through its own maintenance. The file holds users' messages:
0600 in a 0700 directory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .codec import Prop
from .session import Message, _decode_property, _encode_property

log = logging.getLogger("iotchat.gateway")

FLUSH_SECONDS = 0.1
COMPACT_FACTOR = 4
COMPACT_MIN_BYTES = 1024 * 1024

Record = dict[str, Any]


def retained_record(msg: Message, now: float) -> Record | None:
    """A retained message as JSON-ready data; None once its MQTT 5 Message Expiry passed."""
    remaining = msg.remaining_expiry()
    if remaining is not None and remaining <= 0:
        return None
    return {
        "topic": msg.topic,
        "payload": base64.b64encode(msg.payload).decode(),
        "qos": msg.qos,
        "properties": {str(int(k)): _encode_property(v) for k, v in msg.properties.items()},
        "clientId": msg.client_id,
        "timestampMs": msg.timestamp_ms,
        "expiresAt": None if remaining is None else now + remaining,
    }


def retained_from_record(record: Record, now: float) -> Message | None:
    """The message a :func:`retained_record` describes; None once it has expired."""
    expires_at = record.get("expiresAt")
    if expires_at is not None and expires_at <= now:
        return None
    props = {int(k): _decode_property(v) for k, v in record["properties"].items()}
    received_at = time.monotonic()
    interval = props.get(Prop.MESSAGE_EXPIRY_INTERVAL)
    if interval is not None and expires_at is not None:
        received_at -= interval - (expires_at - now)
    return Message(
        str(record["topic"]),
        base64.b64decode(record["payload"]),
        int(record["qos"]),
        True,
        props,
        str(record["clientId"]),
        None,
        "mqtt",
        received_at,
        int(record["timestampMs"]),
    )


class Journal:
    """The write-through file; the router tells it what changed, it writes in batches."""

    def __init__(
        self,
        path: Path,
        loop: asyncio.AbstractEventLoop,
        session_record: Callable[[str, float], Record | None],
    ) -> None:
        self.path = path
        self.loop = loop
        # The router's current record of a client id's persistent session (None: gone).
        self._session_record = session_record
        self._retained: dict[str, Message | None] = {}
        self._sessions: set[str] = set()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._fd: int | None = None
        self._size = 0
        self._compacted_size = 0
        self.writes = 0  # appends made (the benchmark's and the docs' write cost)
        # Called once the journal has grown enough to compact; the router knows every live
        # item, so it calls :meth:`compact` (on the next loop turn, not inside a flush).
        self.on_grown: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ reading

    def load(self) -> tuple[list[Record], list[Record]]:
        """Replay the journal: the last record of each retained topic and each session."""
        retained: dict[str, Record] = {}
        sessions: dict[str, Record] = {}
        if not self.path.exists():
            return [], []
        with self.path.open("rb") as lines:
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    break  # a line cut short by the crash: everything before it counts
                if "r" in entry:
                    retained[entry["r"]["topic"]] = entry["r"]
                elif "rd" in entry:
                    retained.pop(entry["rd"], None)
                elif "s" in entry:
                    sessions[entry["s"]["clientId"]] = entry["s"]
                elif "sd" in entry:
                    sessions.pop(entry["sd"], None)
        return list(retained.values()), list(sessions.values())

    # ------------------------------------------------------------------ writing

    def retained_changed(self, topic: str, msg: Message | None) -> None:
        self._retained[topic] = msg
        self._arm()

    def session_changed(self, client_id: str) -> None:
        self._sessions.add(client_id)
        self._arm()

    def _arm(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Append everything that changed since the last flush, in one write."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._retained and not self._sessions:
            return
        now = time.time()
        entries: list[Record] = []
        for topic, msg in self._retained.items():
            record = retained_record(msg, now) if msg is not None else None
            entries.append({"r": record} if record is not None else {"rd": topic})
        for client_id in self._sessions:
            session = self._session_record(client_id, now)
            entries.append({"s": session} if session is not None else {"sd": client_id})
        self._retained.clear()
        self._sessions.clear()
        data = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries).encode()
        try:
            self._append(data)
        except OSError as exc:
            log.error("journal %s not written: %s", self.path, exc)

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            self._prepare_dir()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(self._fd, 0o600)
            self._size = os.fstat(self._fd).st_size
        os.write(self._fd, data)
        self.writes += 1
        self._size += len(data)
        if self._size > max(COMPACT_MIN_BYTES, COMPACT_FACTOR * self._compacted_size):
            self.on_grown()

    def compact(self, retained: Iterable[Message], sessions: Iterable[str]) -> None:
        """Rewrite the journal as the current state: one line per retained message and per
        persistent session, written to a temporary file and renamed over the journal."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._retained.clear()
        self._sessions.clear()
        now = time.time()
        lines = []
        for msg in retained:
            record = retained_record(msg, now)
            if record is not None:
                lines.append(json.dumps({"r": record}, separators=(",", ":")))
        for client_id in sessions:
            session = self._session_record(client_id, now)
            if session is not None:
                lines.append(json.dumps({"s": session}, separators=(",", ":")))
        self.close()
        self._prepare_dir()
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(line + "\n" for line in lines))
        os.replace(tmp, self.path)
        self._compacted_size = self.path.stat().st_size

    def _prepare_dir(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
