"""Messages in flight and the per-client-id session that outlives a connection.

A session owns what MQTT says survives a reconnect: subscriptions, QoS 1 messages sent but
not acknowledged, and QoS 1 messages waiting for the client (offline, or its in-flight window
full). Every queue here is bounded, so a slow or absent client cannot grow the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

from .auth import Principal
from .codec import Prop, Properties, SubscriptionOptions, publish_parts

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


class Session:
    """State kept per client id; attached to at most one live connection at a time."""

    __slots__ = (
        "client_id",
        "connection",
        "dropped",
        "expiry_handle",
        "expiry_interval",
        "inflight",
        "max_queued",
        "next_packet_id",
        "pending",
        "subscriptions",
    )

    def __init__(self, client_id: str, max_queued: int) -> None:
        self.client_id = client_id
        self.subscriptions: dict[str, SubscriptionOptions] = {}
        self.inflight: dict[int, Delivery] = {}
        self.pending: deque[Delivery] = deque()
        self.max_queued = max_queued
        self.next_packet_id = 1
        self.expiry_interval = 0  # seconds the session outlives its connection
        self.expiry_handle: asyncio.TimerHandle | None = None
        self.connection: object | None = None
        self.dropped = 0  # QoS 1 messages discarded because the queue was full

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
        """Queue a QoS 1 delivery; False (and counted) when the bound is reached."""
        if len(self.pending) >= self.max_queued:
            self.dropped += 1
            return False
        self.pending.append(delivery)
        return True

    def cancel_expiry(self) -> None:
        if self.expiry_handle is not None:
            self.expiry_handle.cancel()
            self.expiry_handle = None
