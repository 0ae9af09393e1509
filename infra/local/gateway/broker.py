"""The message broker with AWS IoT Core semantics: one handler per MQTT packet type.

Transports feed bytes to :meth:`Broker.data_received`; the broker decodes them, hands each
packet to its handler and ends connections (keep-alive, refusals, takeover, shutdown). Like
Mosquitto, it keeps the two big jobs apart: :mod:`.connect` answers CONNECT (client id,
authentication, authorization, will, takeover, CONNACK), and :mod:`.delivery` owns sessions,
subscriptions and retained messages and writes every message out. Nothing here blocks or
awaits, so one event loop serves every listener.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import Any

from infra.local.identity import CredentialStore, Principal

from . import lifecycle
from .authorizer import AdminOnlyAuthorizer, Authorizer
from .codec import (
    AUTH,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    MQTT_311,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK_FAILURE_311,
    SUBSCRIBE,
    UNSUBSCRIBE,
    Ack,
    Auth,
    Connack,
    ConnackCode311,
    Connect,
    Disconnect,
    MalformedPacket,
    Packet,
    Pingreq,
    Pingresp,
    Prop,
    Properties,
    Publish,
    ReasonCode,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    encode,
    encode_puback,
)
from .connect import Connector
from .connection import ClientConnection, Flusher, Sink
from .delivery import PublishEvent, PublishTap, Router
from .lifecycle import DisconnectReason, now_ms
from .limits import Limits
from .session import FORWARDED_PROPERTIES, Message, Session
from .shared import is_shared, parse_shared
from .topics import (
    InvalidTopic,
    basic_ingest_rule,
    is_reserved,
    validate_topic_filter,
    validate_topic_name,
)

log = logging.getLogger("iotchat.gateway")

# How often the keep-alive sweep runs: a silent connection is closed between 1.5 x its
# keep-alive and that plus one sweep.
KEEPALIVE_SWEEP_SECONDS = 1.0

# A handler takes the packet class its type number decodes to; the codec guarantees the
# pairing, which a dict keyed by type number cannot express to the type checker.
Handler = Callable[[ClientConnection, Any], None]


class Refusal(Exception):
    """Close the connection (after an optional MQTT 5 DISCONNECT) for ``reason``."""

    def __init__(self, reason: str, reason_code: int | None = None, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason
        self.reason_code = reason_code


class Broker:
    """One broker for every listener: connections by client id, a handler per packet type."""

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
        self._keepalive_sweep: asyncio.TimerHandle | None = None
        self.router = Router(self.limits, self.authorizer, self.loop)
        self.hold = self.router.hold
        self.hold.resume = self._resume_held
        self.hold.throttle = self._throttle_held
        self.connector = Connector(self)
        self._handlers: dict[int, Handler] = {
            CONNECT: self.handle_connect,
            PUBLISH: self.handle_publish,
            PUBACK: self.handle_puback,
            PUBREC: self.handle_qos2_flow,
            PUBREL: self.handle_qos2_flow,
            PUBCOMP: self.handle_qos2_flow,
            SUBSCRIBE: self.handle_subscribe,
            UNSUBSCRIBE: self.handle_unsubscribe,
            PINGREQ: self.handle_pingreq,
            DISCONNECT: self.handle_disconnect,
            AUTH: self.handle_auth,
        }

    # The router's state, under the names the stack and the tests use.

    @property
    def sessions(self) -> dict[str, Session]:
        return self.router.sessions

    @property
    def taps(self) -> list[PublishTap]:
        return self.router.taps

    @property
    def stats(self) -> dict[str, int]:
        return self.router.stats

    # ------------------------------------------------------------------ transport side

    def new_connection(
        self, sink: Sink, *, listener: str, source_ip: str, principal: Principal | None
    ) -> ClientConnection:
        conn = ClientConnection(
            sink,
            self.flusher,
            listener=listener,
            source_ip=source_ip,
            principal=principal,
            max_packet_size=self.limits.max_packet_bytes,
        )
        conn.last_seen = self.loop.time()
        # CONNECT must come within the listener's connect deadline, counted from accept
        # (server.py), not re-armed by each byte as a keep-alive timer would be.
        return conn

    def data_received(self, conn: ClientConnection, data: bytes | bytearray | memoryview) -> None:
        if conn.closed:
            return
        conn.last_seen = self.loop.time()
        error: MalformedPacket | None = None
        try:
            packets = conn.reader.feed(data)
        except MalformedPacket as exc:
            packets, error = exc.decoded, exc
        if conn.stash is not None:  # held: what a paused transport still hands over waits too
            conn.stash.extend(packets)
            packets = []
        self._dispatch(conn, packets)
        if error is not None and not conn.closed:
            self.stats["malformed"] += 1
            self._on_malformed(conn, error)

    def _dispatch(self, conn: ClientConnection, packets: list[Packet]) -> None:
        handlers = self._handlers
        hold = self.hold
        for at, packet in enumerate(packets):
            if conn.closed:
                return
            if hold.saturated and packet.type == PUBLISH and hold.should_hold(conn):
                # Backpressure: this PUBLISH and what follows wait, and so does the socket.
                conn.stash = packets[at:]
                hold.hold(conn)
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

    def _resume_held(self, conn: ClientConnection) -> None:
        """Backpressure is over for ``conn`` (or it is now answered 0x97): read it again and
        handle the packets that waited."""
        packets, conn.stash = conn.stash or [], None
        if conn.closed:
            return
        conn.sink.resume_reading()
        self._dispatch(conn, packets)

    def _throttle_held(self, conn: ClientConnection) -> None:
        """An MQTT 3.1.1 publisher held too long: AWS disconnects a publisher over a limit."""
        conn.stash = None
        log.info("closing %r: held by backpressure too long", conn)
        self.close(conn, DisconnectReason.THROTTLED)

    def writing_paused(self, conn: ClientConnection) -> None:
        conn.paused = True

    def writing_resumed(self, conn: ClientConnection) -> None:
        conn.paused = False
        if conn.session is not None and conn.connected:
            self.router.drain(conn, conn.session)

    def _on_malformed(self, conn: ClientConnection, exc: MalformedPacket) -> None:
        log.info("malformed data from %r: %s", conn, exc)
        if not conn.connected and exc.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION:
            # Answer in the oldest dialect the client can read, then close.
            refusal = Connack(False, ConnackCode311.UNACCEPTABLE_PROTOCOL_VERSION)
            conn.write(encode(refusal, MQTT_311))
            self.close(conn, DisconnectReason.CLIENT_ERROR)
            return
        self.close(conn, DisconnectReason.CLIENT_ERROR, exc.reason_code)

    # ------------------------------------------------------------------ the end of a connection

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
        conn.closed = True
        conn.stash = None
        self.hold.closed(conn)
        if not conn.connected:
            return
        conn.connected = False
        session = conn.session
        if self.connections.get(conn.client_id) is conn:
            del self.connections[conn.client_id]
        if session is not None and session.connection is conn:
            self.router.detach(session)
        if conn.will is not None:  # a plain DISCONNECT has already cleared it
            self.router.publish_will(conn)
        if conn.identity is not None:
            self.router.lifecycle_event(lifecycle.disconnected(conn.identity, now_ms(), reason))

    def arm_keepalive(self, conn: ClientConnection) -> None:
        """Keep-alive is checked by one sweep a second over the connections, not by a timer
        per connection (a timer, its handle and its context cost ~350 bytes each)."""
        self._arm_sweep()

    def _arm_sweep(self) -> None:
        if self._keepalive_sweep is None:
            # Its own context: the lifecycle events it causes are nobody's republish.
            self._keepalive_sweep = self.loop.call_later(
                KEEPALIVE_SWEEP_SECONDS, self._sweep_keepalive, context=contextvars.Context()
            )

    def _sweep_keepalive(self) -> None:
        """Close every connection silent for 1.5 x its keep-alive (AWS's rule)."""
        self._keepalive_sweep = None
        now = self.loop.time()
        expired = [
            conn
            for conn in self.connections.values()
            if now - conn.last_seen >= conn.keep_alive * 1.5 and not conn.closed
        ]
        for conn in expired:
            log.info("keep-alive timeout for %r", conn)
            self.close(
                conn, DisconnectReason.MQTT_KEEP_ALIVE_TIMEOUT, ReasonCode.KEEP_ALIVE_TIMEOUT
            )
        if self.connections:
            self._arm_sweep()

    # ------------------------------------------------------------------ CONNECT

    def handle_connect(self, conn: ClientConnection, packet: Connect) -> None:
        if conn.connected or conn.client_id:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR, ReasonCode.PROTOCOL_ERROR, "second CONNECT"
            )
        self.connector.handle(conn, packet)

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
        if not conn.take_rate_token(self.loop.time(), limits.publishes_per_second):
            if not v5:
                raise Refusal(DisconnectReason.THROTTLED, None, "publish rate exceeded")
            self._reject_publish(conn, packet, ReasonCode.QUOTA_EXCEEDED, "publish rate exceeded")
            return
        if self.hold.refuses(conn):
            # Held longer than publisher_hold_seconds and the stack is still saturated.
            self._reject_publish(conn, packet, ReasonCode.QUOTA_EXCEEDED, "the stack is busy")
            return
        principal = conn.principal
        assert principal is not None
        rule_name = None
        if is_reserved(topic):
            rule_name = basic_ingest_rule(topic)
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
            self.router.tap(msg, "basic-ingest", rule_name)
        else:
            self.router.accept(msg, "mqtt")
        if qos == 1:
            conn.write(encode_puback(packet.packet_id or 0))

    def _resolve_alias(self, conn: ClientConnection, topic: str, props: Properties) -> str:
        alias = props.get(Prop.TOPIC_ALIAS)
        if alias is None:
            return topic
        if alias == 0 or alias > self.limits.topic_alias_max:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR, ReasonCode.TOPIC_ALIAS_INVALID, "topic alias"
            )
        if topic:
            if conn.aliases is None:
                conn.aliases = {}
            conn.aliases[alias] = topic
            return topic
        known = conn.aliases.get(alias) if conn.aliases is not None else None
        if known is None:
            raise Refusal(DisconnectReason.CLIENT_ERROR, ReasonCode.PROTOCOL_ERROR, "unknown alias")
        return known

    def _reject_publish(self, conn: ClientConnection, packet: Publish, code: int, why: str) -> None:
        """MQTT 5 refusal of one message: PUBACK with a reason code; QoS 0 is dropped."""
        log.info("rejected PUBLISH from %r to %r: %s", conn, packet.topic, why)
        if packet.qos == 1 and packet.packet_id is not None:
            conn.send(Ack(PUBACK, packet.packet_id, code, {Prop.REASON_STRING: why}))

    # ------------------------------------------------------------------ acknowledgements

    def handle_puback(self, conn: ClientConnection, packet: Ack) -> None:
        session = conn.session
        if session is None:
            return
        if session.inflight.pop(packet.packet_id, None) is not None:
            if session.pending:
                self.router.drain(conn, session)
            if session.expiry_interval:
                self.router.session_changed(session)

    def handle_qos2_flow(self, conn: ClientConnection, packet: Ack) -> None:
        """PUBREC/PUBREL/PUBCOMP only exist for QoS 2, which AWS IoT Core does not support."""
        raise Refusal(DisconnectReason.CLIENT_ERROR, ReasonCode.PROTOCOL_ERROR, "QoS 2 flow")

    # ------------------------------------------------------------------ SUBSCRIBE, UNSUBSCRIBE

    def handle_subscribe(self, conn: ClientConnection, packet: Subscribe) -> None:
        session = conn.session
        assert session is not None
        if Prop.SUBSCRIPTION_IDENTIFIER in packet.properties:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR,
                ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "subscription identifiers are not supported",
            )
        if any(o.qos == 2 for _, o in packet.subscriptions):
            return  # AWS IoT Core sends no SUBACK for a QoS 2 subscription request.
        too_many = len(packet.subscriptions) > self.limits.max_filters_per_subscribe
        codes: list[int] = []
        granted: list[tuple[str, SubscriptionOptions, bool]] = []
        for topic_filter, opts in packet.subscriptions:
            code = self._subscribe_code(conn, session, topic_filter, opts, too_many)
            if code < 0x80:
                new = self.router.subscribe(session, topic_filter, opts)
                conn.subscription_count += new
                granted.append((topic_filter, opts, new))
            codes.append(code)
        conn.send(Suback(packet.packet_id, codes))
        if granted and conn.identity is not None:
            self.router.lifecycle_event(
                lifecycle.subscription_change(
                    conn.identity, now_ms(), "subscribed", [f for f, _, _ in granted]
                )
            )
        for topic_filter, opts, new in granted:
            self.router.send_retained(conn, session, topic_filter, opts, new)

    def _subscribe_code(
        self,
        conn: ClientConnection,
        session: Session,
        topic_filter: str,
        opts: SubscriptionOptions,
        too_many: bool,
    ) -> int:
        """SUBACK's code for one filter: the granted QoS, or why not (MQTT 3.1.1: 0x80)."""
        limits = self.limits
        v5 = conn.version == MQTT_5
        fail = SUBACK_FAILURE_311
        assert conn.principal is not None
        if too_many:
            return ReasonCode.QUOTA_EXCEEDED if v5 else fail
        shared = is_shared(topic_filter)
        try:
            if shared:
                # The group's filter has the usual limits; the $share/<name>/ prefix is extra.
                parse_shared(topic_filter, limits.max_topic_bytes, limits.max_topic_slashes)
            else:
                validate_topic_filter(
                    topic_filter, limits.max_topic_bytes, limits.max_topic_slashes
                )
        except InvalidTopic:
            return ReasonCode.TOPIC_FILTER_INVALID if v5 else fail
        if shared and opts.no_local:
            raise Refusal(
                DisconnectReason.CLIENT_ERROR,
                ReasonCode.PROTOCOL_ERROR,
                "No Local on a shared subscription",  # MQTT 5 3.8.3.1
            )
        # A shared filter is authorised as written: topicfilter/$share/<name>/<filter>.
        if not self.authorizer.can_subscribe(conn.principal, conn.client_id, topic_filter):
            return ReasonCode.NOT_AUTHORIZED if v5 else fail
        if (
            topic_filter not in session.subscriptions
            and conn.subscription_count >= limits.max_subscriptions_per_connection
        ):
            return ReasonCode.QUOTA_EXCEEDED if v5 else fail
        return opts.qos

    def handle_unsubscribe(self, conn: ClientConnection, packet: Unsubscribe) -> None:
        session = conn.session
        assert session is not None
        codes = []
        removed = []
        for topic_filter in packet.topic_filters:
            if self.router.unsubscribe(session, topic_filter):
                conn.subscription_count -= 1
                removed.append(topic_filter)
                codes.append(ReasonCode.SUCCESS)
            else:
                codes.append(ReasonCode.NO_SUBSCRIPTION_EXISTED)
        conn.send(Unsuback(packet.packet_id, codes))
        if removed and conn.identity is not None:
            self.router.lifecycle_event(
                lifecycle.subscription_change(conn.identity, now_ms(), "unsubscribed", removed)
            )

    # ------------------------------------------------------------------ the rest

    def handle_pingreq(self, conn: ClientConnection, packet: Pingreq) -> None:
        conn.send(Pingresp())

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

    def handle_auth(self, conn: ClientConnection, packet: Auth) -> None:
        raise Refusal(
            DisconnectReason.CLIENT_ERROR,
            ReasonCode.BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        )

    # ------------------------------------------------------------------ lifecycle

    def shutdown(self) -> None:
        """Server-initiated close of every connection (lifecycle events and wills included)."""
        if self._keepalive_sweep is not None:
            self._keepalive_sweep.cancel()
            self._keepalive_sweep = None
        for conn in list(self.connections.values()):
            self.close(
                conn, DisconnectReason.SERVER_INITIATED_DISCONNECT, ReasonCode.SERVER_SHUTTING_DOWN
            )
        for session in list(self.sessions.values()):
            session.cancel_expiry()
            session.take_will()  # a delayed will does not outlive the gateway


__all__ = ["MQTT_311", "Broker", "PublishEvent", "PublishTap", "Refusal"]
