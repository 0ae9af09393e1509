"""Where an accepted message goes: the retained store, the publish taps, every matching session.

The :class:`Router` owns the broker's message state (sessions by client id, the subscription
index, retained messages) and every path out to a client: routing a publish to the sessions
whose filters match, QoS 0 writes, the QoS 1 in-flight window and its queue, redelivery on
resume, retained messages on subscribe, and a connection's Last Will. Every delivery asks the
authorizer first, as AWS IoT Core checks Receive on each message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from infra.local.identity import Principal
from infra.local.trace import current_trace, new_trace_id

from . import lifecycle
from .authorizer import Authorizer
from .codec import Properties, SubscriptionOptions, join_publish
from .connection import ClientConnection
from .limits import Limits
from .session import (
    FORWARDED_PROPERTIES,
    Delivery,
    Message,
    Session,
    SessionConnection,
    session_from_record,
    session_record,
)
from .topics import SubscriptionIndex, validate_topic_name

log = logging.getLogger("iotchat.gateway")


@dataclass(frozen=True, slots=True)
class PublishEvent:
    """What the publish tap sees: every accepted publish, whatever its source."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    client_id: str
    principal: Principal | None
    properties: Properties
    source: str  # mqtt | internal | lifecycle | will | basic-ingest
    timestamp_ms: int
    rule_name: str | None = None  # Basic Ingest target, when source == "basic-ingest"
    # The message's trace (infra/local/trace.py): the one being carried on when a rule or a
    # traced Lambda publishes it, else a new one.
    trace_id: str = ""


PublishTap = Callable[[PublishEvent], None]


class PublishOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Router.publish`, for those who pass them on."""

    qos: int
    retain: bool
    properties: Properties | None
    client_id: str
    principal: Principal | None
    source: str


class Router:
    """The broker's sessions, subscriptions and retained messages, and delivery to clients."""

    def __init__(
        self, limits: Limits, authorizer: Authorizer, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.limits = limits
        self.authorizer = authorizer
        self.loop = loop
        self.sessions: dict[str, Session] = {}
        self.index: SubscriptionIndex[SubscriptionOptions] = SubscriptionIndex()
        self.retained: dict[str, Message] = {}
        self.taps: list[PublishTap] = []
        self.stats = {
            "dropped_qos0": 0,
            "dropped_qos1": 0,
            "refused": 0,
            "malformed": 0,
            "connect_throttled": 0,
        }

    # ------------------------------------------------------------------ accepted messages

    def accept(self, msg: Message, source: str) -> None:
        """A publish passed every check: retain it, show it to the taps, route it."""
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
        self.tap(msg, source)
        self.route(msg)

    def tap(self, msg: Message, source: str, rule_name: str | None = None) -> None:
        if not self.taps:
            return
        event = PublishEvent(
            msg.topic,
            msg.payload,
            msg.qos,
            msg.retain,
            msg.client_id,
            msg.principal,
            msg.properties,
            source,
            msg.timestamp_ms,
            rule_name,
            current_trace.get() or new_trace_id(),
        )
        for tap in self.taps:
            try:
                tap(event)
            except Exception:
                log.exception("publish tap failed")

    def lifecycle_event(self, event: tuple[str, bytes]) -> None:
        """Publish an ``$aws/events/...`` event (QoS 1, as AWS sends them)."""
        topic, payload = event
        client_id = topic.rsplit("/", 1)[-1]
        if not lifecycle.emits_events(client_id):
            return
        self.accept(Message(topic, payload, 1, False, {}, "n/a", None, "lifecycle"), "lifecycle")

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        client_id: str = "n/a",
        principal: Principal | None = None,
        source: str = "internal",
    ) -> None:
        """Publish from inside the stack (iot-data HTTP, rule republish); raises InvalidTopic."""
        if qos not in (0, 1):
            raise ValueError("QoS must be 0 or 1")
        validate_topic_name(topic, self.limits.max_topic_bytes, self.limits.max_topic_slashes)
        if len(payload) > self.limits.max_payload_bytes:
            raise ValueError("payload exceeds the 128 KB limit")
        props = {k: v for k, v in (properties or {}).items() if k in FORWARDED_PROPERTIES}
        self.accept(
            Message(topic, payload, qos, retain, props, client_id, principal, source), source
        )

    # ------------------------------------------------------------------ fan-out

    def route(self, msg: Message) -> None:
        """Deliver to every session whose subscription matches, once each, at its best QoS."""
        targets: dict[str, tuple[int, bool]] = {}
        sessions = self.sessions
        publisher = msg.client_id
        for client_id, opts in self.index.match(msg.topic):
            if opts.no_local and client_id == publisher:
                continue
            qos = opts.qos if opts.qos < msg.qos else msg.qos
            retain = msg.retain and opts.retain_as_published
            seen = targets.get(client_id)
            if seen is None:
                targets[client_id] = (qos, retain)
            else:
                targets[client_id] = (max(qos, seen[0]), retain or seen[1])
        for client_id, (qos, retain) in targets.items():
            session = sessions.get(client_id)
            if session is not None:
                self.deliver(session, msg, qos, retain)

    def _may_receive(self, conn: SessionConnection, topic: str) -> bool:
        principal = conn.principal  # always set once connected
        return principal is not None and self.authorizer.can_receive(
            principal, conn.client_id, topic
        )

    def deliver(self, session: Session, msg: Message, qos: int, retain: bool) -> None:
        conn = session.connection
        if conn is None:
            if qos == 1 and not session.enqueue(Delivery(msg, qos, retain)):
                self.stats["dropped_qos1"] += 1
            return
        if not self._may_receive(conn, msg.topic):
            return
        if qos == 0:
            # The connection's outbound bytes (this turn's and the transport's) are bounded
            # by write_buffer_high_water: past it, QoS 0 is dropped and counted.
            if conn.paused or conn.out_bytes >= self.limits.write_buffer_high_water:
                self.stats["dropped_qos0"] += 1
                return
            head, tail = msg.wire(conn.version, 0, retain)
            if (
                conn.client_max_packet is not None
                and len(head) + len(tail) > conn.client_max_packet
            ):
                return
            conn.write(join_publish(head, tail))
            return
        if (
            conn.paused
            or session.pending
            or len(session.inflight) >= min(self.limits.max_inflight, conn.client_receive_maximum)
        ):
            if not session.enqueue(Delivery(msg, qos, retain)):
                self.stats["dropped_qos1"] += 1
            return
        self._send_qos1(conn, session, Delivery(msg, qos, retain))

    def _send_qos1(self, conn: SessionConnection, session: Session, delivery: Delivery) -> None:
        msg = delivery.message
        head, tail = msg.wire(conn.version, 1, delivery.retain)
        if (
            conn.client_max_packet is not None
            and len(head) + len(tail) + 2 > conn.client_max_packet
        ):
            return
        pid = session.allocate_packet_id()
        session.inflight[pid] = delivery
        conn.write(join_publish(head, tail, pid))

    def drain(self, conn: SessionConnection, session: Session) -> None:
        """Move queued QoS 1 deliveries into the in-flight window while it has room."""
        window = min(self.limits.max_inflight, conn.client_receive_maximum)
        pending = session.pending
        while pending and len(session.inflight) < window and not conn.paused and not conn.closed:
            delivery = session.take()
            msg = delivery.message
            if msg.expired():
                continue
            if not self._may_receive(conn, msg.topic):
                continue
            self._send_qos1(conn, session, delivery)

    def resume(self, conn: SessionConnection, session: Session) -> None:
        """Redeliver unacknowledged QoS 1 messages (DUP set), then the queue."""
        for pid, delivery in list(session.inflight.items()):
            msg = delivery.message
            if msg.expired():
                del session.inflight[pid]
                continue
            head, tail = msg.wire(conn.version, 1, delivery.retain, dup=True)
            conn.write(join_publish(head, tail, pid))
        self.drain(conn, session)

    def send_retained(
        self,
        conn: SessionConnection,
        session: Session,
        topic_filter: str,
        opts: SubscriptionOptions,
        new: bool,
    ) -> None:
        """AWS delivers a retained message only to a filter equal to its topic."""
        if opts.retain_handling == 2 or (opts.retain_handling == 1 and not new):
            return
        msg = self.retained.get(topic_filter)
        if msg is None:
            return
        if msg.expired():
            del self.retained[topic_filter]
            return
        qos = min(msg.qos, opts.qos)
        if qos == 0:
            if self._may_receive(conn, msg.topic):
                head, tail = msg.wire(conn.version, 0, True)
                conn.write(join_publish(head, tail))
        else:
            self.deliver(session, msg, 1, True)

    # ------------------------------------------------------------------ Last Will

    def publish_will(self, conn: ClientConnection) -> None:
        """The connection ended without a plain DISCONNECT: publish its will, maybe later."""
        will = conn.will
        conn.will = None
        if will is None or conn.principal is None:
            return
        if not self.authorizer.can_publish(conn.principal, conn.client_id, will.topic, will.retain):
            return
        props = {k: v for k, v in will.properties.items() if k in FORWARDED_PROPERTIES}
        msg = Message(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            props,
            conn.client_id,
            conn.principal,
            source="will",
        )
        if conn.will_delay:
            session = conn.session
            self.loop.call_later(conn.will_delay, self._delayed_will, msg, session)
        else:
            self.accept(msg, "will")

    def _delayed_will(self, msg: Message, session: Session | None) -> None:
        # A reconnect to the same session within the delay cancels the will (MQTT 5 3.1.3.2.2).
        if session is not None and session.connection is not None:
            return
        self.accept(msg, "will")

    # ------------------------------------------------------------------ sessions

    def subscribe(self, session: Session, topic_filter: str, opts: SubscriptionOptions) -> bool:
        """Add or replace one subscription; True when the filter is new to the session."""
        new = topic_filter not in session.subscriptions
        session.subscriptions[topic_filter] = opts
        self.index.add(topic_filter, session.client_id, opts)
        return new

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        self.index.remove(topic_filter, session.client_id)
        return True

    def detach(self, session: Session) -> None:
        """The session's connection is gone: keep it until its expiry, or drop it now."""
        session.connection = None
        if session.persistent:
            session.expires_at = time.time() + session.expiry_interval
            session.expiry_handle = self.loop.call_later(
                session.expiry_interval, self._expire_session, session
            )
        else:
            self.discard_session(session)

    def discard_session(self, session: Session) -> None:
        session.cancel_expiry()
        for topic_filter in session.subscriptions:
            self.index.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        session.clear_pending()
        session.inflight.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def _expire_session(self, session: Session) -> None:
        session.expiry_handle = None
        if session.connection is None:
            log.info("session %r expired", session.client_id)
            self.discard_session(session)

    def export_sessions(self) -> list[dict[str, object]]:
        """Persistent sessions with no live connection, as JSON-ready records."""
        now = time.time()
        records = []
        for session in self.sessions.values():
            if session.connection is not None:
                continue
            record = session_record(session, now)
            if record is not None:
                records.append(record)
        return records

    def restore_sessions(self, records: list[dict[str, object]]) -> int:
        """Bring back sessions :meth:`export_sessions` wrote; the expired ones stay gone.
        Each resumes its remaining expiry; returns how many were restored."""
        now = time.time()
        restored = 0
        for record in records:
            session = session_from_record(
                record, self.limits.max_queued_messages, now, self.limits.max_queued_bytes
            )
            if session is None or session.client_id in self.sessions:
                continue
            self.sessions[session.client_id] = session
            for topic_filter, opts in session.subscriptions.items():
                self.index.add(topic_filter, session.client_id, opts)
            assert session.expires_at is not None
            session.expiry_handle = self.loop.call_later(
                session.expires_at - now, self._expire_session, session
            )
            restored += 1
        return restored
