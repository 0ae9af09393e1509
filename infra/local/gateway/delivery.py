"""Where an accepted message goes: the retained store, the publish taps, every matching session.

The :class:`Router` owns the broker's message state (sessions by client id, the subscription
index, retained messages) and every path out to a client: routing a publish to the sessions
whose filters match, QoS 0 writes, the QoS 1 in-flight window and its queue, redelivery on
resume, retained messages on subscribe, and a connection's Last Will. Every delivery asks the
authorizer first, as AWS IoT Core checks Receive on each message. A shared subscription's group
(:mod:`.shared`) gets each message once, at one member chosen at random among those who may
receive it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypedDict

from infra.local.identity import Principal
from infra.local.trace import current_trace, new_trace_id

from . import lifecycle
from .authorizer import Authorizer
from .backpressure import PublisherHold
from .codec import Properties, SubscriptionOptions, join_publish
from .connection import ClientConnection
from .journal import Journal, retained_from_record
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
from .shared import SharedGroup, SharedSubscriptions, ShareKey, is_shared, parse_shared
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
        self.shared = SharedSubscriptions()
        # Picks a shared group's member at random, as AWS does (not for security: no secret).
        self.chooser = random.Random()  # noqa: S311
        self.retained: dict[str, Message] = {}
        self.taps: list[PublishTap] = []
        self.stats = {
            "dropped_qos0": 0,
            "dropped_qos1": 0,
            "refused": 0,
            "malformed": 0,
            "connect_throttled": 0,
            # Backpressure (backpressure.py): times the stack became saturated, publishes
            # that waited, publishers told (0x97 or THROTTLED), subscribers found slow.
            "backpressure_episodes": 0,
            "publishers_held": 0,
            "publishers_throttled": 0,
            "slow_subscribers": 0,
        }
        self.hold = PublisherHold(limits, loop, self.stats)
        # Where retained messages and persistent sessions are written through (journal.py).
        self.journal: Journal | None = None

    # ------------------------------------------------------------------ accepted messages

    def accept(self, msg: Message, source: str) -> None:
        """A publish passed every check: retain it, show it to the taps, route it."""
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
            if self.journal is not None:
                self.journal.retained_changed(msg.topic, msg if msg.payload else None)
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
        for group in self.shared.matching(msg.topic):
            self._deliver_shared(group, msg)

    def _deliver_shared(self, group: SharedGroup, msg: Message, leaving: str = "") -> bool:
        """Give ``msg`` to one member of ``group`` (not ``leaving``): a connected member that
        may receive it, else (QoS 1) the queue of an offline persistent member; True if one
        took it. Subscription options are the chosen member's own."""
        member = self._choose(group, msg.topic, leaving)
        if member is None:
            return False
        session, opts = member
        qos = opts.qos if opts.qos < msg.qos else msg.qos
        if session.connection is None and qos == 0:
            return False
        self.deliver(session, msg, qos, msg.retain and opts.retain_as_published, group.key)
        return True

    def _choose(
        self, group: SharedGroup, topic: str, leaving: str
    ) -> tuple[Session, SubscriptionOptions] | None:
        online: list[tuple[Session, SubscriptionOptions]] = []
        offline: list[tuple[Session, SubscriptionOptions]] = []
        for client_id, opts in group.members.items():
            session = self.sessions.get(client_id)
            if session is None or client_id == leaving:
                continue
            conn = session.connection
            if conn is None:
                offline.append((session, opts))
            elif not conn.closed and self._may_receive(conn, topic):
                online.append((session, opts))
        candidates = online or offline
        return self.chooser.choice(candidates) if candidates else None

    def _hand_over(self, session: Session) -> None:
        """The session's connection is gone: another connected member of the same group takes
        each shared-subscription message it has not acknowledged (MQTT 5 4.8.2 lets the server
        do so at once), so a group's QoS 1 message is not stuck with an absent member."""

        def taken_by_another(delivery: Delivery) -> bool:
            if delivery.share is None:
                return False
            group = self.shared.group(delivery.share)
            if group is None:
                return False
            member = self._choose(group, delivery.message.topic, session.client_id)
            return member is not None and member[0].connection is not None

        for delivery in session.withdraw(taken_by_another):
            group = self.shared.group(delivery.share) if delivery.share else None
            if group is not None:
                self._deliver_shared(group, delivery.message, session.client_id)

    def _may_receive(self, conn: SessionConnection, topic: str) -> bool:
        principal = conn.principal  # always set once connected
        return principal is not None and self.authorizer.can_receive(
            principal, conn.client_id, topic
        )

    def deliver(
        self, session: Session, msg: Message, qos: int, retain: bool, share: ShareKey | None = None
    ) -> None:
        if qos == 1 and session.expiry_interval and self.journal is not None:
            self.journal.session_changed(session.client_id)
        conn = session.connection
        if conn is None:
            if qos == 1 and not session.enqueue(Delivery(msg, qos, retain, share)):
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
            if session.enqueue(Delivery(msg, qos, retain, share)):
                self.hold.queue_grew(session, conn)
            else:
                self.stats["dropped_qos1"] += 1
                self.hold.dropped(session)
            return
        self._send_qos1(conn, session, Delivery(msg, qos, retain, share))

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
        if session.slow or session in self.hold.busy:
            self.hold.queue_shrank(session)

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
        """AWS delivers a retained message only to a filter equal to its topic, so never to a
        shared subscription (``$share/...`` is no topic name)."""
        if opts.retain_handling == 2 or (opts.retain_handling == 1 and not new):
            return
        if is_shared(topic_filter):
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

    def retained_message(self, topic: str) -> Message | None:
        """The message retained on ``topic`` (iot-data GetRetainedMessage); None if there is
        none or its MQTT 5 Message Expiry has passed (it is then dropped)."""
        msg = self.retained.get(topic)
        if msg is not None and msg.expired():
            del self.retained[topic]
            return None
        return msg

    def retained_messages(self) -> list[Message]:
        """Every retained message still valid, by topic (iot-data ListRetainedMessages)."""
        return [m for t in sorted(self.retained) if (m := self.retained_message(t)) is not None]

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
        # MQTT 5 3.1.3.2.2: the will goes out when its delay passes or the session ends,
        # whichever comes first; a session that ends with its connection (Session Expiry 0)
        # sends it at once.
        session = conn.session
        delay = conn.will_delay
        if session is None or self.sessions.get(session.client_id) is not session:
            delay = 0  # the session ended with the connection
        else:
            delay = min(delay, session.expiry_interval)
        if delay <= 0 or session is None:
            self.accept(msg, "will")
            return
        session.take_will()
        timer = self.loop.call_later(delay, self._delayed_will, session)
        session.pending_will = (msg, timer)

    def _delayed_will(self, session: Session) -> None:
        # A reconnect to the session within the delay has taken the will back (connect.py).
        msg = session.take_will()
        if msg is not None:
            self.accept(msg, "will")

    def _publish_pending_will(self, session: Session) -> None:
        """The session ends before its will's delay has passed: the will goes out now."""
        msg = session.take_will()
        if msg is not None:
            self.accept(msg, "will")

    # ------------------------------------------------------------------ sessions

    def subscribe(self, session: Session, topic_filter: str, opts: SubscriptionOptions) -> bool:
        """Add or replace one subscription; True when the filter is new to the session."""
        new = topic_filter not in session.subscriptions
        session.subscriptions[topic_filter] = opts
        self._index_add(topic_filter, session.client_id, opts)
        self.session_changed(session)
        return new

    def unsubscribe(self, session: Session, topic_filter: str) -> bool:
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        self._index_remove(topic_filter, session.client_id)
        self.session_changed(session)
        return True

    def _index_add(self, topic_filter: str, client_id: str, opts: SubscriptionOptions) -> None:
        """A shared filter joins its group; any other goes into the subscription index."""
        if is_shared(topic_filter):
            self.shared.join(parse_shared(topic_filter), client_id, opts)
        else:
            self.index.add(topic_filter, client_id, opts)

    def _index_remove(self, topic_filter: str, client_id: str) -> None:
        if is_shared(topic_filter):
            self.shared.leave(parse_shared(topic_filter), client_id)
        else:
            self.index.remove(topic_filter, client_id)

    def detach(self, session: Session) -> None:
        """The session's connection is gone: keep it until its expiry, or drop it now."""
        session.connection = None
        self.hold.forget(session)
        self.session_changed(session)
        self._hand_over(session)
        if session.persistent:
            session.expires_at = time.time() + session.expiry_interval
            session.expiry_handle = self.loop.call_later(
                session.expiry_interval, self._expire_session, session
            )
        else:
            self.discard_session(session)

    def discard_session(self, session: Session) -> None:
        session.cancel_expiry()
        self.hold.forget(session)
        if self.journal is not None:
            self.journal.session_changed(session.client_id)
        if session.connection is None:
            self._hand_over(session)  # what came back in since the disconnect
        for topic_filter in session.subscriptions:
            self._index_remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        session.clear_pending()
        session.inflight.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        self._publish_pending_will(session)

    def _expire_session(self, session: Session) -> None:
        session.expiry_handle = None
        if session.connection is None:
            log.info("session %r expired", session.client_id)
            self.discard_session(session)

    # ------------------------------------------------------------------ write-through

    def session_changed(self, session: Session) -> None:
        """A persistent session's subscriptions, queue or window changed: journal it."""
        if self.journal is not None and session.expiry_interval:
            self.journal.session_changed(session.client_id)

    def journal_record(self, client_id: str, now: float) -> dict[str, object] | None:
        """The journal's view of a client id's session: its record, or None once gone."""
        session = self.sessions.get(client_id)
        return session_record(session, now) if session is not None else None

    def compact_journal(self) -> None:
        if self.journal is not None:
            persistent = [c for c, s in self.sessions.items() if s.persistent]
            self.journal.compact(list(self.retained.values()), persistent)

    def restore_retained(self, records: list[dict[str, object]]) -> int:
        """Bring back the retained messages the journal kept; returns how many."""
        now = time.time()
        restored = 0
        for record in records:
            msg = retained_from_record(record, now)
            if msg is not None:
                self.retained[msg.topic] = msg
                restored += 1
        return restored

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
                self._index_add(topic_filter, session.client_id, opts)
            assert session.expires_at is not None
            session.expiry_handle = self.loop.call_later(
                session.expires_at - now, self._expire_session, session
            )
            restored += 1
        return restored
