"""The Python chat client the CLI and the edge component use.

It connects from a stack file (local or AWS) as one session of a person (docs/protocol.md,
"People and sessions"): its own client id, the person's inbox and its own replies topic. It
keeps its subscriptions across reconnects and after every reconnect asks each joined room for
its newest page of history so nothing said while it was away is missed; messages are
de-duplicated by sender and ``id``, so a QoS 1 redelivery, a resend or an overlap with history
is shown once. What it sends stays in its :class:`~client.outbox.Outbox` until the chat carries
it back. Names shown are the stored ones (:class:`~client.directory.Directory`), never a name a
message claims.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from . import events
from .directory import Directory
from .events import Event, Message
from .identity import ClientIdentity, Identity
from .outbox import Outbox
from .reasons import describe_error
from .sessions import session_client_id
from .stack_file import StackInfo
from .transport import (
    ConnectOptions,
    Mqtt5Transport,
    Mqtt311Transport,
    Transport,
    TransportCallbacks,
    TransportFactory,
)

log = logging.getLogger("iotchat.client")
ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ROOM_RULE = "1-64 characters of A-Z a-z 0-9 _ -"
OUT = "chat/out"
PRIVATE = "chat/private"  # direct and group commands: signed-in people only (the policy says so)
STREAM = "chat/stream"
SEEN_LIMIT = 10_000
# Seconds after a reconnect to read each room's history a second time.
GAP_FILL_AGAIN = 2.0
# How long a message from someone not yet in the directory may wait for the `whois` answer.
WHOIS_WAIT = 2.0
HELD_LIMIT = 1_000
ASKED_LIMIT = 5_000
RESEND_TICK = 1.0  # seconds between two looks at the outbox
SIGN_IN_NEEDED = (
    "direct messages and private groups need a signed-in account (guests can use public rooms)"
)


def valid_room(room: str) -> bool:
    """Whether ``room`` is a room name the chat accepts (its rules and Lambdas check again)."""
    return ROOM_NAME.fullmatch(room) is not None


class ConnectError(RuntimeError):
    """The first connection did not come up in time (the reason is the last failure)."""


class SignInRequired(RuntimeError):
    """A guest asked for something private; nothing was sent."""

    def __init__(self) -> None:
        super().__init__(SIGN_IN_NEEDED)


class ChatClient:
    """One session in the chat: its subscriptions, de-duplication and the typed requests.

    ``identity`` is a Cognito :class:`~client.identity.Identity` for the default SigV4
    transports; ``transport_factory`` brings its own transport and identity (the edge's).
    """

    def __init__(
        self,
        stack: StackInfo,
        identity: ClientIdentity,
        *,
        protocol: str = "mqtt5",
        on_event: Callable[[Event], None] | None = None,
        transport_factory: TransportFactory | None = None,
        keep_alive: int = 60,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        session: str | None = "py",
        name: str | None = None,
        outbox: Outbox | None = None,
        name_wait: float = 0.0,
    ) -> None:
        """``session`` names the kind of session (its client id is the person's id plus
        ``_<session>-<random>``); None connects with the bare identity id, the one-session
        contract of older backends. ``name`` is the display name sent in ``hello``.
        ``name_wait`` holds a live message from someone not yet known up to that many seconds
        for the ``whois`` answer (for people reading names; 0 shows it at once, unnamed)."""
        self.stack = stack
        self.identity = identity
        self.person = identity.identity_id
        cognito = isinstance(identity, Identity)
        self.client_id = (
            session_client_id(self.person, session) if session and cognito else self.person
        )
        self.signed_in = cognito and bool(getattr(identity, "signed_in", False))
        # Who may use chat/private: signed-in people, and devices, whose certificate proves
        # who they are; never a guest, whose identity id is a bearer token on AWS.
        self.private_allowed = self.signed_in or not cognito
        self.inbox = f"chat/in/{self.person}"
        self.replies = f"chat/in/{self.client_id}"
        self.name = name
        self.name_wait = name_wait
        self.profile: events.Profile | None = None  # ours, once the backend answered hello
        self.directory = Directory()
        self.outbox = outbox or Outbox()
        self.rooms: dict[str, str | None] = {}  # room -> display name used to join
        self.on_event = on_event
        self.queue: queue.Queue[Event] = queue.Queue()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._gap_fill: set[str] = set()
        self._held: dict[str, list[events.Message]] = {}  # person -> messages awaiting whois
        self._asked: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self._reconnected_at = 0.0  # outbox clock time of the last reconnect
        self._last_failure = ""
        callbacks = TransportCallbacks(self._received, self._on_connected, self._on_disconnected)
        options = ConnectOptions(keep_alive, min_backoff, max_backoff)
        self.transport: Transport
        if transport_factory is not None:
            self.transport = transport_factory(stack, identity, self.client_id, callbacks, options)
        elif isinstance(identity, Identity):
            sigv4 = Mqtt311Transport if protocol == "mqtt311" else Mqtt5Transport
            self.transport = sigv4(stack, identity, self.client_id, callbacks, options)
        else:
            raise TypeError("the SigV4 transports connect as a Cognito Identity")

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 15.0) -> ChatClient:
        self.transport.start()
        if not self._connected.wait(timeout):
            self.transport.stop()
            raise ConnectError(self._last_failure or f"no connection within {timeout:.0f} s")
        resender = threading.Thread(target=self._resend_loop, name="outbox", daemon=True)
        resender.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self.transport.stop()

    def __enter__(self) -> ChatClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_connected(self, resumed: bool) -> None:
        self.transport.subscribe(self.inbox)
        if self.replies != self.inbox:
            self.transport.subscribe(self.replies)
        with self._lock:
            rooms = dict(self.rooms)
        for room in rooms:
            self.transport.subscribe(f"chat/pub/{room}")
        try:
            self._hello()
        except Exception as exc:  # no token right now: the chat works, names wait for the next
            log.warning("could not say hello: %s", describe_error(exc))
        if resumed:
            self._reconnected_at = self.outbox.now()
            # What was sent but not carried back may have been lost with the connection.
            for entry in self.outbox.all_pending():
                self.transport.publish(entry.topic, entry.payload)
            # Fill what was said while we were away; _received turns unseen ones into
            # replayed messages instead of a History event. A message posted just before we
            # came back may not be stored yet when the first page is read, so ask twice.
            self._fill_gap(rooms)
            timer = threading.Timer(GAP_FILL_AGAIN, self._fill_gap, args=(rooms,))
            timer.daemon = True
            timer.start()
        self._connected.set()
        self._emit(events.Connected(resumed))

    def _fill_gap(self, rooms: dict[str, str | None]) -> None:
        with self._lock:
            self._gap_fill |= set(rooms)
        for room in rooms:
            self._send({"type": "history", "room": room})

    def _on_disconnected(self, reason: str) -> None:
        self._last_failure = reason
        if self._connected.is_set():
            self._connected.clear()
            if not self._stopped.is_set():  # our own stop() is not news
                self._emit(events.Disconnected(reason))

    def _hello(self) -> None:
        """Tell the backend who this session is (signed-in people prove it with their ID
        token, on the private topic); the answer is our ``profile``."""
        body: dict[str, Any] = {"type": "hello"}
        if self.name:
            body["name"] = self.name
        token = self.identity.id_token() if isinstance(self.identity, Identity) else None
        if self.signed_in and token:
            self._send({**body, "token": token}, PRIVATE)
        else:
            self._send(body)

    def _resend_loop(self) -> None:
        while not self._stopped.wait(RESEND_TICK):
            if not self._connected.is_set():
                continue
            for entry in self.outbox.due():
                with contextlib.suppress(Exception):  # the next reconnect sends it again
                    self.transport.publish(entry.topic, entry.payload)

    # ------------------------------------------------------------------ receiving

    def _received(self, topic: str, payload: bytes) -> None:
        event = events.parse(topic, payload)
        if event is None:
            return
        self._learn(event)
        if isinstance(event, events.Message):
            if event.sender == self.person:
                self.outbox.confirm(event.id)
            if self._first_sight(event):
                self._show(event)
            return
        if isinstance(event, events.ChatError) and event.ref:
            retry = _retry_after(payload)
            self.outbox.refused(event.ref, event.code, retry)
        if isinstance(event, events.People):
            self._release({p.person for p in event.people})
        if isinstance(event, events.History):
            messages = [self._named(m) for m in event.messages]
            event = events.History(event.kind, event.target, messages, event.cursor)
            with self._lock:
                filling = event.kind == "room" and event.target in self._gap_fill
                self._gap_fill.discard(event.target)
            if filling:
                for message in reversed(event.messages):
                    if self._first_sight(message):
                        self._emit(_replayed(message))
                ours = {m.id for m in event.messages if m.sender == self.person}
                for entry in self.outbox.unstored(event.target, ours, self._reconnected_at):
                    with contextlib.suppress(Exception):  # the outbox tries again later
                        self.transport.publish(entry.topic, entry.payload)
                return
            for message in event.messages:
                self._first_sight(message)
        self._emit(event)

    def _learn(self, event: Event) -> None:
        """Every profile an event carries goes into the directory."""
        learned: list[events.Profile] = []
        if isinstance(event, events.Profile):
            learned.append(event)
            if event.person == self.person:
                self.profile = event
        elif isinstance(event, events.People):
            learned += event.people
        elif isinstance(event, events.Presence) and event.handle:
            learned.append(events.Profile(event.client_id, event.handle, event.name, event.guest))
        elif isinstance(event, events.Who):
            learned += [p for p in map(events.profile, event.online) if p and p.handle]
        elif isinstance(event, events.History):
            learned += [
                events.Profile(m.sender, m.handle, m.name, m.guest)
                for m in event.messages
                if m.handle
            ]
        elif isinstance(event, events.Group):
            learned += event.profiles
        elif isinstance(event, events.Invitation):
            learned.append(event.by)
        elif isinstance(event, events.Membership):
            learned += [event.person] + ([event.by] if event.by else [])
        for profile in learned:
            self.directory.learn(profile)

    def _named(self, message: events.Message) -> events.Message:
        """The message with its sender's stored name and handle (a claimed name is dropped)."""
        from dataclasses import replace

        known = self.directory.get(message.sender)
        if known is None:
            return replace(message, name=None) if message.handle is None else message
        return replace(message, name=known.name, handle=known.handle, guest=known.guest)

    def _show(self, message: events.Message) -> None:
        """Emit a live message named; one naming a stranger (its sender, or whom a direct
        message is to) waits briefly, once per person, for the ``whois`` answer, so even the
        first line shows stored names."""
        sender = next(
            (
                p
                for p in (message.sender, message.to)
                if p
                and self.directory.get(p) is None
                and not (p == message.sender and message.handle)
            ),
            None,
        )
        if sender is None:  # everyone it names is known
            self._emit(self._named(message))
            return
        with self._lock:
            room = sum(map(len, self._held.values())) < HELD_LIMIT
            waiting = self._held.get(sender)
            if waiting is not None and room:
                waiting.append(message)
                return
            ask = sender not in self._asked
            hold = ask and room and self.name_wait > 0
            if ask:
                self._asked[sender] = None
                if len(self._asked) > ASKED_LIMIT:
                    self._asked.popitem(last=False)
            if hold:
                self._held[sender] = [message]
        if ask:
            with contextlib.suppress(Exception):
                self.whois([sender])
        if not hold:  # not waiting, asked before, or too much held: show it unnamed now
            self._emit(self._named(message))
            return
        timer = threading.Timer(self.name_wait, self._release, args=({sender},))
        timer.daemon = True
        timer.start()

    def _release(self, people: set[str]) -> None:
        with self._lock:
            released = [m for person in people for m in self._held.pop(person, [])]
        for message in released:
            self._emit(self._named(message))

    def _first_sight(self, message: events.Message) -> bool:
        key = (message.sender, message.id)
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
        return True

    def _emit(self, event: Event) -> None:
        self.queue.put(event)
        if self.on_event is not None:
            self.on_event(event)

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events as they come; stops after ``timeout`` seconds without one (None: never)."""
        while True:
            try:
                yield self.queue.get(timeout=timeout)
            except queue.Empty:
                return

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float = 10.0) -> Event | None:
        """The first queued event matching ``predicate`` (others stay queued in order)."""
        deadline = time.monotonic() + timeout
        skipped: list[Event] = []
        try:
            while (left := deadline - time.monotonic()) > 0:
                try:
                    event = self.queue.get(timeout=left)
                except queue.Empty:
                    return None
                if predicate(event):
                    return event
                skipped.append(event)
            return None
        finally:
            for event in skipped:
                self.queue.put(event)

    # ------------------------------------------------------------------ saying things

    def _send(self, body: dict[str, Any], topic: str = OUT) -> Any:
        return self.transport.publish(topic, _encode(body))

    def _private(self, body: dict[str, Any]) -> Any:
        """A direct or group command: on the private topic, and never tried by a guest."""
        if not self.private_allowed:
            raise SignInRequired()
        return self._send(body, PRIVATE)

    def watch(self, room: str) -> None:
        """Receive a room's traffic without joining it (no membership, no presence)."""
        with self._lock:
            self.rooms.setdefault(room, None)
        self.transport.subscribe(f"chat/pub/{room}")

    def join(self, room: str, name: str | None = None) -> str:
        """Join ``room``; returns the request id an ``error`` refusing the join refers to.

        A name the chat would refuse is still sent, so the refusal comes back in the backend's
        words, but never subscribed to: it may not even be a valid topic filter."""
        request_id = str(uuid.uuid4())
        if valid_room(room):
            with self._lock:
                self.rooms[room] = name
            self.transport.subscribe(f"chat/pub/{room}")
        self._send(_without_none({"type": "join", "id": request_id, "room": room, "name": name}))
        return request_id

    def leave(self, room: str) -> None:
        with self._lock:
            self.rooms.pop(room, None)
        self._send({"type": "leave", "room": room})

    def say(self, room: str, text: str, name: str | None = None) -> str:
        """Post to a room; returns the message id (the room echo carries it back, and until
        it does the outbox sends it again). The room is watched if it is not yet."""
        if valid_room(room) and room not in self.rooms:
            self.watch(room)
        return self._post({"room": room}, text, name, OUT)

    def direct(self, to: str, text: str, name: str | None = None) -> str:
        """A direct message to a person (by handle, or person id); never from a guest."""
        if not self.private_allowed:
            raise SignInRequired()
        return self._post({"recipient": to}, text, name, PRIVATE)

    def group_say(self, group: str, text: str, name: str | None = None) -> str:
        if not self.private_allowed:
            raise SignInRequired()
        return self._post({"groupId": group}, text, name, PRIVATE)

    def _post(self, where: dict[str, str], text: str, name: str | None, topic: str) -> str:
        """A message to ``where`` (room, person or group) under a new idempotency key, kept in
        the outbox until it comes back."""
        message_id = str(uuid.uuid4())
        body = {"type": "message", "id": message_id, **where, "body": text, "name": name}
        payload = _encode(_without_none(body))
        self.outbox.add(message_id, topic, payload, where.get("room"))
        with contextlib.suppress(Exception):  # offline: the outbox sends it on reconnect
            self.transport.publish(topic, payload)
        return message_id

    def history(
        self,
        *,
        room: str | None = None,
        with_: str | None = None,
        group: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> None:
        body: dict[str, Any] = {"type": "history", "cursor": cursor, "limit": limit}
        body.update({"room": room, "with": with_, "groupId": group})
        if room is None:
            self._private(_without_none(body))
        else:
            self._send(_without_none(body))

    def who(self, room: str) -> None:
        self._send({"type": "who", "room": room})

    def whois(self, people: list[str]) -> None:
        """Ask for profiles (person ids or handles, at most 50); a ``people`` event answers."""
        self._send({"type": "whois", "people": people[:50]})

    def set_name(self, name: str) -> None:
        """Change our display name everywhere (a ``profile`` event confirms it)."""
        self.name = name
        self._send({"type": "name", "name": name})

    # ------------------------------------------------------------------ groups (by consent)

    def create_group(self, name: str, members: list[str] | None = None) -> str:
        """A group with us as its only member; ``members`` (handles) are invited."""
        request_id = str(uuid.uuid4())
        self._private({"type": "create", "id": request_id, "name": name, "members": members or []})
        return request_id

    def invite(self, group: str, member: str) -> None:
        self._private({"type": "invite", "groupId": group, "member": member})

    def accept(self, group: str) -> None:
        self._private({"type": "accept", "groupId": group})

    def decline(self, group: str) -> None:
        self._private({"type": "decline", "groupId": group})

    def leave_group(self, group: str) -> None:
        self._private({"type": "leave", "groupId": group})

    def remove(self, group: str, member: str) -> None:
        self._private({"type": "remove", "groupId": group, "member": member})

    def rename(self, group: str, name: str) -> None:
        self._private({"type": "rename", "groupId": group, "name": name})

    # ------------------------------------------------------------------ edits and deletions

    def edit(self, message: Message, text: str) -> None:
        """Replace the text of one of our own messages (others see an ``edit``)."""
        self._change({"type": "edit", "id": message.id, "body": text}, message)

    def delete(self, message: Message) -> None:
        """Remove one of our own messages for good (others see a ``delete``)."""
        self._change({"type": "delete", "id": message.id}, message)

    def _change(self, body: dict[str, Any], message: Message) -> None:
        body["sender"] = message.sender
        if message.room is not None:
            self._send({**body, "room": message.room})
        elif message.group is not None:
            self._private({**body, "groupId": message.group})
        else:
            other = message.to if message.sender == self.person else message.sender
            self._private({**body, "with": other})

    # ------------------------------------------------------------------ the stream

    def typing(self, room: str) -> None:
        self._send({"type": "typing", "room": room}, STREAM)

    def telemetry(self, room: str, data: dict[str, Any]) -> None:
        self._send({"type": "telemetry", "room": room, "data": data}, STREAM)


def _encode(body: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, **body}, ensure_ascii=False).encode()


def _retry_after(payload: bytes) -> float | None:
    """An error's ``retryAfter`` (seconds), when the backend gave one."""
    try:
        value = json.loads(payload).get("retryAfter")
    except (ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and value >= 0 else None


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _replayed(message: events.Message) -> events.Message:
    from dataclasses import replace

    return replace(message, replayed=True)
