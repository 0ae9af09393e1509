"""What the commands Lambda does with one request from ``chat/out`` (docs/protocol.md).

The rule ``chat_commands`` hands over the raw payload (base64) with the sender and the time the
rules engine saw it, so nothing a client writes can pose as identity or time. Every rejected
request answers with one ``error`` on the sender's inbox.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from . import keys
from .belongings import Belongings
from .budgets import Budgets
from .doors import PRIVATE, SignedIn, require_door
from .edits import Edits, revised
from .groups import Groups
from .online import OnlineState
from .people import Directory, People, TokenCheck, is_identity
from .protocol import (
    CLIENT_ID,
    MAX_ROOMS_PER_CLIENT,
    VERSION,
    ProtocolError,
    error,
    inbox,
    optional_name,
    page_limit,
    ref_of,
    require_group,
    require_id,
    require_room,
    require_text,
    room_events_topic,
)
from .publisher import Publisher
from .sessions import person_of
from .store import ChatStore, wire_message

log = logging.getLogger("iotchat.commands")


def decode_request(payload_b64: Any) -> dict[str, Any]:
    """The client's JSON object, or BAD_REQUEST."""
    bad = ProtocolError("BAD_REQUEST", "the payload must be a JSON object with a string type")
    try:
        raw = base64.b64decode(payload_b64, validate=True)
        request = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(request, dict) or not isinstance(request.get("type"), str):
        raise bad
    return request


def presence(room: str, person: str, status: str, ts: int, **extra: Any) -> dict[str, Any]:
    """A person's presence in a room (``clientId`` repeats ``person`` for older clients)."""
    body = {
        "v": VERSION,
        "type": "presence",
        "room": room,
        "person": person,
        "clientId": person,
        "status": status,
        "ts": ts,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


class Commands:
    def __init__(
        self,
        store: ChatStore,
        publisher: Publisher,
        new_group_id: Callable[[], str] = lambda: f"g-{uuid.uuid4().hex}",
        tokens: TokenCheck | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        self.directory = Directory(store)
        self.people = People(store, publisher, tokens)
        self.groups = Groups(store, publisher, new_group_id)
        self.edits = Edits(store, publisher)
        self.online = OnlineState(store.db, store.state_table)
        self.budgets = Budgets(store.db, store.state_table)
        self.signed_in = SignedIn(store.db, store.state_table)
        # Where answers and errors for the request being handled go: the asking session's
        # replies topic, chat/in/<its client id> (docs/protocol.md, "People and sessions").
        self.reply_to = ""
        # The door the request being handled came through (doors.py).
        self.door: object = None
        self.handlers: dict[str, Callable[[dict[str, Any], str, int], None]] = {
            "message": self.message,
            "join": self.join,
            "leave": self.leave,
            "history": self.history,
            "who": self.who,
            "hello": self.hello,
            "name": lambda r, s, t: self.people.name(r, s, t, self.reply_to),
            "whois": lambda r, s, t: self.people.whois(r, s, t, self.reply_to),
            "edit": self.edits.edit,
            "delete": self.edits.delete,
            "create": self.groups.create,
            "invite": self.groups.invite,
            "accept": self.groups.accept,
            "decline": self.groups.decline,
            "remove": self.groups.remove,
            "rename": self.groups.rename,
        }

    def handle(self, event: dict[str, Any]) -> None:
        """One rule event: ``{"payload": <base64>, "sender": <client id>, "ts": <ms>}``, and
        ``"door": "private"`` when it came through ``chat/private`` (rule ``chat_private``).

        The handlers see the person (``sessions.person_of`` the client id); what answers the
        request goes to the asking session only (``self.reply_to``)."""
        session = event.get("sender")
        ts = event.get("ts")
        if not isinstance(session, str) or not CLIENT_ID.match(session) or not isinstance(ts, int):
            # Not from the chat's rule (or from iot-data, whose clientid() is "n/a"): no inbox.
            log.warning("ignoring an event without a client sender: %r", sorted(event))
            return
        sender = person_of(session)
        self.reply_to = inbox(session)
        self.door = event.get("door")
        request: dict[str, Any] = {}
        try:
            request = decode_request(event.get("payload"))
            handler = self.handlers.get(request["type"])
            if handler is None:
                raise ProtocolError(
                    "UNKNOWN_TYPE", f"unknown type {request['type'][:40]!r}", ref_of(request)
                )
            require_door(request, event.get("door"))
            if event.get("door") == PRIVATE:
                self.signed_in.note(sender, ts)
            self.budgets.spend(sender, request, ts)
            handler(request, sender, ts)
        except ProtocolError as problem:
            self.publisher.publish(self.reply_to, problem.envelope())
        except Exception:
            # Tell the sender, then fail so the invocation is retried (and recorded if it
            # keeps failing); every step above is safe to repeat.
            self.publisher.publish(
                self.reply_to,
                error("INTERNAL", "the request failed; it will be retried", ref_of(request)),
            )
            raise

    # ------------------------------------------------------------------ messages

    def message(self, request: dict[str, Any], sender: str, ts: int) -> None:
        targets = [f for f in ("room", "recipient", "groupId") if f in request]
        if len(targets) != 1:
            raise ProtocolError(
                "INVALID_TARGET",
                "a message needs exactly one of room, recipient, groupId",
                ref_of(request),
            )
        message_id = require_id(request)
        text = require_text(request)
        # A claimed "name" must be valid, as the room rule checks it, and is then ignored:
        # others see the sender's profile (people.py).
        optional_name(request)
        body: dict[str, Any] = {
            "v": VERSION,
            "type": "message",
            "id": message_id,
            "body": text,
            "sender": sender,
            "ts": ts,
        }
        if targets == ["room"]:
            # Room messages are the rules' job; one reaching us means a rule let it through.
            raise ProtocolError(
                "INVALID_TARGET", "room messages are not sent through commands", message_id
            )
        if targets == ["recipient"]:
            to = self.directory.resolve(request["recipient"], message_id, "recipient")
            self.signed_in.require(to, message_id, "recipient")
            body["recipient"] = to
            self._deliver(keys.direct_conv(sender, to), body, sorted({sender, to}))
        else:
            group = require_group(request)
            self._require_group_member(group, sender, message_id)
            body["groupId"] = group
            self._deliver(keys.group_conv(group), body, self.store.group_members(group))

    def _deliver(self, conv: str, body: dict[str, Any], recipients: list[str]) -> None:
        """Store once; deliver what is stored (a redelivery re-sends the first copy, which
        clients drop by ``id``; this way a retry after a crash still delivers)."""
        if not self.store.put_message(conv, body):
            stored = self.store.get_message(conv, keys.mid(body["sender"], body["id"]))
            if stored is not None:
                body = wire_message(stored)
        for client_id in recipients:
            self.publisher.publish(inbox(client_id), body)

    # ------------------------------------------------------------------ rooms

    def join(self, request: dict[str, Any], sender: str, ts: int) -> None:
        room = require_room(request)
        optional_name(request)  # checked as ever, then ignored: names come from profiles
        rooms = self.store.rooms_of(sender, limit=MAX_ROOMS_PER_CLIENT + 1)
        if room not in rooms and len(rooms) >= MAX_ROOMS_PER_CLIENT:
            raise ProtocolError(
                "LIMIT_EXCEEDED",
                f"a client can be in at most {MAX_ROOMS_PER_CLIENT} rooms",
                ref_of(request),
            )
        # Membership first, then the connection: the presence Lambda records the connection
        # first, then reads memberships, so however the two interleave one of them sees the
        # other's write and the member is never left offline while connected.
        self.store.join(room, sender, None, False, ts)
        if self.online.is_online(sender):
            profile = self.directory.profile(sender)
            self.publisher.publish(
                room_events_topic(room),
                presence(
                    room,
                    sender,
                    "online",
                    ts,
                    handle=profile["handle"],
                    name=profile["name"],
                    guest=profile["guest"],
                ),
            )
        self._send_history("room", room, keys.room_conv(room), None, page_limit({}))

    def leave(self, request: dict[str, Any], sender: str, ts: int) -> None:
        if "groupId" in request and "room" not in request:
            self.groups.leave(request, sender, ts)
            return
        room = require_room(request)
        if self.store.leave(room, sender):
            self.publisher.publish(
                room_events_topic(room), presence(room, sender, "offline", ts, reason="left")
            )

    def who(self, request: dict[str, Any], sender: str, ts: int) -> None:
        room = require_room(request)
        if self.store.room_member(room, sender) is None:
            raise ProtocolError(
                "NOT_A_MEMBER", "who answers only for rooms you have joined", ref_of(request)
            )
        online, more = self.online.online_members(room)
        profiles = self.directory.profiles(entry["clientId"] for entry in online)
        for entry in online:
            entry.update(profiles[entry["clientId"]])
        body: dict[str, Any] = {"v": VERSION, "type": "who", "room": room, "online": online}
        if more:
            body["more"] = True
        self.publisher.publish(self.reply_to, body)

    def history(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        targets = [f for f in ("room", "with", "groupId") if f in request]
        if len(targets) != 1:
            raise ProtocolError(
                "INVALID_REQUEST", "history needs exactly one of room, with, groupId", ref
            )
        limit = page_limit(request)
        cursor = None
        if request.get("cursor") is not None:
            cursor = keys.Cursor.decode(request["cursor"], ref)
        if targets == ["room"]:
            room = require_room(request)
            self._send_history("room", room, keys.room_conv(room), cursor, limit)
        elif targets == ["with"]:
            other = self.directory.resolve(request["with"], ref, "with")
            conv = keys.direct_conv(sender, other)
            self._send_history("with", other, conv, cursor, limit)
        else:
            group = require_group(request)
            self._require_group_member(group, sender, ref)
            self._send_history("groupId", group, keys.group_conv(group), cursor, limit)

    def _send_history(
        self,
        field: str,
        value: str,
        conv: str,
        cursor: keys.Cursor | None,
        limit: int,
    ) -> None:
        page = self.store.history_page(conv, limit, cursor)
        messages = revised(self.store, conv, page.messages)
        # Names as the senders' profiles say now, never as a message claimed them.
        profiles = self.directory.profiles(m["sender"] for m in messages)
        for message in messages:
            author = profiles[message["sender"]]
            message.update(handle=author["handle"], name=author["name"], guest=author["guest"])
        self.publisher.publish(
            self.reply_to,
            {
                "v": VERSION,
                "type": "history",
                field: value,
                "messages": messages,
                "cursor": page.cursor.encode() if page.cursor else None,
            },
        )

    # ------------------------------------------------------------------ people and groups

    def hello(self, request: dict[str, Any], sender: str, ts: int) -> None:
        """The person's profile with the rooms and groups they belong to (so a new session
        anywhere starts with them), then any invitations still waiting for an answer.

        Rooms are public, so a guest gets theirs; groups are private and come only to a
        proven person: through the signed-in door, with an ID token (people.hello answers
        only once Cognito confirmed it), or to a device, whose certificate proves it."""
        belongings = Belongings(self.store)
        also: dict[str, Any] = {"rooms": belongings.rooms(sender)}
        if self.door == PRIVATE or "token" in request or not is_identity(sender):
            also["groups"] = belongings.groups(sender)
        self.people.hello(request, sender, ts, self.reply_to, also)
        for invitation in self.groups.pending(sender):
            self.publisher.publish(
                self.reply_to,
                {
                    "v": VERSION,
                    "type": "invitation",
                    "groupId": invitation["group"],
                    "name": invitation.get("name", ""),
                    "by": self.directory.profile(invitation["by"]),
                    "ts": invitation["ts"],
                },
            )

    def _require_group_member(self, group: str, client_id: str, ref: str | None) -> dict[str, Any]:
        meta = self.store.group_meta(group)
        if meta is None:
            raise ProtocolError("NOT_FOUND", "no such group", ref)
        if not self.store.is_group_member(group, client_id):
            raise ProtocolError("NOT_A_MEMBER", "only members can read or post in a group", ref)
        return meta
