"""The asyncio layer: TCP, mutual-TLS and SigV4 WebSocket listeners around one broker.

Each listener is a thin :class:`asyncio.Protocol` that authenticates the transport (a client
certificate, a presigned WebSocket URL, or nothing for plain TCP where CONNECT carries the
credentials) and then only moves bytes between the socket and the sans-I/O broker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack
from urllib.parse import urlsplit

from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from infra.local.hosts import HOST_REFUSED, HostAllowList
from infra.local.identity import LOCAL_REGION, CredentialStore, Principal, StaticCredentialStore
from infra.local.sigv4 import SigV4Error, verify_presigned_request

from .authorizer import AdminOnlyAuthorizer, Authorizer
from .broker import Broker
from .codec import ReasonCode
from .connection import ClientConnection, Sink
from .delivery import PublishOptions, PublishTap
from .journal import Journal
from .lifecycle import DisconnectReason
from .limits import Limits

log = logging.getLogger("iotchat.gateway")

MQTT_WS_PATH = "/mqtt"
WS_MESSAGE_BYTES = 256 * 1024


@dataclass
class GatewayConfig:
    """Where to listen. A port of ``None`` disables that listener; ``0`` picks a free port."""

    host: str = "127.0.0.1"
    mqtt_port: int | None = 1883
    mqtts_port: int | None = None
    wss_port: int | None = None
    # MQTT over plain WebSocket, still SigV4-authenticated: lets a browser page served over
    # http from loopback reach the local gateway without trusting the local CA. Loopback only;
    # AWS IoT Core itself offers only wss.
    ws_port: int | None = None
    mtls_context: ssl.SSLContext | None = None  # server context requiring client certificates
    wss_context: ssl.SSLContext | None = None  # server context for WSS (no client certificate)
    region: str = LOCAL_REGION
    limits: Limits = field(default_factory=Limits)
    # Persistent sessions are written here on a clean stop and read back at start; beside it,
    # ``journal.jsonl`` has them and the retained messages written through as they change
    # (journal.py), for a crash. None: both live in memory only.
    session_file: Path | None = None
    # Host names answered on the WebSocket listeners besides loopback ones (DNS rebinding).
    allowed_hosts: tuple[str, ...] = ()


def _peer_ip(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return peer[0] if isinstance(peer, tuple) and peer else "127.0.0.1"


class _BrokerProtocol(asyncio.Protocol):
    """What both listeners share: one broker connection per transport, fed and paused here.

    Until its CONNECT is accepted a connection is *pending*: it counts against its listener's
    ``max_pending_connections`` and must be done (TLS handshake, WebSocket upgrade, CONNECT)
    by ``connect_deadline_seconds`` after accept, however slowly its bytes arrive.
    """

    # One per connection: no instance dict.
    __slots__ = ("accepted_at", "conn", "deadline", "gateway", "listener", "stream")

    def __init__(self, gateway: Gateway, listener: str) -> None:
        self.gateway = gateway
        self.listener = listener
        self.conn: ClientConnection | None = None
        self.stream: asyncio.Transport | None = None
        # asyncio calls the protocol factory at accept, before any TLS handshake: the one
        # deadline counts from here.
        self.accepted_at = asyncio.get_running_loop().time()
        self.deadline: asyncio.TimerHandle | None = None

    def _set_up(self, transport: asyncio.BaseTransport) -> asyncio.Transport | None:
        """Adopt the transport; None when the listener already holds too many pending
        sockets (this one is closed at once)."""
        assert isinstance(transport, asyncio.Transport)
        limits = self.gateway.config.limits
        self.stream = transport
        pending = self.gateway.pending_connections(self.listener)
        if len(pending) >= limits.max_pending_connections:
            self.gateway.refused_pending(self.listener)
            transport.abort()
            return None
        pending.add(self)
        transport.set_write_buffer_limits(high=limits.write_buffer_high_water)
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_at(
            self.accepted_at + limits.connect_deadline_seconds, self._deadline_passed
        )
        return transport

    def _release(self) -> None:
        """No longer pending: connected, or gone."""
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.gateway.pending_connections(self.listener).discard(self)

    def _check_connected(self) -> None:
        if self.deadline is not None and self.conn is not None and self.conn.connected:
            self._release()

    def _deadline_passed(self) -> None:
        """Not connected in time. Before an accepted CONNECT there is no client id, so AWS
        sends no lifecycle event: the socket is simply closed."""
        self.deadline = None
        log.info(
            "%s connection from %s closed: not connected within %g s of accept",
            self.listener,
            _peer_ip(self.stream) if self.stream is not None else "?",
            self.gateway.config.limits.connect_deadline_seconds,
        )
        self.gateway.stats["connect_deadline"] += 1
        conn = self.conn
        if conn is not None and not conn.closed:
            self.gateway.broker.close(conn, DisconnectReason.CLIENT_ERROR)
        if self.stream is not None:
            self.stream.abort()
        self._release()

    def _attach(
        self, sink: Sink, transport: asyncio.Transport, principal: Principal | None
    ) -> ClientConnection:
        self.conn = self.gateway.broker.new_connection(
            sink, listener=self.listener, source_ip=_peer_ip(transport), principal=principal
        )
        return self.conn

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self.conn is not None:
            self.gateway.broker.connection_lost(self.conn)

    def pause_writing(self) -> None:
        if self.conn is not None:
            self.gateway.broker.writing_paused(self.conn)

    def resume_writing(self) -> None:
        if self.conn is not None:
            self.gateway.broker.writing_resumed(self.conn)


class MqttStreamProtocol(_BrokerProtocol):
    """MQTT directly over TCP or TLS; also the broker's :class:`Sink` for its connection (one
    object less per connection than a separate sink)."""

    __slots__ = ()

    @property
    def transport(self) -> asyncio.Transport | None:
        """The stream, under the name a sink's transport goes by."""
        return self.stream

    def write(self, data: bytes) -> None:
        assert self.stream is not None
        self.stream.write(data)

    def close(self) -> None:
        assert self.stream is not None
        self.stream.close()

    def pause_reading(self) -> None:
        if self.stream is not None and not self.stream.is_closing():
            self.stream.pause_reading()

    def resume_reading(self) -> None:
        if self.stream is not None and not self.stream.is_closing():
            self.stream.resume_reading()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = self._set_up(transport)
        if stream is None:
            return
        principal = None
        if self.listener == "tls":
            principal = self.gateway.certificate_principal(stream)
            if principal is None:
                stream.close()
                return
        self._attach(self, stream, principal)

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            self.gateway.broker.data_received(self.conn, data)
            self._check_connected()

    def eof_received(self) -> bool:
        return False  # close our side too


class _WebSocketSink:
    """Sink that frames MQTT bytes as binary WebSocket messages."""

    __slots__ = ("transport", "ws")

    def __init__(self, transport: asyncio.Transport, ws: ServerProtocol) -> None:
        self.transport = transport
        self.ws = ws

    def write(self, data: bytes) -> None:
        # One loop turn's packets go out together, but in messages of at most
        # WS_MESSAGE_BYTES: clients cap a message's size (websockets: 1 MiB), and MQTT over
        # WebSocket lets packets span messages (MQTT 5 section 6.0).
        try:
            for at in range(0, len(data), WS_MESSAGE_BYTES):
                self.ws.send_binary(data[at : at + WS_MESSAGE_BYTES])
        except InvalidState:
            return
        self.transport.write(b"".join(self.ws.data_to_send()))

    def close(self) -> None:
        try:
            self.ws.send_close(1000)
            self.transport.write(b"".join(self.ws.data_to_send()))
        except InvalidState:
            pass
        self.transport.close()

    def pause_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()


class MqttWebSocketProtocol(_BrokerProtocol):
    """MQTT over WebSocket at ``/mqtt``, the handshake authenticated by SigV4 query parameters."""

    __slots__ = ("transport", "ttl_handle", "ws")

    def __init__(self, gateway: Gateway, listener: str = "wss") -> None:
        super().__init__(gateway, listener)
        self.transport: asyncio.Transport | None = None
        self.ttl_handle: asyncio.TimerHandle | None = None
        limits = gateway.config.limits
        self.ws = ServerProtocol(
            subprotocols=[Subprotocol("mqtt")], max_size=limits.max_packet_bytes + 16
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self._set_up(transport)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return  # refused at accept
        ws = self.ws
        ws.receive_data(data)
        broker = self.gateway.broker
        for event in ws.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                if event.opcode in (Opcode.BINARY, Opcode.CONT) and self.conn is not None:
                    broker.data_received(self.conn, event.data)
                elif event.opcode == Opcode.TEXT and self.conn is not None:
                    broker.close(self.conn, DisconnectReason.CLIENT_ERROR)
        self._send_pending()
        self._check_connected()

    def _send_pending(self) -> None:
        assert self.transport is not None
        chunks = self.ws.data_to_send()
        if chunks:
            self.transport.write(b"".join(chunks))
            if chunks[-1] == b"" or self.ws.close_expected():
                self.transport.close()

    def _handshake(self, request: Request) -> None:
        assert self.transport is not None
        ws = self.ws
        url = urlsplit(request.path)
        host = request.headers.get("Host", "")
        if not self.gateway.hosts.allows(host):
            log.info("WebSocket handshake from %s refused: Host %r", _peer_ip(self.transport), host)
            ws.send_response(ws.reject(403, HOST_REFUSED))
            return
        if url.path != MQTT_WS_PATH:
            ws.send_response(ws.reject(404, "Not Found\n"))
            return
        try:
            credential = verify_presigned_request(
                url.path,
                url.query,
                host,
                self.gateway.credentials,
                headers=request.headers,
                region=self.gateway.config.region,
            )
        except SigV4Error as exc:
            log.info(
                "WebSocket handshake from %s refused: %s", _peer_ip(self.transport), exc.reason
            )
            ws.send_response(ws.reject(403, f"Forbidden: {exc.reason}\n"))
            return
        response = ws.accept(request)
        ws.send_response(response)
        if response.status_code != 101:
            return
        conn = self._attach(
            _WebSocketSink(self.transport, ws), self.transport, credential.principal
        )
        # AWS ends a WebSocket connection after 24 hours, whatever the client does.
        broker = self.gateway.broker
        self.ttl_handle = broker.loop.call_later(
            self.gateway.config.limits.websocket_ttl_seconds,
            broker.close,
            conn,
            DisconnectReason.WEBSOCKET_TTL_EXPIRATION,
        )

    def eof_received(self) -> bool:
        if self.transport is not None:
            self.ws.receive_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ttl_handle is not None:
            self.ttl_handle.cancel()
        super().connection_lost(exc)


class Gateway:
    """The device gateway: listeners plus the broker, with the seams later issues plug into."""

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        credentials: CredentialStore | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self.config = config or GatewayConfig()
        self.credentials: CredentialStore = credentials or StaticCredentialStore()
        self.authorizer: Authorizer = authorizer or AdminOnlyAuthorizer()
        self.hosts = HostAllowList(self.config.allowed_hosts)
        self._broker: Broker | None = None
        self._servers: dict[str, asyncio.Server] = {}
        self.ports: dict[str, int] = {}
        # Connections not yet past CONNECT, per listener ("tcp", "tls", "wss", "ws").
        self._pending: dict[str, set[_BrokerProtocol]] = {}
        self._pending_refusal_logged: dict[str, float] = {}
        self.stats: dict[str, int] = {"connect_deadline": 0, "pending_refused": 0}

    def pending_connections(self, listener: str) -> set[_BrokerProtocol]:
        return self._pending.setdefault(listener, set())

    def refused_pending(self, listener: str) -> None:
        """A socket over the pending cap was closed at accept: count it, log now and then."""
        self.stats["pending_refused"] += 1
        now = asyncio.get_running_loop().time()
        if now - self._pending_refusal_logged.get(listener, -3600.0) >= 60:
            self._pending_refusal_logged[listener] = now
            log.warning(
                "%s listener: %d connections not yet past CONNECT; closing new ones at once",
                listener,
                self.config.limits.max_pending_connections,
            )

    def disconnect_certificates(self, certificate_ids: Collection[str]) -> int:
        """Close every connection authenticated by one of these certificates (they left
        ACTIVE), as AWS does after UpdateCertificate: ``disconnected`` with AUTH_ERROR.
        Returns how many were closed."""
        if self._broker is None or not certificate_ids:
            return 0
        wanted = set(certificate_ids)

        def revoked(conn: ClientConnection | None) -> bool:
            principal = conn.principal if conn is not None else None
            return (
                principal is not None
                and principal.kind == "certificate"
                and principal.identifier in wanted
            )

        doomed = [c for c in self._broker.connections.values() if revoked(c)]
        for pending in self._pending.values():
            doomed += [p.conn for p in pending if p.conn is not None and revoked(p.conn)]
        closed = 0
        for conn in doomed:
            if not conn.closed:
                log.info("certificate of %r is no longer ACTIVE: disconnecting", conn)
                self._broker.close(conn, DisconnectReason.AUTH_ERROR, ReasonCode.NOT_AUTHORIZED)
                closed += 1
        return closed

    def counters(self) -> dict[str, int]:
        """The listeners' and the broker's counters (drops, refusals, backpressure), for the
        stack's health report."""
        counters = dict(self.stats)
        if self._broker is not None:
            counters.update(self._broker.stats)
        return counters

    @property
    def broker(self) -> Broker:
        if self._broker is None:
            raise RuntimeError("gateway not started")
        return self._broker

    def certificate_principal(self, transport: asyncio.Transport) -> Principal | None:
        from ..ca import certificate_id  # the local CA module owns certificate ids

        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            return None
        # Only a registered, ACTIVE certificate has a principal, even when our CA signed it.
        return self.credentials.lookup_certificate(certificate_id(der))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._broker = Broker(
            limits=self.config.limits,
            authorizer=self.authorizer,
            credentials=self.credentials,
            loop=loop,
        )
        cfg = self.config
        self._load_state()
        host = cfg.host
        if cfg.mqtt_port is not None:
            await self._listen("mqtt", lambda: MqttStreamProtocol(self, "tcp"), host, cfg.mqtt_port)
        if cfg.mqtts_port is not None:
            if cfg.mtls_context is None:
                raise ValueError("the mutual-TLS listener needs mtls_context")
            await self._listen(
                "mqtts",
                lambda: MqttStreamProtocol(self, "tls"),
                host,
                cfg.mqtts_port,
                cfg.mtls_context,
            )
        if cfg.wss_port is not None:
            await self._listen(
                "wss", lambda: MqttWebSocketProtocol(self), host, cfg.wss_port, cfg.wss_context
            )
        if cfg.ws_port is not None:
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise ValueError("the plain WebSocket listener binds to loopback only")
            await self._listen("ws", lambda: MqttWebSocketProtocol(self, "ws"), host, cfg.ws_port)

    async def _listen(
        self,
        name: str,
        factory: Callable[[], asyncio.BaseProtocol],
        host: str,
        port: int,
        context: ssl.SSLContext | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        cfg_limits = self.config.limits
        server = await loop.create_server(
            factory,
            host,
            port,
            ssl=context,
            backlog=4096,
            # The handshake is part of the connect deadline (it counts from accept).
            ssl_handshake_timeout=cfg_limits.connect_deadline_seconds if context else None,
        )
        receive_buffer = cfg_limits.receive_buffer_bytes
        if receive_buffer:
            for sock in server.sockets:  # accepted sockets inherit it
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._servers[name] = server
        self.ports[name] = server.sockets[0].getsockname()[1]
        log.info("%s listener on %s:%d", name, host, self.ports[name])

    def add_tap(self, tap: PublishTap) -> None:
        self.broker.taps.append(tap)

    def publish(self, topic: str, payload: bytes, **options: Unpack[PublishOptions]) -> None:
        """Internal publish (iot-data HTTP, rule republish): :meth:`.delivery.Router.publish`."""
        self.broker.router.publish(topic, payload, **options)

    async def stop(self) -> None:
        for server in self._servers.values():
            server.close()
        if self._broker is not None:
            self._broker.shutdown()
            self._broker.flusher.flush()
        for server in self._servers.values():
            await server.wait_closed()
        self._servers.clear()
        self.save_sessions()
        if self._broker is not None and self._broker.router.journal is not None:
            self._broker.router.journal.close()

    def save_sessions(self) -> None:
        """Write the persistent sessions to ``config.session_file`` and compact the journal
        (after :meth:`stop`; the stack calls it again once its rules have drained, so their
        last republishes are in)."""
        if self._broker is not None:
            self._save_sessions(self._broker.router.export_sessions())
            self._broker.router.compact_journal()

    def _load_state(self) -> None:
        """Retained messages from the journal; persistent sessions from the file the last
        clean stop saved (then removed: from here on the journal has them) or, after a crash,
        from the journal. The journal is then compacted to what is in memory."""
        path = self.config.session_file
        if path is None:
            return
        router = self.broker.router
        loop = asyncio.get_running_loop()
        journal = Journal(path.parent / "journal.jsonl", loop, router.journal_record)

        def grown() -> None:
            loop.call_soon(router.compact_journal)

        journal.on_grown = grown
        try:
            retained, sessions = journal.load()
            restored = router.restore_retained(retained)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("journal %s not replayed: %s", journal.path, exc)
            sessions = []
        else:
            if restored:
                log.info("restored %d retained message(s) from %s", restored, journal.path)
        source = journal.path
        if path.exists():
            source = path
            try:
                sessions = json.loads(path.read_text())["sessions"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("persistent sessions in %s not read: %s", path, exc)
        try:
            count = router.restore_sessions(sessions)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("persistent sessions from %s not restored: %s", source, exc)
        else:
            if count:
                log.info("restored %d persistent session(s) from %s", count, source)
        path.unlink(missing_ok=True)
        router.journal = journal
        router.compact_journal()

    def _save_sessions(self, records: list[dict[str, object]]) -> None:
        path = self.config.session_file
        if path is None:
            return
        if not records:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # Queued messages are users' messages: readable by the stack's owner only.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"version": 1, "sessions": records}, out)
        os.replace(tmp, path)
        log.info("saved %d persistent session(s) to %s", len(records), path)
