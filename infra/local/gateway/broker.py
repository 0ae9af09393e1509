"""The message broker with AWS IoT Core semantics: one handler per MQTT packet type.

Transports feed bytes to :meth:`Broker.data_received`; the broker decodes them, applies
AWS's rules (authorization on connect, publish, subscribe and every delivery, limits,
persistent sessions, retained messages, Last Will, lifecycle events) and writes replies
back through the connection. It never blocks and never awaits, so one event loop serves
every listener.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from infra.local.identity import (
    AdminOnlyAuthorizer,
    Authorizer,
    CredentialStore,
    Principal,
    check_password,
)

from . import lifecycle
from .codec import (
    AUTH,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    MQTT_311,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK_FAILURE_311,
    SUBSCRIBE,
    UNSUBSCRIBE,
    Ack,
    Connack,
    ConnackCode311,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    Prop,
    Properties,
    Publish,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
)
from .connection import ClientConnection, Flusher
from .lifecycle import ConnectionIdentity, DisconnectReason
from .limits import Limits
from .session import (
    FORWARDED_PROPERTIES,
    Delivery,
    Message,
    Session,
    session_from_record,
    session_record,
)
from .topics import (
    BASIC_INGEST_PREFIX,
    InvalidTopic,
    SubscriptionIndex,
    is_reserved,
    validate_topic_filter,
    validate_topic_name,
)

log = logging.getLogger("iotchat.gateway")


def _pid_bytes(pid: int) -> bytes:
    return pid.to_bytes(2, "big")


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


PublishTap = Callable[[PublishEvent], None]


class Refusal(Exception):
    """Close the connection (after an optional MQTT 5 DISCONNECT) for ``reason``."""

    def __init__(self, reason: str, reason_code: int | None = None, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.reason_code = reason_code


class Broker:
    def __init__(
        self,
        *,
        limits: Limits | None = None,
        authorizer: Authorizer | None = None,
        credentials: CredentialStore,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.authorizer: Authorizer = authorizer or AdminOnlyAuthorizer()
        self.credentials = credentials
        self.loop = loop or asyncio.get_running_loop()
        self.flusher = Flusher(self.loop)
        self.connections: dict[str, ClientConnection] = {}
        self.sessions: dict[str, Session] = {}
        self.index: SubscriptionIndex[SubscriptionOptions] = SubscriptionIndex()
        self.retained: dict[str, Message] = {}
        self.taps: list[PublishTap] = []
        self._versions: dict[str, int] = {}
        # versionNumber must keep growing per client id across gateway restarts (presence
        # ordering relies on it), so a client's first connection in this process starts from
        # the start time in microseconds rather than 0.
        self._version_base = time.time_ns() // 1000
        self.stats = {"dropped_qos0": 0, "dropped_qos1": 0, "refused": 0, "malformed": 0}
        self._handlers: dict[int, Callable[[ClientConnection, Packet], None]] = {
            CONNECT: self.handle_connect,  # type: ignore[dict-item]
            PUBLISH: self.handle_publish,  # type: ignore[dict-item]
            PUBACK: self.handle_puback,  # type: ignore[dict-item]
            PUBREC: self.handle_qos2_flow,  # type: ignore[dict-item]
            PUBREL: self.handle_qos2_flow,  # type: ignore[dict-item]
            PUBCOMP: self.handle_qos2_flow,  # type: ignore[dict-item]
            SUBSCRIBE: self.handle_subscribe,  # type: ignore[dict-item]
            UNSUBSCRIBE: self.handle_unsubscribe,  # type: ignore[dict-item]
            PINGREQ: self.handle_pingreq,
            DISCONNECT: self.handle_disconnect,  # type: ignore[dict-item]
            AUTH: self.handle_auth,
        }

    # ------------------------------------------------------------------ transport side

    def new_connection(
        self, sink: object, *, listener: str, source_ip: str, principal: Principal | None
    ) -> ClientConnection:
        conn = ClientConnection(
            sink,  # type: ignore[arg-type]
            self.flusher,
            listener=listener,
            source_ip=source_ip,
            principal=principal,
            max_packet_size=self.limits.max_packet_bytes,
        )
        conn.last_seen = self.loop.time()
        # A client must send CONNECT promptly; reuse the keep-alive timer to enforce it.
        conn.keep_alive = 20
        self._arm_keepalive(conn)
        return conn

    def data_received(self, conn: ClientConnection, data: bytes) -> None:
        if conn.closed:
            return
        conn.last_seen = self.loop.time()
        error: MalformedPacket | None = None
        try:
            packets = conn.reader.feed(data)
        except MalformedPacket as exc:
            packets, error = exc.decoded, exc
        self._dispatch(conn, packets)
        if error is not None and not conn.closed:
            self.stats["malformed"] += 1
            self._on_malformed(conn, error)

    def _dispatch(self, conn: ClientConnection, packets: list[Packet]) -> None:
        handlers = self._handlers
        for packet in packets:
            if conn.closed:
                return
            handler = handlers.get(packet.type)
            try:
                if handler is None:
                    raise Refusal(
                        DisconnectReason.CLIENT_ERROR,
                        ReasonCode.PROTOCOL_ERROR,
                        "server-to-client packet sent by a client",
                    )
                if not conn.connected and packet.type != CONNECT:
                    raise Refusal(
                        DisconnectReason.CLIENT_ERROR,
                        ReasonCode.PROTOCOL_ERROR,
                        "first packet must be CONNECT",
                    )
                handler(conn, packet)
            except Refusal as refusal:
                self.stats["refused"] += 1
                log.info("closing %r: %s", conn, refusal)
                self.close(conn, refusal.reason, refusal.reason_code)
            except MalformedPacket as exc:
                self.stats["malformed"] += 1
                self._on_malformed(conn, exc)
            except Exception:
                # A gateway bug must cost one connection, never the process or other clients.
                log.exception("internal error handling %s from %r", type(packet).__name__, conn)
                self.close(
                    conn, DisconnectReason.SERVER_ERROR, ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
                )

    def connection_lost(self, conn: ClientConnection) -> None:
        """The transport is gone (peer closed, socket error, or we closed it)."""
        self._finish(conn, conn.close_reason or DisconnectReason.CONNECTION_LOST)

    def _on_malformed(self, conn: ClientConnection, exc: MalformedPacket) -> None:
        log.info("malformed data from %r: %s", conn, exc)
        if not conn.connected and exc.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
            # Answer in the oldest dialect the client can read, then close.
            conn.write(b"\x20\x02\x00\x01")
            self.close(conn, DisconnectReason.CLIENT_ERROR)
            return
        self.close(conn, DisconnectReason.CLIENT_ERROR, exc.reason_code)

    def close(self, conn: ClientConnection, reason: str, reason_code: int | None = None) -> None:
        """Close from the server side; an MQTT 5 client first gets DISCONNECT ``reason_code``."""
        if conn.closed:
            return
        if reason_code is not None and conn.connected and conn.version == MQTT_5:
            conn.send(Disconnect(reason_code))
        conn.flush()
        conn.close_reason = conn.close_reason or reason
        conn.closed = True
        conn.sink.close()
        self._finish(conn, conn.close_reason)

    def _finish(self, conn: ClientConnection, reason: str) -> None:
        """Everything that follows the end of a connection, exactly once."""
        if conn.keepalive_handle is not None:
            conn.keepalive_handle.cancel()
            conn.keepalive_handle = None
        conn.closed = True
        if not conn.connected:
            return
        conn.connected = False
        session = conn.session
        if self.connections.get(conn.client_id) is conn:
            del self.connections[conn.client_id]
        if session is not None and session.connection is conn:
            session.connection = None
            if session.persistent:
                session.expires_at = time.time() + session.expiry_interval
                session.expiry_handle = self.loop.call_later(
                    session.expiry_interval, self._expire_session, session
                )
            else:
                self._discard_session(session)
        if conn.will is not None:  # a plain DISCONNECT has already cleared it
            self._publish_will(conn)
        if conn.identity is not None:
            self._lifecycle(*lifecycle.disconnected(conn.identity, _now_ms(), reason))

    # ------------------------------------------------------------------ keep-alive

    def _arm_keepalive(self, conn: ClientConnection) -> None:
        deadline = conn.last_seen + conn.keep_alive * 1.5
        conn.keepalive_handle = self.loop.call_at(deadline, self._check_keepalive, conn)

    def _check_keepalive(self, conn: ClientConnection) -> None:
        conn.keepalive_handle = None
        if conn.closed:
            return
        if self.loop.time() - conn.last_seen >= conn.keep_alive * 1.5:
            log.info("keep-alive timeout for %r", conn)
            self.close(
                conn, DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT, ReasonCode.KEEP_ALIVE_TIMEOUT
            )
        else:
            self._arm_keepalive(conn)

    # ------------------------------------------------------------------ CONNECT

    def handle_connect(self, conn: ClientConnection, packet: Connect) -> None:
        if conn.connected or conn.client_id:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR, ReasonCode.PROTOCOL_ERROR, "second CONNECT"
            )
        limits = self.limits
        v5 = packet.protocol_level == MQTT_5
        conn.version = packet.protocol_level
        client_id = packet.client_id
        assigned = None
        if not client_id:
            if v5 or packet.clean_start:
                client_id = assigned = "iotchat-" + uuid.uuid4().hex
            else:
                self._refuse_connect(
                    conn,
                    ConnackCode311.IDENTIFIER_REJECTED,
                    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                    "empty client id",
                )
                return
        if len(client_id.encode()) > limits.max_client_id_bytes or client_id.startswith("$"):
            self._refuse_connect(
                conn,
                ConnackCode311.IDENTIFIER_REJECTED,
                ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                "client id not allowed",
            )
            return
        conn.client_id = client_id
        session_id = str(uuid.uuid4())

        # Authentication: TLS and WSS listeners know the principal already.
        principal = conn.principal
        if principal is None and conn.listener == "tcp":
            principal = check_password(self.credentials, packet.username, packet.password)
        if principal is None:
            self._connect_failed(conn, client_id, session_id, "", "AUTHORIZATION_FAILED")
            self._refuse_connect(
                conn,
                ConnackCode311.BAD_USERNAME_OR_PASSWORD,
                ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                "bad credentials",
                reason=DisconnectReason.AUTH_ERROR,
            )
            return
        conn.principal = principal
        if not self.authorizer.can_connect(principal, client_id, conn.source_ip):
            self._connect_failed(
                conn, client_id, session_id, principal.identifier, "AUTHORIZATION_FAILED"
            )
            # AWS answers MQTT 5 with CONNACK 0x87 and simply closes an MQTT 3.1.1 connection.
            self._refuse_connect(
                conn,
                None,
                ReasonCode.NOT_AUTHORIZED,
                "connect not authorized",
                reason=DisconnectReason.AUTH_ERROR,
            )
            return

        will = packet.will
        if will is not None:
            try:
                validate_topic_name(will.topic, limits.max_topic_bytes, limits.max_topic_slashes)
                if is_reserved(will.topic):
                    raise InvalidTopic("will topic is reserved")
            except InvalidTopic as exc:
                self._refuse_connect(conn, None, ReasonCode.TOPIC_NAME_INVALID, str(exc))
                return
            if will.qos > 1:
                self._refuse_connect(conn, None, ReasonCode.QOS_NOT_SUPPORTED, "will QoS 2")
                return
            if len(will.payload) > limits.max_payload_bytes:
                self._refuse_connect(conn, None, ReasonCode.PACKET_TOO_LARGE, "will too large")
                return
            conn.will = will
            conn.will_delay = will.properties.get(Prop.WILL_DELAY_INTERVAL, 0)

        props = packet.properties
        conn.client_receive_maximum = props.get(Prop.RECEIVE_MAXIMUM, 65535)
        conn.client_max_packet = props.get(Prop.MAXIMUM_PACKET_SIZE)
        if v5:
            requested_expiry = props.get(Prop.SESSION_EXPIRY_INTERVAL, 0)
        else:
            requested_expiry = 0 if packet.clean_start else limits.session_expiry_default
        expiry = min(requested_expiry, limits.session_expiry_max)
        keep_alive = limits.clamp_keepalive(packet.keep_alive)

        # Takeover: the newest connection for a client id wins.
        previous = self.connections.get(client_id)
        if previous is not None and not previous.closed:
            log.info("client id %r taken over", client_id)
            self.close(previous, DisconnectReason.DUPLICATE_CLIENTID, ReasonCode.SESSION_TAKEN_OVER)

        session = self.sessions.get(client_id)
        session_present = False
        if session is not None and (packet.clean_start or not session.persistent):
            self._discard_session(session)
            session = None
        if session is None:
            session = Session(client_id, limits.max_queued_messages)
            self.sessions[client_id] = session
        else:
            session.cancel_expiry()
            session.expires_at = None
            session_present = True
        session.expiry_interval = expiry
        session.connection = conn
        conn.session = session
        conn.keep_alive = keep_alive
        if conn.keepalive_handle is not None:
            conn.keepalive_handle.cancel()
        self._arm_keepalive(conn)
        conn.rate_tokens = limits.publishes_per_second
        conn.rate_last = self.loop.time()
        conn.subscription_count = len(session.subscriptions)
        conn.connected = True
        self.connections[client_id] = conn

        if v5:
            ack_props: Properties = {
                Prop.RECEIVE_MAXIMUM: limits.max_inflight,
                Prop.MAXIMUM_QOS: 1,
                Prop.RETAIN_AVAILABLE: 1,
                Prop.MAXIMUM_PACKET_SIZE: limits.max_packet_bytes,
                Prop.TOPIC_ALIAS_MAXIMUM: limits.topic_alias_max,
                Prop.WILDCARD_SUBSCRIPTION_AVAILABLE: 1,
                Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 0,
                Prop.SHARED_SUBSCRIPTION_AVAILABLE: 0,
            }
            if keep_alive != packet.keep_alive:
                ack_props[Prop.SERVER_KEEP_ALIVE] = keep_alive
            if expiry != requested_expiry:
                ack_props[Prop.SESSION_EXPIRY_INTERVAL] = expiry
            if assigned:
                ack_props[Prop.ASSIGNED_CLIENT_IDENTIFIER] = assigned
            conn.send(Connack(session_present, ReasonCode.SUCCESS, ack_props))
        else:
            conn.send(Connack(session_present, ConnackCode311.ACCEPTED))

        version_number = self._versions.get(client_id, self._version_base - 1) + 1
        self._versions[client_id] = version_number
        conn.identity = ConnectionIdentity(
            client_id, session_id, principal.identifier, conn.source_ip, version_number
        )
        self._lifecycle(*lifecycle.connected(conn.identity, _now_ms()))
        if session_present:
            self._resume(conn, session)

    def _refuse_connect(
        self,
        conn: ClientConnection,
        code_311: int | None,
        code_5: int,
        why: str,
        reason: str = DisconnectReason.CLIENT_ERROR,
    ) -> None:
        log.info("refusing CONNECT from %s (%r): %s", conn.source_ip, conn.client_id, why)
        if conn.version == MQTT_5:
            conn.send(Connack(False, code_5, {Prop.REASON_STRING: why}))
        elif code_311 is not None:
            conn.send(Connack(False, code_311))
        self.close(conn, reason)

    def _connect_failed(
        self, conn: ClientConnection, client_id: str, session_id: str, principal: str, why: str
    ) -> None:
        ident = ConnectionIdentity(client_id, session_id, principal, conn.source_ip)
        self._lifecycle(*lifecycle.connect_failed(ident, _now_ms(), why))

    def _resume(self, conn: ClientConnection, session: Session) -> None:
        """Redeliver unacknowledged QoS 1 messages (DUP set), then the queue."""
        for pid, delivery in list(session.inflight.items()):
            msg = delivery.message
            if msg.expired():
                del session.inflight[pid]
                continue
            head, tail = msg.wire(conn.version, 1, delivery.retain, dup=True)
            conn.write(head + _pid_bytes(pid) + tail)
        self._drain(conn, session)

    # ------------------------------------------------------------------ PUBLISH

    def handle_publish(self, conn: ClientConnection, packet: Publish) -> None:
        limits = self.limits
        v5 = conn.version == MQTT_5
        qos = packet.qos
        if qos == 2:
            return  # AWS IoT Core does not support QoS 2: no PUBREC, message dropped.
        topic = packet.topic
        props = packet.properties
        if v5 and props:
            topic = self._resolve_alias(conn, topic, props)
        try:
            validate_topic_name(topic, limits.max_topic_bytes, limits.max_topic_slashes)
        except InvalidTopic as exc:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR, ReasonCode.TOPIC_NAME_INVALID, str(exc)
            ) from None
        if len(packet.payload) > limits.max_payload_bytes:
            # AWS disconnects (CLIENT_ERROR) whatever the version; 0x95 is not a valid PUBACK
            # reason code (MQTT 5 3.4.2.1), so MQTT 5 clients get it in a DISCONNECT.
            raise Refusal(
                DisconnectReason.CLIENT_ERROR, ReasonCode.PACKET_TOO_LARGE, "payload exceeds 128 KB"
            )
        if not self._take_rate_token(conn):
            if not v5:
                raise Refusal(DisconnectReason.THROTTLED, None, "publish rate exceeded")
            self._reject_publish(conn, packet, ReasonCode.QUOTA_EXCEEDED, "publish rate exceeded")
            return
        principal = conn.principal
        assert principal is not None
        rule_name = None
        if is_reserved(topic):
            rule_name = _basic_ingest_rule(topic)
            allowed = rule_name is not None and self.authorizer.can_publish(
                principal, conn.client_id, topic, False
            )
        else:
            allowed = self.authorizer.can_publish(principal, conn.client_id, topic, packet.retain)
        if not allowed:
            if not v5:
                raise Refusal(DisconnectReason.AUTH_ERROR, None, f"publish to {topic!r} denied")
            self._reject_publish(conn, packet, ReasonCode.NOT_AUTHORIZED, "not authorized")
            return
        if props:
            props = {k: v for k, v in props.items() if k in FORWARDED_PROPERTIES}
        msg = Message(topic, packet.payload, qos, packet.retain, props, conn.client_id, principal)
        if rule_name is not None:
            self._tap(msg, "basic-ingest", rule_name)
        else:
            self._accept(msg, "mqtt")
        if qos == 1:
            conn.write(b"\x40\x02" + _pid_bytes(packet.packet_id or 0))

    def _resolve_alias(self, conn: ClientConnection, topic: str, props: Properties) -> str:
        alias = props.get(Prop.TOPIC_ALIAS)
        if alias is None:
            return topic
        if alias == 0 or alias > self.limits.topic_alias_max:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR, ReasonCode.TOPIC_ALIAS_INVALID, "topic alias"
            )
        if topic:
            conn.aliases[alias] = topic
            return topic
        known = conn.aliases.get(alias)
        if known is None:
            raise Refusal(DisconnectReason.CLIENT_ERROR, ReasonCode.PROTOCOL_ERROR, "unknown alias")
        return known

    def _take_rate_token(self, conn: ClientConnection) -> bool:
        rate = self.limits.publishes_per_second
        now = self.loop.time()
        tokens = min(rate, conn.rate_tokens + (now - conn.rate_last) * rate)
        conn.rate_last = now
        if tokens < 1.0:
            conn.rate_tokens = tokens
            return False
        conn.rate_tokens = tokens - 1.0
        return True

    def _reject_publish(self, conn: ClientConnection, packet: Publish, code: int, why: str) -> None:
        """MQTT 5 refusal of one message: PUBACK with a reason code; QoS 0 is dropped."""
        log.info("rejected PUBLISH from %r to %r: %s", conn, packet.topic, why)
        if packet.qos == 1 and packet.packet_id is not None:
            conn.send(Ack(PUBACK, packet.packet_id, code, {Prop.REASON_STRING: why}))

    def _accept(self, msg: Message, source: str) -> None:
        """A publish passed every check: retain it, show it to the taps, route it."""
        if msg.retain:
            if msg.payload:
                self.retained[msg.topic] = msg
            else:
                self.retained.pop(msg.topic, None)
        self._tap(msg, source)
        self.route(msg)

    def _tap(self, msg: Message, source: str, rule_name: str | None = None) -> None:
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
        )
        for tap in self.taps:
            try:
                tap(event)
            except Exception:
                log.exception("publish tap failed")

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
            seen = targets.get(client_id)  # type: ignore[arg-type]
            if seen is None:
                targets[client_id] = (qos, retain)  # type: ignore[index]
            else:
                targets[client_id] = (max(qos, seen[0]), retain or seen[1])  # type: ignore[index]
        for client_id, (qos, retain) in targets.items():
            session = sessions.get(client_id)
            if session is not None:
                self.deliver(session, msg, qos, retain)

    def deliver(self, session: Session, msg: Message, qos: int, retain: bool) -> None:
        conn: ClientConnection | None = session.connection  # type: ignore[assignment]
        if conn is None:
            if qos == 1 and not session.enqueue(Delivery(msg, qos, retain)):
                self.stats["dropped_qos1"] += 1
            return
        if not self.authorizer.can_receive(conn.principal, conn.client_id, msg.topic):  # type: ignore[arg-type]
            return
        if qos == 0:
            if conn.paused:
                self.stats["dropped_qos0"] += 1
                return
            head, tail = msg.wire(conn.version, 0, retain)
            if (
                conn.client_max_packet is not None
                and len(head) + len(tail) > conn.client_max_packet
            ):
                return
            conn.write(head + tail if tail else head)
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

    def _send_qos1(self, conn: ClientConnection, session: Session, delivery: Delivery) -> None:
        msg = delivery.message
        head, tail = msg.wire(conn.version, 1, delivery.retain)
        if (
            conn.client_max_packet is not None
            and len(head) + len(tail) + 2 > conn.client_max_packet
        ):
            return
        pid = session.allocate_packet_id()
        session.inflight[pid] = delivery
        conn.write(head + _pid_bytes(pid) + tail)

    def _drain(self, conn: ClientConnection, session: Session) -> None:
        """Move queued QoS 1 deliveries into the in-flight window while it has room."""
        window = min(self.limits.max_inflight, conn.client_receive_maximum)
        pending = session.pending
        while pending and len(session.inflight) < window and not conn.paused and not conn.closed:
            delivery = pending.popleft()
            msg = delivery.message
            if msg.expired():
                continue
            if not self.authorizer.can_receive(conn.principal, conn.client_id, msg.topic):  # type: ignore[arg-type]
                continue
            self._send_qos1(conn, session, delivery)

    def writing_paused(self, conn: ClientConnection) -> None:
        conn.paused = True

    def writing_resumed(self, conn: ClientConnection) -> None:
        conn.paused = False
        if conn.session is not None and conn.connected:
            self._drain(conn, conn.session)

    # ------------------------------------------------------------------ acknowledgements

    def handle_puback(self, conn: ClientConnection, packet: Ack) -> None:
        session = conn.session
        if session is None:
            return
        if session.inflight.pop(packet.packet_id, None) is not None and session.pending:
            self._drain(conn, session)

    def handle_qos2_flow(self, conn: ClientConnection, packet: Ack) -> None:
        """PUBREC/PUBREL/PUBCOMP only exist for QoS 2, which AWS IoT Core does not support."""
        raise Refusal(DisconnectReason.CLIENT_ERROR, ReasonCode.PROTOCOL_ERROR, "QoS 2 flow")

    # ------------------------------------------------------------------ SUBSCRIBE

    def handle_subscribe(self, conn: ClientConnection, packet: Subscribe) -> None:
        limits = self.limits
        v5 = conn.version == MQTT_5
        session = conn.session
        assert session is not None and conn.principal is not None
        if Prop.SUBSCRIPTION_IDENTIFIER in packet.properties:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR,
                ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "subscription identifiers are not supported",
            )
        if any(o.qos == 2 for _, o in packet.subscriptions):
            return  # AWS IoT Core sends no SUBACK for a QoS 2 subscription request.
        fail = SUBACK_FAILURE_311
        too_many = len(packet.subscriptions) > limits.max_filters_per_subscribe
        codes: list[int] = []
        granted: list[tuple[str, SubscriptionOptions, bool]] = []
        for topic_filter, opts in packet.subscriptions:
            code = opts.qos
            if too_many:
                code = ReasonCode.QUOTA_EXCEEDED if v5 else fail
            else:
                try:
                    validate_topic_filter(
                        topic_filter, limits.max_topic_bytes, limits.max_topic_slashes
                    )
                    if topic_filter.startswith("$share/"):
                        code = ReasonCode.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if v5 else fail
                    elif not self.authorizer.can_subscribe(
                        conn.principal, conn.client_id, topic_filter
                    ):
                        code = ReasonCode.NOT_AUTHORIZED if v5 else fail
                    elif (
                        topic_filter not in session.subscriptions
                        and conn.subscription_count >= limits.max_subscriptions_per_connection
                    ):
                        code = ReasonCode.QUOTA_EXCEEDED if v5 else fail
                except InvalidTopic:
                    code = ReasonCode.TOPIC_FILTER_INVALID if v5 else fail
            if code < 0x80:
                new = topic_filter not in session.subscriptions
                session.subscriptions[topic_filter] = opts
                self.index.add(topic_filter, session.client_id, opts)
                conn.subscription_count += new
                granted.append((topic_filter, opts, new))
            codes.append(code)
        conn.send(Suback(packet.packet_id, codes))
        if granted and conn.identity is not None:
            self._lifecycle(
                *lifecycle.subscription_change(
                    conn.identity, _now_ms(), "subscribed", [f for f, _, _ in granted]
                )
            )
        for topic_filter, opts, new in granted:
            self._send_retained(conn, session, topic_filter, opts, new)

    def _send_retained(
        self,
        conn: ClientConnection,
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
            if self.authorizer.can_receive(conn.principal, conn.client_id, msg.topic):  # type: ignore[arg-type]
                head, tail = msg.wire(conn.version, 0, True)
                conn.write(head + tail)
        else:
            self.deliver(session, msg, 1, True)

    def handle_unsubscribe(self, conn: ClientConnection, packet: Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        codes = []
        removed = []
        for topic_filter in packet.topic_filters:
            if session.subscriptions.pop(topic_filter, None) is not None:
                self.index.remove(topic_filter, session.client_id)
                conn.subscription_count -= 1
                removed.append(topic_filter)
                codes.append(ReasonCode.SUCCESS)
            else:
                codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
        conn.send(Unsuback(packet.packet_id, codes))
        if removed and conn.identity is not None:
            self._lifecycle(
                *lifecycle.subscription_change(conn.identity, _now_ms(), "unsubscribed", removed)
            )

    # ------------------------------------------------------------------ the rest

    def handle_pingreq(self, conn: ClientConnection, packet: Packet) -> None:
        conn.write(bytes((PINGRESP << 4, 0)))

    def handle_disconnect(self, conn: ClientConnection, packet: Disconnect) -> None:
        session = conn.session
        new_expiry = packet.properties.get(Prop.SESSION_EXPIRY_INTERVAL)
        if new_expiry is not None and session is not None:
            if session.expiry_interval == 0 and new_expiry > 0:
                raise Refusal(
                    DisconnectReason.CLIENT_ERROR,
                    ReasonCode.PROTOCOL_ERROR,
                    "session expiry raised from 0 at DISCONNECT",
                )
            session.expiry_interval = min(new_expiry, self.limits.session_expiry_max)
        if packet.reason_code != ReasonCode.DISCONNECT_WITH_WILL:
            conn.will = None
        self.close(conn, DisconnectReason.CLIENT_INITIATED_DISCONNECT)

    def handle_auth(self, conn: ClientConnection, packet: Packet) -> None:
        raise Refusal(
            DisconnectReason.CLIENT_ERROR,
            ReasonCode.BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        )

    # ------------------------------------------------------------------ sessions

    def _discard_session(self, session: Session) -> None:
        session.cancel_expiry()
        for topic_filter in session.subscriptions:
            self.index.remove(topic_filter, session.client_id)
        session.subscriptions.clear()
        session.pending.clear()
        session.inflight.clear()
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def _expire_session(self, session: Session) -> None:
        session.expiry_handle = None
        if session.connection is None:
            log.info("session %r expired", session.client_id)
            self._discard_session(session)

    def _publish_will(self, conn: ClientConnection) -> None:
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
            self._accept(msg, "will")

    def _delayed_will(self, msg: Message, session: Session | None) -> None:
        # A reconnect to the same session within the delay cancels the will (MQTT 5 3.1.3.2.2).
        if session is not None and session.connection is not None:
            return
        self._accept(msg, "will")

    # ------------------------------------------------------------------ internal API

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
        self._accept(
            Message(topic, payload, qos, retain, props, client_id, principal, source), source
        )

    def _lifecycle(self, topic: str, payload: bytes) -> None:
        client_id = topic.rsplit("/", 1)[-1]
        if not lifecycle.emits_events(client_id):
            return
        self._accept(Message(topic, payload, 1, False, {}, "n/a", None, "lifecycle"), "lifecycle")

    def shutdown(self) -> None:
        """Server-initiated close of every connection (lifecycle events and wills included)."""
        for conn in list(self.connections.values()):
            self.close(
                conn, DisconnectReason.SERVER_INITIATED_DISCONNECT, ReasonCode.SERVER_SHUTTING_DOWN
            )
        for session in list(self.sessions.values()):
            session.cancel_expiry()

    def export_sessions(self) -> list[dict[str, object]]:
        """Persistent sessions with no live connection, as JSON-ready records (after
        :meth:`shutdown`, that is every persistent session)."""
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
            session = session_from_record(record, self.limits.max_queued_messages, now)
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


def _basic_ingest_rule(topic: str) -> str | None:
    if not topic.startswith(BASIC_INGEST_PREFIX):
        return None
    rule, sep, rest = topic[len(BASIC_INGEST_PREFIX) :].partition("/")
    return rule if rule and sep and rest else None


def _now_ms() -> int:
    return int(time.time() * 1000)


__all__ = ["MQTT_311", "Broker", "PublishEvent", "PublishTap", "Refusal"]
