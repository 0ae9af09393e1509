"""The Python chat client the CLI and the edge component use.

It connects from a stack file (local or AWS) as a Cognito identity, keeps its subscriptions
across reconnects, and after every reconnect asks each joined room for its newest page of
history so nothing said while it was away is missed; messages are de-duplicated by sender and
``id``, so a QoS 1 redelivery or an overlap with history is shown once.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from . import events
from .events import Event
from .identity import ClientIdentity, Identity
from .stack_file import StackInfo
from .transport import (
    ConnectOptions,
    Mqtt5Transport,
    Mqtt311Transport,
    Transport,
    TransportCallbacks,
    TransportFactory,
)

ROOM_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
ROOM_RULE = "1-64 characters of A-Z a-z 0-9 _ -"
OUT = "chat/out"
STREAM = "chat/stream"
SEEN_LIMIT = 10_000
# Seconds after a reconnect to read each room's history a second time.
GAP_FILL_AGAIN = 2.0


def valid_room(room: str) -> bool:
    """Whether ``room`` is a room name the chat accepts (its rules and Lambdas check again)."""
    return ROOM_NAME.fullmatch(room) is not None


class ConnectError(RuntimeError):
    """The first connection did not come up in time (the reason is the last failure)."""


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
    ) -> None:
        self.stack = stack
        self.identity = identity
        self.client_id = identity.identity_id
        self.inbox = f"chat/in/{self.client_id}"
        self.rooms: dict[str, str | None] = {}  # room -> display name used to join
        self.on_event = on_event
        self.queue: queue.Queue[Event] = queue.Queue()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._gap_fill: set[str] = set()
        self._lock = threading.Lock()
        self._connected = threading.Event()
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
        return self

    def stop(self) -> None:
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
        with self._lock:
            rooms = dict(self.rooms)
        for room in rooms:
            self.transport.subscribe(f"chat/pub/{room}")
        if resumed:
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
            self._emit(events.Disconnected(reason))

    # ------------------------------------------------------------------ receiving

    def _received(self, topic: str, payload: bytes) -> None:
        event = events.parse(topic, payload)
        if event is None:
            return
        if isinstance(event, events.Message):
            if self._first_sight(event):
                self._emit(event)
            return
        if isinstance(event, events.History):
            with self._lock:
                filling = event.kind == "room" and event.target in self._gap_fill
                self._gap_fill.discard(event.target)
            if filling:
                for message in reversed(event.messages):
                    if self._first_sight(message):
                        self._emit(_replayed(message))
                return
            for message in event.messages:
                self._first_sight(message)
        self._emit(event)

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
        body = {"v": 1, **body}
        return self.transport.publish(topic, json.dumps(body, ensure_ascii=False).encode())

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
        """Post to a room; returns the message id (the room echo carries it back)."""
        return self._post({"room": room}, text, name)

    def direct(self, to: str, text: str, name: str | None = None) -> str:
        return self._post({"to": to}, text, name)

    def group_say(self, group: str, text: str, name: str | None = None) -> str:
        return self._post({"group": group}, text, name)

    def _post(self, where: dict[str, str], text: str, name: str | None) -> str:
        """A message to ``where`` (room, person or group) under a new idempotency key."""
        message_id = str(uuid.uuid4())
        body = {"type": "message", "id": message_id, **where, "text": text, "name": name}
        self._send(_without_none(body))
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
        body.update({"room": room, "with": with_, "group": group})
        self._send(_without_none(body))

    def who(self, room: str) -> None:
        self._send({"type": "who", "room": room})

    def create_group(self, name: str, members: list[str] | None = None) -> str:
        request_id = str(uuid.uuid4())
        self._send({"type": "create", "id": request_id, "name": name, "members": members or []})
        return request_id

    def invite(self, group: str, member: str) -> None:
        self._send({"type": "invite", "group": group, "member": member})

    def typing(self, room: str) -> None:
        self._send({"type": "typing", "room": room}, STREAM)

    def telemetry(self, room: str, data: dict[str, Any]) -> None:
        self._send({"type": "telemetry", "room": room, "data": data}, STREAM)


def _without_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def _replayed(message: events.Message) -> events.Message:
    from dataclasses import replace

    return replace(message, replayed=True)
