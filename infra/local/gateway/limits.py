"""AWS IoT Core's service limits, as the gateway enforces them.

Every value defaults to what AWS documents; each can be changed (a benchmark raises the
publish rate, a test shortens the minimum keep-alive) without touching gateway code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 128 * 1024
    max_packet_bytes: int = 149_504  # what AWS announces as Maximum Packet Size in CONNACK
    max_client_id_bytes: int = 128
    max_topic_bytes: int = 256
    max_topic_slashes: int = 7
    max_subscriptions_per_connection: int = 50
    max_filters_per_subscribe: int = 8
    publishes_per_second: float = 100.0  # per connection, inbound
    max_inflight: int = 100  # unacknowledged QoS 1 messages each way
    max_queued_messages: int = 1000  # QoS 1 messages kept for an offline or busy session
    # ... and the bytes they may take (topic + payload): what overflows is dropped and counted.
    # AWS bounds a persistent session's queue by its account-level queued-message quotas
    # (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits);
    # a few MB here keeps a day of chat for a client that is away, not 100 MB per guest.
    max_queued_bytes: int = 4 * 1024 * 1024
    keepalive_min: int = 30
    keepalive_max: int = 1200
    keepalive_default: int = 1200  # used when a client asks for 0 (no keep-alive)
    session_expiry_default: int = 3600  # MQTT 3.1.1 persistent sessions
    session_expiry_max: int = 3600  # account setting; AWS allows raising it to 7 days
    topic_alias_max: int = 8
    websocket_ttl_seconds: int = 24 * 3600
    write_buffer_high_water: int = 1024 * 1024  # bytes pending to one client before QoS 0 drops
    # One deadline per connection, counted from accept: the TLS handshake, the WebSocket
    # upgrade and CONNECT must all be done within it, however the bytes trickle in.
    connect_deadline_seconds: float = 10.0
    # Sockets per listener still before a successful CONNECT; more are closed at once.
    max_pending_connections: int = 256
    # AWS: 1 CONNECT per second per client id
    # (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits),
    # with a small burst so a page reload or a quick reconnect is not refused.
    connects_per_second_per_client: float = 1.0
    connect_burst: int = 5
    # Backpressure (backpressure.py, docs/gateway.md): the rule work in flight past which
    # publishers are held (released under half of each): evaluations queued on the loop (each
    # room message's becomes one delivery per subscriber at once, so this bounds the burst a
    # subscriber's queue takes), action tasks (a store waiting for its write: as many as the
    # store rate times its latency, which is seconds on a loaded machine) and their bytes ...
    rule_evaluations_high: int = 256
    rule_tasks_high: int = 2048
    rule_work_high_bytes: int = 16 * 1024 * 1024
    # ... a connected subscriber's queue length that holds them too (released under half) ...
    busy_queue_messages: int = 100
    # ... and how long a publisher waits before it is told: MQTT 5 PUBACK 0x97 while the
    # stack stays saturated, MQTT 3.1.1 disconnected (THROTTLED); a subscriber busy that long
    # is slow and no longer holds anyone.
    publisher_hold_seconds: float = 5.0
    # The kernel's receive buffer of each connection (SO_RCVBUF, set on the listeners and
    # inherited by accepted sockets; 0 leaves the kernel's autotuning, up to several MB).
    # Backpressure only reaches a sender once this buffer is full: a few MB would be tens of
    # thousands of small publishes waiting unseen, and seconds of latency after an overload.
    receive_buffer_bytes: int = 128 * 1024

    def clamp_keepalive(self, requested: int) -> int:
        """AWS replaces 0 with the default and clamps anything else into the allowed range."""
        if requested == 0:
            return self.keepalive_default
        return max(self.keepalive_min, min(self.keepalive_max, requested))

    @classmethod
    def from_overrides(cls, items: list[str]) -> Limits:
        """Build limits from ``name=value`` strings (the ``--limit`` option)."""
        known = {f.name: f.type for f in fields(cls)}
        changes: dict[str, Any] = {}  # field name -> its new value, of the field's type
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in known:
                raise ValueError(f"unknown limit {item!r}; known: {', '.join(sorted(known))}")
            try:
                changes[name] = float(value) if known[name] == "float" else int(value)
            except ValueError:
                raise ValueError(f"limit {name} needs a number, not {value!r}") from None
        return replace(cls(), **changes)
