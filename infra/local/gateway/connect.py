"""CONNECT, as AWS IoT Core answers it: client id, authentication, authorization, will,
takeover, session, CONNACK and the ``connected`` lifecycle event.

Each refusal answers in the client's own dialect (an MQTT 5 CONNACK reason code, an MQTT
3.1.1 return code, or AWS's silent close) and, where AWS does, publishes ``connect_failed``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from infra.local.identity import Principal, check_password

from . import lifecycle
from .codec import (
    MQTT_5,
    Connack,
    ConnackCode311,
    Connect,
    Prop,
    Properties,
    ReasonCode,
)
from .connection import ClientConnection
from .lifecycle import ConnectionIdentity, DisconnectReason, now_ms
from .session import Session
from .topics import InvalidTopic, is_reserved, validate_topic_name

if TYPE_CHECKING:
    from .broker import Broker

log = logging.getLogger("iotchat.gateway")


class ConnectRefused(Exception):
    """Answer CONNECT with a refusal (``code_311`` None: MQTT 3.1.1 gets no CONNACK)."""

    def __init__(
        self,
        code_311: int | None,
        code_5: int,
        why: str,
        reason: str = DisconnectReason.CLIENT_ERROR,
    ) -> None:
        super().__init__(why)
        self.code_311 = code_311
        self.code_5 = code_5
        self.why = why
        self.reason = reason


class Connector:
    """Turns a CONNECT into a connected client (or a refusal) for one broker."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._versions: dict[str, int] = {}
        # versionNumber must keep growing per client id across gateway restarts (presence
        # ordering relies on it), so a client's first connection in this process starts from
        # the start time in microseconds rather than 0.
        self._version_base = time.time_ns() // 1000
        # Per client id: the loop time its connect bucket is full again (a token bucket kept
        # as one number, as GCRA does: no tuple per client id).
        self._connect_buckets: dict[str, float] = {}

    def handle(self, conn: ClientConnection, packet: Connect) -> None:
        conn.version = packet.protocol_level
        try:
            client_id, assigned = self._client_id(packet)
            conn.client_id = client_id
            session_id = str(uuid.uuid4())
            principal = self._authenticate(conn, packet, session_id)
            self._throttle(conn)
            self._check_will(conn, packet)
        except ConnectRefused as refused:
            self._refuse(conn, refused)
            return
        self._accept(conn, packet, principal, session_id, assigned)

    # ------------------------------------------------------------------ checks

    def _client_id(self, packet: Connect) -> tuple[str, str | None]:
        """The client id to use, and the one the server assigned (MQTT 5) when it did."""
        client_id = packet.client_id
        assigned = None
        if not client_id:
            if packet.protocol_level != MQTT_5 and not packet.clean_start:
                raise ConnectRefused(
                    ConnackCode311.IDENTIFIER_REJECTED,
                    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                    "empty client id",
                )
            client_id = assigned = "iotchat-" + uuid.uuid4().hex
        too_long = len(client_id.encode()) > self.broker.limits.max_client_id_bytes
        if too_long or client_id.startswith("$"):
            raise ConnectRefused(
                ConnackCode311.IDENTIFIER_REJECTED,
                ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                "client id not allowed",
            )
        return client_id, assigned

    def _authenticate(self, conn: ClientConnection, packet: Connect, session_id: str) -> Principal:
        """Who connects (TLS and WSS listeners know already), and may they connect at all."""
        broker = self.broker
        principal = conn.principal
        if principal is None and conn.listener == "tcp" and not self._temporary_key(packet):
            principal = check_password(broker.credentials, packet.username, packet.password)
        if principal is None:
            self._connect_failed(conn, session_id, "")
            raise ConnectRefused(
                ConnackCode311.BAD_USERNAME_OR_PASSWORD,
                ReasonCode.BAD_USER_NAME_OR_PASSWORD,
                "bad credentials",
                DisconnectReason.AUTH_ERROR,
            )
        conn.principal = principal
        if not broker.authorizer.can_connect(principal, conn.client_id, conn.source_ip):
            self._connect_failed(conn, session_id, principal.identifier)
            # AWS answers MQTT 5 with CONNACK 0x87 and simply closes an MQTT 3.1.1 connection.
            raise ConnectRefused(
                None,
                ReasonCode.NOT_AUTHORIZED,
                "connect not authorized",
                DisconnectReason.AUTH_ERROR,
            )
        return principal

    def _temporary_key(self, packet: Connect) -> bool:
        """Whether the username is a temporary key (Cognito, a role session). Its session
        token is part of the credential and username/password has no room for it, so plain
        TCP refuses such keys altogether; they sign WebSocket URLs, token included."""
        if not packet.username:
            return False
        credential = self.broker.credentials.lookup_access_key(packet.username)
        return credential is not None and credential.session_token is not None

    def _throttle(self, conn: ClientConnection) -> None:
        """AWS's 1 CONNECT per second per client id (a token bucket with ``connect_burst``).

        Counted only once the caller may use the client id, so nobody can lock another
        person's client id out. MQTT 5 gets CONNACK 0x9F (Connection rate exceeded); MQTT
        3.1.1 has no such code and is closed. AWS documents no ``connect_failed`` reason
        for it (https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
        lists AUTHORIZATION_FAILED only), so none is sent.
        https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
        """
        limits = self.broker.limits
        rate, burst = limits.connects_per_second_per_client, float(limits.connect_burst)
        now = self.broker.loop.time()
        buckets = self._connect_buckets
        full_at = max(buckets.get(conn.client_id, now), now)
        tokens = burst - (full_at - now) * rate
        if tokens < 1.0:
            self.broker.stats["connect_throttled"] += 1
            raise ConnectRefused(
                None,
                ReasonCode.CONNECTION_RATE_EXCEEDED,
                "connection rate exceeded",
                DisconnectReason.THROTTLED,
            )
        buckets[conn.client_id] = full_at + (1.0 / rate if rate > 0 else float("inf"))
        if len(buckets) > 10_000:  # forget the client ids whose bucket is full again
            for client_id, full in list(buckets.items()):
                if full <= now:
                    del buckets[client_id]

    def _check_will(self, conn: ClientConnection, packet: Connect) -> None:
        will = packet.will
        if will is None:
            return
        limits = self.broker.limits
        try:
            validate_topic_name(will.topic, limits.max_topic_bytes, limits.max_topic_slashes)
            if is_reserved(will.topic):
                raise InvalidTopic("will topic is reserved")
        except InvalidTopic as exc:
            raise ConnectRefused(None, ReasonCode.TOPIC_NAME_INVALID, str(exc)) from None
        if will.qos > 1:
            raise ConnectRefused(None, ReasonCode.QOS_NOT_SUPPORTED, "will QoS 2")
        if len(will.payload) > limits.max_payload_bytes:
            raise ConnectRefused(None, ReasonCode.PACKET_TOO_LARGE, "will too large")
        conn.will = will
        conn.will_delay = will.properties.get(Prop.WILL_DELAY_INTERVAL, 0)

    def _refuse(self, conn: ClientConnection, refused: ConnectRefused) -> None:
        log.info("refusing CONNECT from %s (%r): %s", conn.source_ip, conn.client_id, refused.why)
        if conn.version == MQTT_5:
            conn.send(Connack(False, refused.code_5, {Prop.REASON_STRING: refused.why}))
        elif refused.code_311 is not None:
            conn.send(Connack(False, refused.code_311))
        self.broker.close(conn, refused.reason)

    def _connect_failed(self, conn: ClientConnection, session_id: str, principal: str) -> None:
        ident = ConnectionIdentity(conn.client_id, session_id, principal, conn.source_ip)
        self.broker.router.lifecycle_event(
            lifecycle.connect_failed(ident, now_ms(), "AUTHORIZATION_FAILED")
        )

    # ------------------------------------------------------------------ acceptance

    def _accept(
        self,
        conn: ClientConnection,
        packet: Connect,
        principal: Principal,
        session_id: str,
        assigned: str | None,
    ) -> None:
        broker = self.broker
        limits = broker.limits
        client_id = conn.client_id
        props = packet.properties
        conn.client_receive_maximum = props.get(Prop.RECEIVE_MAXIMUM, 65535)
        conn.client_max_packet = props.get(Prop.MAXIMUM_PACKET_SIZE)
        if packet.protocol_level == MQTT_5:
            requested_expiry = props.get(Prop.SESSION_EXPIRY_INTERVAL, 0)
        else:
            requested_expiry = 0 if packet.clean_start else limits.session_expiry_default
        expiry = min(requested_expiry, limits.session_expiry_max)
        keep_alive = limits.clamp_keepalive(packet.keep_alive)

        # Takeover: the newest connection for a client id wins.
        previous = broker.connections.get(client_id)
        if previous is not None and not previous.closed:
            log.info("client id %r taken over", client_id)
            broker.close(
                previous, DisconnectReason.DUPLICATE_CLIENTID, ReasonCode.SESSION_TAKEN_OVER
            )
        session, session_present = self._attach_session(conn, packet.clean_start, expiry)
        conn.keep_alive = keep_alive
        broker.arm_keepalive(conn)
        conn.rate_tokens = limits.publishes_per_second
        conn.rate_last = broker.loop.time()
        conn.subscription_count = len(session.subscriptions)
        conn.connected = True
        broker.connections[client_id] = conn

        if packet.protocol_level == MQTT_5:
            ack_props = self._connack_properties()
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
        broker.router.lifecycle_event(lifecycle.connected(conn.identity, now_ms()))
        if session_present:
            broker.router.resume(conn, session)

    def _attach_session(
        self, conn: ClientConnection, clean_start: bool, expiry: int
    ) -> tuple[Session, bool]:
        """The client id's session (a clean start or a non-persistent one is replaced),
        attached to ``conn``; and whether it was present before."""
        router = self.broker.router
        session = router.sessions.get(conn.client_id)
        session_present = False
        if session is not None and (clean_start or not session.persistent):
            router.discard_session(session)
            session = None
        if session is None:
            limits = self.broker.limits
            session = Session(conn.client_id, limits.max_queued_messages, limits.max_queued_bytes)
            router.sessions[conn.client_id] = session
        else:
            session.cancel_expiry()
            session.expires_at = None
            session.take_will()  # back within the Will Delay Interval: no will (MQTT 5 3.1.3.2.2)
            session_present = True
        session.expiry_interval = expiry
        session.connection = conn
        conn.session = session
        if router.journal is not None:  # persistent now, or no longer
            router.journal.session_changed(conn.client_id)
        return session, session_present

    def _connack_properties(self) -> Properties:
        """What an MQTT 5 CONNACK announces: AWS IoT Core's capabilities and limits."""
        limits = self.broker.limits
        return {
            Prop.RECEIVE_MAXIMUM: limits.max_inflight,
            Prop.MAXIMUM_QOS: 1,
            Prop.RETAIN_AVAILABLE: 1,
            Prop.MAXIMUM_PACKET_SIZE: limits.max_packet_bytes,
            Prop.TOPIC_ALIAS_MAXIMUM: limits.topic_alias_max,
            Prop.WILDCARD_SUBSCRIPTION_AVAILABLE: 1,
            Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE: 0,
            Prop.SHARED_SUBSCRIPTION_AVAILABLE: 1,
        }
