"""What a chat client hears, as typed events (docs/protocol.md is the wire format).

:func:`parse` turns one MQTT message into an event, or None for what a client must ignore
(unknown types, malformed JSON): the protocol grows by adding types and fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Connected:
    resumed: bool  # False on the first connection, True after a reconnect


@dataclass(frozen=True)
class Disconnected:
    reason: str


@dataclass(frozen=True)
class Message:
    id: str
    sender: str
    text: str
    ts: int
    name: str | None = None
    room: str | None = None
    to: str | None = None
    group: str | None = None
    replayed: bool = False  # filled in from history after a reconnect

    @property
    def direct(self) -> bool:
        return self.to is not None


@dataclass(frozen=True)
class Presence:
    room: str
    client_id: str
    status: str
    ts: int
    name: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class History:
    kind: str  # "room", "with" or "group"
    target: str
    messages: list[Message]  # newest first, as sent
    cursor: str | None


@dataclass(frozen=True)
class Who:
    room: str
    online: list[dict[str, str]]
    more: bool = False


@dataclass(frozen=True)
class Group:
    group: str
    name: str
    owner: str
    members: list[str]


@dataclass(frozen=True)
class Activity:
    room: str
    typing: list[str] = field(default_factory=list)
    telemetry: dict[str, Any] = field(default_factory=dict)
    ts: int = 0


@dataclass(frozen=True)
class ChatError:
    code: str
    message: str
    ref: str | None = None


Event = Connected | Disconnected | Message | Presence | History | Who | Group | Activity | ChatError


def to_json(event: Event) -> dict[str, Any]:
    """One event as a JSON-able dict with its kind, for ``iotchat listen --json``."""
    body = {k: v for k, v in asdict(event).items() if v is not None}
    return {"event": type(event).__name__.lower(), **body}


def _message(body: dict[str, Any]) -> Message | None:
    try:
        return Message(
            id=str(body["id"]),
            sender=str(body["sender"]),
            text=str(body["text"]),
            ts=int(body["ts"]),
            name=body.get("name") if isinstance(body.get("name"), str) else None,
            room=body.get("room"),
            to=body.get("to"),
            group=body.get("group"),
        )
    except (KeyError, TypeError, ValueError):
        return None


def parse(topic: str, payload: bytes) -> Event | None:
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    try:
        if kind == "message":
            return _message(body)
        if kind == "presence":
            return Presence(
                body["room"],
                body["clientId"],
                body["status"],
                int(body["ts"]),
                body.get("name"),
                body.get("reason"),
            )
        if kind == "history":
            target_kind = next(k for k in ("room", "with", "group") if k in body)
            messages = [m for m in map(_message, body.get("messages", [])) if m is not None]
            return History(target_kind, body[target_kind], messages, body.get("cursor"))
        if kind == "who":
            return Who(body["room"], list(body.get("online", [])), bool(body.get("more")))
        if kind == "group":
            return Group(body["group"], body["name"], body["owner"], list(body["members"]))
        if kind == "activity":
            return Activity(
                body["room"],
                list(body.get("typing", [])),
                dict(body.get("telemetry", {})),
                int(body.get("ts", 0)),
            )
        if kind == "error":
            return ChatError(str(body["code"]), str(body.get("message", "")), body.get("ref"))
    except (KeyError, TypeError, ValueError, StopIteration):
        return None
    return None
