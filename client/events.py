"""What a chat client hears, as typed events (docs/protocol.md is the wire format).

:func:`parse` turns one MQTT message into an event, or None for what a client must ignore
(unknown types, malformed JSON): the protocol grows by adding types and fields.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Connected:
    resumed: bool  # False on the first connection, True after a reconnect


@dataclass(frozen=True)
class Disconnected:
    reason: str


@dataclass(frozen=True)
class Profile:
    """Who a person is as the backend stored it: the only name and handle a client shows."""

    person: str
    handle: str | None = None
    name: str | None = None
    guest: bool = False
    device: bool = False
    # Only on the answer to our own ``hello``: what the person belongs to, from the server.
    rooms: tuple[str, ...] | None = None  # rooms joined
    groups: tuple[tuple[str, str], ...] | None = None  # (group id, name) of groups joined


@dataclass(frozen=True)
class Message:
    id: str
    sender: str  # the person (identity id or thing name), never a session's client id
    text: str  # "" for a deleted message (history shows a placeholder)
    ts: int
    name: str | None = None  # the stored display name, filled in from the directory
    room: str | None = None
    to: str | None = None
    group: str | None = None
    replayed: bool = False  # filled in from history after a reconnect
    handle: str | None = None
    guest: bool = False
    edited: int | None = None  # ms of the last edit
    deleted: int | None = None  # ms of the deletion: the text is gone for good

    @property
    def direct(self) -> bool:
        return self.to is not None


@dataclass(frozen=True)
class Presence:
    room: str
    client_id: str  # the person (the protocol's ``person``; ``clientId`` from older backends)
    status: str
    ts: int
    name: str | None = None
    reason: str | None = None
    handle: str | None = None
    guest: bool = False


@dataclass(frozen=True)
class People:
    """The answer to ``whois``: the profiles of the people asked about that exist."""

    people: list[Profile]


@dataclass(frozen=True)
class Invitation:
    group: str
    name: str
    by: Profile
    ts: int = 0


@dataclass(frozen=True)
class Membership:
    """A change in a group's members, shown as a system line in the group."""

    group: str
    event: str  # invited, joined, declined, left, removed, renamed
    person: Profile
    by: Profile | None = None
    name: str | None = None
    ts: int = 0


@dataclass(frozen=True)
class Edit:
    id: str
    sender: str
    text: str
    edited: int
    room: str | None = None
    to: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class Delete:
    id: str
    sender: str
    deleted: int
    room: str | None = None
    to: str | None = None
    group: str | None = None


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
    members: list[str]  # person ids
    profiles: list[Profile] = field(default_factory=list)  # when the backend sends profiles


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


Event = (
    Connected
    | Disconnected
    | Message
    | Presence
    | History
    | Who
    | Group
    | Activity
    | ChatError
    | Profile
    | People
    | Invitation
    | Membership
    | Edit
    | Delete
)


def to_json(event: Event) -> dict[str, Any]:
    """One event as a JSON-able dict with its kind, for ``iotchat listen --json``."""
    body = {k: v for k, v in asdict(event).items() if v is not None}
    return {"event": type(event).__name__.lower(), **body}


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _ms(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _message(body: dict[str, Any]) -> Message | None:
    try:
        deleted = _ms(body, "deleted")
        return Message(
            id=str(body["id"]),
            sender=str(body["sender"]),
            text="" if deleted is not None else str(body["body"]),
            ts=int(body["ts"]),
            name=_text(body, "name"),
            room=body.get("room"),
            to=body.get("recipient"),
            group=body.get("groupId"),
            handle=_text(body, "handle"),
            guest=body.get("guest") is True,
            edited=_ms(body, "edited"),
            deleted=deleted,
        )
    except (KeyError, TypeError, ValueError):
        return None


def profile(body: Any) -> Profile | None:
    """A profile object (``person``, ``handle``, ``name``, ``guest``, ``device``), or None."""
    if not isinstance(body, dict):
        return None
    person = body.get("person") or body.get("clientId")
    if not isinstance(person, str):
        return None
    return Profile(
        person,
        _text(body, "handle"),
        _text(body, "name"),
        body.get("guest") is True,
        body.get("device") is True,
    )


def _with_belongings(found: Profile, body: dict[str, Any]) -> Profile:
    """The rooms and groups hello's answer lists (docs/protocol.md); others carry none."""
    rooms, groups = body.get("rooms"), body.get("groups")
    if isinstance(rooms, list):
        found = replace(found, rooms=tuple(r for r in rooms if isinstance(r, str)))
    if isinstance(groups, list):
        pairs = [
            (g["groupId"], g["name"] if isinstance(g.get("name"), str) else g["groupId"])
            for g in groups
            if isinstance(g, dict) and isinstance(g.get("groupId"), str)
        ]
        found = replace(found, groups=tuple(pairs))
    return found


# The wire's target fields (docs/protocol.md) and the attributes events keep them in.
_TARGETS = {"room": "room", "recipient": "to", "groupId": "group"}


def _where(body: dict[str, Any]) -> dict[str, Any]:
    return {attr: body[k] for k, attr in _TARGETS.items() if isinstance(body.get(k), str)}


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
                body.get("person") or body["clientId"],
                body["status"],
                int(body["ts"]),
                _text(body, "name"),
                body.get("reason"),
                _text(body, "handle"),
                body.get("guest") is True,
            )
        if kind == "profile":
            own = profile(body.get("profile", body))
            return _with_belongings(own, body) if own is not None else None
        if kind == "people":
            found = [profile(p) for p in body.get("people", [])]
            return People([p for p in found if p is not None])
        if kind == "invitation":
            by = profile(body.get("by"))
            if by is None:
                return None
            return Invitation(
                body["groupId"], str(body.get("name", "")), by, int(body.get("ts", 0))
            )
        if kind == "membership":
            about = profile(body.get("person"))
            if about is None:
                return None
            return Membership(
                body["groupId"],
                str(body["event"]),
                about,
                profile(body.get("by")),
                _text(body, "name"),
                int(body.get("ts", 0)),
            )
        if kind == "edit":
            return Edit(
                str(body["id"]),
                str(body["sender"]),
                str(body["body"]),
                int(body["edited"]),
                **_where(body),
            )
        if kind == "delete":
            return Delete(
                str(body["id"]), str(body["sender"]), int(body["deleted"]), **_where(body)
            )
        if kind == "history":
            field = next(k for k in ("room", "with", "groupId") if k in body)
            messages = [m for m in map(_message, body.get("messages", [])) if m is not None]
            kind_of = "group" if field == "groupId" else field
            return History(kind_of, body[field], messages, body.get("cursor"))
        if kind == "who":
            return Who(body["room"], list(body.get("online", [])), bool(body.get("more")))
        if kind == "group":
            listed = list(body["members"])
            profiles = [p for p in map(profile, listed) if p is not None]
            members = [m for m in listed if isinstance(m, str)] + [p.person for p in profiles]
            return Group(body["groupId"], body["name"], body["owner"], members, profiles)
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
