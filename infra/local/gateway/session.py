"""Messages in flight and the per-client-id session that outlives a connection.

A session owns what MQTT says survives a reconnect: subscriptions, QoS 1 messages sent but
not acknowledged, and QoS 1 messages waiting for the client (offline, or its in-flight window
full). Every queue here is bounded, so a slow or absent client cannot grow the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass, field
from typing import Any, Protocol

from infra.local.identity import Principal

from .codec import Prop, Properties, SubscriptionOptions, publish_parts
from .shared import ShareKey

# MQTT 5 properties forwarded from publisher to subscriber (topic alias and subscription
# identifiers are per-connection and never forwarded).
FORWARDED_PROPERTIES = frozenset(
    {
        Prop.PAYLOAD_FORMAT_INDICATOR,
        Prop.MESSAGE_EXPIRY_INTERVAL,
        Prop.CONTENT_TYPE,
        Prop.RESPONSE_TOPIC,
        Prop.CORRELATION_DATA,
        Prop.USER_PROPERTY,
    }
)


@dataclass(slots=True, eq=False)
class Message:
    """One accepted publish; its wire encodings are cached per (version, qos, retain)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=dict)
    client_id: str = "n/a"
    principal: Principal | None = None
    source: str = "mqtt"  # mqtt | internal | lifecycle | will
    received_at: float = field(default_factory=time.monotonic)
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    _wire: dict[tuple[int, int, bool], tuple[bytes, bytes]] = field(default_factory=dict)

    def remaining_expiry(self, now: float | None = None) -> int | None:
        """Seconds left of the MQTT 5 message expiry interval; None when it never expires."""
        interval = self.properties.get(Prop.MESSAGE_EXPIRY_INTERVAL)
        if interval is None:
            return None
        elapsed = int((now if now is not None else time.monotonic()) - self.received_at)
        return interval - elapsed

    def wire(self, version: int, qos: int, retain: bool, dup: bool = False) -> tuple[bytes, bytes]:
        """(head, tail) of the PUBLISH for this delivery; see :func:`codec.publish_parts`."""
        key = (version, qos, retain)
        if not dup:
            cached = self._wire.get(key)
            if cached is not None:
                return cached
        props = self.properties
        remaining = self.remaining_expiry()
        aged = remaining is not None and remaining != props[Prop.MESSAGE_EXPIRY_INTERVAL]
        if aged:
            props = {**props, Prop.MESSAGE_EXPIRY_INTERVAL: max(remaining or 0, 0)}
        parts = publish_parts(self.topic, self.payload, qos, retain, dup, props, version)
        if not dup and not aged:
            self._wire[key] = parts
        return parts

    def expired(self) -> bool:
        remaining = self.remaining_expiry()
        return remaining is not None and remaining <= 0


@dataclass(slots=True)
class Delivery:
    message: Message
    qos: int
    retain: bool
    # The shared subscription group it came through: when its member goes, another may take it.
    share: ShareKey | None = None

    @property
    def size(self) -> int:
        """What the delivery holds in memory, roughly: topic, payload and bookkeeping."""
        msg = self.message
        return len(msg.payload) + len(msg.topic) + DELIVERY_OVERHEAD


DELIVERY_OVERHEAD = 200  # bytes a queued delivery costs beyond its topic and payload
# Every session without queued messages shares this one: an empty deque costs ~760 bytes and
# most sessions never queue anything. maxlen=0 makes an append to it a no-op, never a leak.
NO_PENDING: deque[Delivery] = deque(maxlen=0)
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024


class SessionConnection(Protocol):
    """What delivering a session's messages needs of the live connection it is attached to
    (:class:`~infra.local.gateway.connection.ClientConnection` is the one implementation)."""

    client_id: str
    principal: Principal | None
    version: int
    closed: bool
    paused: bool  # the transport's write buffer is full: hold QoS 1, drop QoS 0
    out_bytes: int  # bytes written this loop turn, not yet handed to the transport
    client_receive_maximum: int
    client_max_packet: int | None

    def write(self, data: bytes) -> None: ...


class Session:
    """State kept per client id; attached to at most one live connection at a time."""

    __slots__ = (
        "client_id",
        "connection",
        "dropped",
        "expires_at",
        "expiry_handle",
        "expiry_interval",
        "inflight",
        "max_queued",
        "max_queued_bytes",
        "next_packet_id",
        "pending",
        "pending_will",
        "queued_bytes",
        "slow",
        "subscriptions",
    )

    def __init__(
        self, client_id: str, max_queued: int, max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES
    ) -> None:
        self.client_id = client_id
        self.subscriptions: dict[str, SubscriptionOptions] = {}
        self.inflight: dict[int, Delivery] = {}
        # Only enqueue(), take(), clear_pending() and withdraw() change it: queued_bytes
        # follows it. NO_PENDING while empty.
        self.pending: deque[Delivery] = NO_PENDING
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.queued_bytes = 0
        self.next_packet_id = 1
        self.expiry_interval = 0  # seconds the session outlives its connection
        self.expiry_handle: asyncio.TimerHandle | None = None
        # Wall-clock time (epoch seconds) the session ends while offline; it survives a
        # gateway restart, where the timer handle does not.
        self.expires_at: float | None = None
        self.connection: SessionConnection | None = None
        self.dropped = 0  # QoS 1 messages discarded because the queue was full (count or bytes)
        # Busy for longer than the publisher hold's bound: no longer holds publishers back
        # (backpressure.py) until its queue is short again.
        self.slow = False
        # A will waiting out its MQTT 5 Will Delay Interval, and the timer that publishes it.
        self.pending_will: tuple[Message, asyncio.TimerHandle] | None = None

    @property
    def persistent(self) -> bool:
        return self.expiry_interval > 0

    def allocate_packet_id(self) -> int:
        pid = self.next_packet_id
        inflight = self.inflight
        while pid in inflight:
            pid = pid % 65535 + 1
        self.next_packet_id = pid % 65535 + 1
        return pid

    def enqueue(self, delivery: Delivery) -> bool:
        """Queue a QoS 1 delivery; False (and counted) when either bound, the number of
        messages or their bytes, is reached: the newest message is the one dropped."""
        size = delivery.size
        if len(self.pending) >= self.max_queued or self.queued_bytes + size > self.max_queued_bytes:
            self.dropped += 1
            return False
        if self.pending is NO_PENDING:
            self.pending = deque()
        self.pending.append(delivery)
        self.queued_bytes += size
        return True

    def take(self) -> Delivery:
        """The oldest queued delivery, out of the queue."""
        delivery = self.pending.popleft()
        self.queued_bytes -= delivery.size
        if not self.pending:
            self.pending = NO_PENDING
        return delivery

    def clear_pending(self) -> None:
        self.pending = NO_PENDING
        self.queued_bytes = 0

    def withdraw(self, wanted: Callable[[Delivery], bool]) -> list[Delivery]:
        """Take every ``wanted`` delivery out of the in-flight window and the queue (the
        in-flight ones first), e.g. shared-subscription messages another member can take."""
        taken = []
        for pid, delivery in list(self.inflight.items()):
            if wanted(delivery):
                del self.inflight[pid]
                taken.append(delivery)
        kept: deque[Delivery] = deque()
        for delivery in self.pending:
            if wanted(delivery):
                taken.append(delivery)
                self.queued_bytes -= delivery.size
            else:
                kept.append(delivery)
        self.pending = kept if kept else NO_PENDING
        return taken

    def take_will(self) -> Message | None:
        """The will still waiting for its delay, its timer cancelled; None if there is none."""
        if self.pending_will is None:
            return None
        message, timer = self.pending_will
        self.pending_will = None
        timer.cancel()
        return message

    def cancel_expiry(self) -> None:
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
            self.expiry_handle = None


# ---------------------------------------------------------------------- persistence
#
# A persistent session is written out as plain JSON on a clean stop and read back at start
# (the file I/O is the server layer's). Times are wall-clock so the expiry clock keeps running
# while the gateway is down.


def _encode_property(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, list):  # user properties: (name, value) pairs
        return {"pairs": [list(pair) for pair in value]}
    return value


def _decode_property(value: Any) -> Any:
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict) and "pairs" in value:
        return [tuple(pair) for pair in value["pairs"]]
    return value


def _message_record(delivery: Delivery, now: float) -> dict[str, Any] | None:
    msg = delivery.message
    remaining = msg.remaining_expiry()
    if remaining is not None and remaining <= 0:
        return None
    return {
        "topic": msg.topic,
        "payload": base64.b64encode(msg.payload).decode(),
        "qos": delivery.qos,
        "retain": delivery.retain,
        "properties": {str(int(k)): _encode_property(v) for k, v in msg.properties.items()},
        "clientId": msg.client_id,
        "source": msg.source,
        "timestampMs": msg.timestamp_ms,
        "expiresAt": None if remaining is None else now + remaining,
        "share": None if delivery.share is None else list(astuple(delivery.share)),
    }


def session_record(session: Session, now: float) -> dict[str, Any] | None:
    """A persistent session as JSON-ready data; None for one not worth keeping. A connected
    session is written as if its connection ended now (the write-through journal's view).

    Unacknowledged in-flight messages come first, then the queue: on resume they are all
    sent again, which is what MQTT asks of unacknowledged QoS 1 messages anyway.
    """
    expires_at = session.expires_at
    if session.connection is not None:
        expires_at = now + session.expiry_interval
    if not session.persistent or expires_at is None or expires_at <= now:
        return None
    ordered = [*session.inflight.values(), *session.pending]
    messages = [r for r in (_message_record(d, now) for d in ordered) if r is not None]
    return {
        "clientId": session.client_id,
        "expiryInterval": session.expiry_interval,
        "expiresAt": expires_at,
        "subscriptions": {f: asdict(o) for f, o in session.subscriptions.items()},
        "messages": messages[: session.max_queued],
    }


def session_from_record(
    record: dict[str, Any],
    max_queued: int,
    now: float,
    max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
) -> Session | None:
    """The session a :func:`session_record` describes; None once it has expired."""
    expires_at = float(record["expiresAt"])
    if expires_at <= now:
        return None
    session = Session(str(record["clientId"]), max_queued, max_queued_bytes)
    session.expiry_interval = int(record["expiryInterval"])
    session.expires_at = expires_at
    for topic_filter, options in record["subscriptions"].items():
        session.subscriptions[topic_filter] = SubscriptionOptions(**options)
    mono = time.monotonic()
    for item in record["messages"][:max_queued]:
        item_expires = item.get("expiresAt")
        if item_expires is not None and item_expires <= now:
            continue
        props: Properties = {int(k): _decode_property(v) for k, v in item["properties"].items()}
        received_at = mono
        interval = props.get(Prop.MESSAGE_EXPIRY_INTERVAL)
        if interval is not None and item_expires is not None:
            # Age the message so its remaining lifetime is what was left at the deadline.
            received_at = mono - (interval - (item_expires - now))
        msg = Message(
            item["topic"],
            base64.b64decode(item["payload"]),
            int(item["qos"]),
            bool(item["retain"]),
            props,
            item["clientId"],
            None,
            item["source"],
            received_at,
            int(item["timestampMs"]),
        )
        share = item.get("share")
        key = ShareKey(str(share[0]), str(share[1])) if share else None
        session.enqueue(Delivery(msg, int(item["qos"]), bool(item["retain"]), key))
    return session
