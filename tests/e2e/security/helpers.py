"""Clients for the security attempts: raw MQTT over a SigV4 WebSocket, mutual TLS sockets.

The packets come from :mod:`tests.support.raw_mqtt` (the project's codec); this module reads
the answers packet by packet.

The raw packets let a test read the exact refusal a client sees (a CONNACK/SUBACK/PUBACK
reason code, a closed connection, an HTTP status, a TLS alert) instead of whatever an SDK
turns it into.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from infra.local.sigv4 import presign_url
from tests.support.raw_mqtt import (
    CONNACK,
    PINGREQ,
    PINGRESP,
    PUBACK,
    SUBACK,
    V5,
    Frames,
    connect_packet,
    publish_packet,
    read_varint,
    subscribe_packet,
)
from tests.support.stack import InProcessStack

TIMEOUT = 10.0


# ---------------------------------------------------------------------- MQTT sessions


class Session:
    """One MQTT connection seen packet by packet; ``None`` from :meth:`read` means closed."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.packets = Frames()
        self.packet_id = 0

    def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _recv(self, timeout: float) -> bytes | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def read(self, timeout: float = TIMEOUT) -> tuple[int, bytes] | None:
        deadline = time.monotonic() + timeout
        while (packet := self.packets.next()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no MQTT packet and no close")
            data = self._recv(left)
            if data is None:
                return None
            self.packets.feed(data)
        return packet

    def read_kind(self, kind: int) -> tuple[int, bytes] | None:
        """The next packet of type ``kind`` (skipping e.g. PUBLISHes), or ``None`` if closed."""
        while (packet := self.read()) is not None:
            if packet[0] >> 4 == kind:
                return packet
        return None

    def connect(self, client_id: str) -> int | None:
        """CONNACK reason/return code, or ``None`` if the server closed without one."""
        self._send(connect_packet(client_id, self.version))
        packet = self.read_kind(CONNACK)
        return None if packet is None else packet[1][1]

    def subscribe(self, topic_filter: str) -> int | None:
        """The SUBACK code for ``topic_filter``, or ``None`` if the server closed."""
        self.packet_id += 1
        self._send(subscribe_packet(self.packet_id, topic_filter, self.version))
        packet = self.read_kind(SUBACK)
        if packet is None:
            return None
        body = packet[1]
        assert int.from_bytes(body[:2], "big") == self.packet_id
        at = 2
        if self.version == V5:
            props = read_varint(body, 2)
            assert props is not None
            at = props[1] + props[0]
        return body[at]

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> int | None:
        """The PUBACK reason code (0 when omitted), or ``None`` if the server closed."""
        self.packet_id += 1
        self._send(publish_packet(self.packet_id, topic, payload, self.version, retain))
        packet = self.read_kind(PUBACK)
        if packet is None:
            return None
        body = packet[1]
        assert int.from_bytes(body[:2], "big") == self.packet_id
        return body[2] if len(body) > 2 else 0

    def alive(self) -> bool:
        """Whether the server still answers: PINGREQ gets a PINGRESP."""
        self._send(PINGREQ)
        return self.read_kind(PINGRESP) is not None


class WssSession(Session):
    def __init__(self, ws: ClientConnection, version: int) -> None:
        super().__init__(version)
        self.ws = ws

    def _send(self, data: bytes) -> None:
        self.ws.send(data)

    def _recv(self, timeout: float) -> bytes | None:
        try:
            message = self.ws.recv(timeout=timeout)
        except ConnectionClosed:
            return None
        assert isinstance(message, bytes)
        return message

    def close(self) -> None:
        self.ws.close()


class TlsSession(Session):
    def __init__(self, sock: ssl.SSLSocket, version: int) -> None:
        super().__init__(version)
        self.sock = sock

    def _send(self, data: bytes) -> None:
        # Closed by the server: the next read says so.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
            self.sock.sendall(data)

    def _recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return None
        return data or None

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------------- transports


def wss_host(stack: InProcessStack) -> str:
    # websockets sends ``Host: 127.0.0.1:<port>``; sign exactly that.
    return f"127.0.0.1:{stack.info['iot']['wssPort']}"


def server_tls(stack: InProcessStack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=stack.info["iot"]["caFile"])


def signed_url(stack: InProcessStack, creds: dict[str, Any], **overrides: Any) -> str:
    """A presigned handshake URL for ``creds``; ``overrides`` change what is signed."""
    args: dict[str, Any] = {
        "host": wss_host(stack),
        "region": stack.info["region"],
        "session_token": str(creds["SessionToken"]),
    }
    args.update(overrides)
    host = args.pop("host")
    return presign_url(host, str(creds["AccessKeyId"]), str(creds["SecretKey"]), **args)


def open_ws(stack: InProcessStack, url: str) -> ClientConnection:
    """The WebSocket handshake; raises ``InvalidStatus`` when refused with an HTTP status.

    TLS 1.2 (which AWS IoT also offers): with TLS 1.3 the sync client's reader thread and
    the handshake writer share one SSL object while session tickets arrive, and a handshake
    occasionally never completes on the client side."""
    context = server_tls(stack)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    ws = ws_connect(url, ssl=context, subprotocols=[Subprotocol("mqtt")], open_timeout=TIMEOUT)
    return ws.__enter__()  # the caller closes it; entering marks it as managed


def wss_session(stack: InProcessStack, creds: dict[str, Any], version: int = V5) -> WssSession:
    ws = open_ws(stack, signed_url(stack, creds))
    assert ws.response is not None and ws.response.status_code == 101
    return WssSession(ws, version)


def tls_socket(stack: InProcessStack, cert_path: Any, key_path: Any) -> ssl.SSLSocket:
    """A TLS socket to the device listener (handshake done); no certificate when ``None``."""
    context = server_tls(stack)
    if cert_path is not None:
        context.load_cert_chain(str(cert_path), str(key_path))
    raw = socket.create_connection(("127.0.0.1", stack.info["iot"]["mqttsPort"]), TIMEOUT)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def tls_session(
    stack: InProcessStack, cert_path: Any, key_path: Any, version: int = V5
) -> TlsSession:
    return TlsSession(tls_socket(stack, cert_path, key_path), version)


# ---------------------------------------------------------------------- refusals


def refused_before_connack(stack: InProcessStack, cert_path: Any, key_path: Any) -> bool:
    """Whether the device listener ends the connection before any CONNACK: in the TLS
    handshake, or right after it (AWS completes the handshake and then closes)."""
    try:
        session = tls_session(stack, cert_path, key_path)
    except ssl.SSLError:
        return True
    try:
        return session.connect("anyone") is None
    except ssl.SSLError:
        return True
    finally:
        session.close()
