"""Clients for the security attempts: raw MQTT over a SigV4 WebSocket, mutual TLS sockets.

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

from infra.local.sigv4 import presign_url
from tests.support.cognito import logins, new_user, unsigned_client
from tests.support.stack import InProcessStack

TIMEOUT = 10.0
V311, V5 = 4, 5


# ---------------------------------------------------------------------- MQTT packets


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(s: str) -> bytes:
    data = s.encode()
    return len(data).to_bytes(2, "big") + data


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def connect_packet(client_id: str, version: int = V5) -> bytes:
    """CONNECT with clean start and keep-alive 60 s (no properties in MQTT 5)."""
    props = b"\x00" if version == V5 else b""
    return _packet(
        0x10, _string("MQTT") + bytes([version, 0x02, 0, 60]) + props + _string(client_id)
    )


def subscribe_packet(packet_id: int, topic_filter: str, version: int = V5) -> bytes:
    props = b"\x00" if version == V5 else b""
    return _packet(0x82, packet_id.to_bytes(2, "big") + props + _string(topic_filter) + b"\x01")


def publish_packet(
    packet_id: int, topic: str, payload: bytes, version: int = V5, retain: bool = False
) -> bytes:
    """A QoS 1 PUBLISH, so that MQTT 5 answers with a PUBACK reason code."""
    props = b"\x00" if version == V5 else b""
    first = 0x32 | (0x01 if retain else 0)
    return _packet(first, _string(topic) + packet_id.to_bytes(2, "big") + props + payload)


def _read_varint(data: bytes, at: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    return None


class Packets:
    """Splits a byte stream into MQTT packets (frames may carry part of one or several)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> tuple[int, bytes] | None:
        if not self.buffer:
            return None
        header = _read_varint(self.buffer, 1)
        if header is None:
            return None
        length, start = header
        if len(self.buffer) < start + length:
            return None
        first, body = self.buffer[0], self.buffer[start : start + length]
        self.buffer = self.buffer[start + length :]
        return first, body


# ---------------------------------------------------------------------- MQTT sessions


class Session:
    """One MQTT connection seen packet by packet; ``None`` from :meth:`read` means closed."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.packets = Packets()
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
        packet = self.read_kind(2)
        return None if packet is None else packet[1][1]

    def subscribe(self, topic_filter: str) -> int | None:
        """The SUBACK code for ``topic_filter``, or ``None`` if the server closed."""
        self.packet_id += 1
        self._send(subscribe_packet(self.packet_id, topic_filter, self.version))
        packet = self.read_kind(9)
        if packet is None:
            return None
        body = packet[1]
        assert int.from_bytes(body[:2], "big") == self.packet_id
        at = 2
        if self.version == V5:
            props = _read_varint(body, 2)
            assert props is not None
            at = props[1] + props[0]
        return body[at]

    def publish(self, topic: str, payload: bytes = b"{}", retain: bool = False) -> int | None:
        """The PUBACK reason code (0 when omitted), or ``None`` if the server closed."""
        self.packet_id += 1
        self._send(publish_packet(self.packet_id, topic, payload, self.version, retain))
        packet = self.read_kind(4)
        if packet is None:
            return None
        body = packet[1]
        assert int.from_bytes(body[:2], "big") == self.packet_id
        return body[2] if len(body) > 2 else 0

    def alive(self) -> bool:
        """Whether the server still answers: PINGREQ gets a PINGRESP."""
        self._send(b"\xc0\x00")
        return self.read_kind(13) is not None


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
    ws = ws_connect(url, ssl=context, subprotocols=["mqtt"], open_timeout=TIMEOUT)
    return ws.__enter__()  # the caller closes it; entering marks it as managed


def wss_session(stack: InProcessStack, creds: dict[str, Any], version: int = V5) -> WssSession:
    ws = open_ws(stack, signed_url(stack, creds))
    assert ws.response.status_code == 101
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


# ---------------------------------------------------------------------- identities


def signed_in_credentials(stack: InProcessStack) -> tuple[str, dict[str, Any]]:
    """A new user's identity id and credentials (its first credentials attach iotchat-user)."""
    user = new_user(stack)
    identity = unsigned_client(stack, "cognito-identity")
    login = logins(stack, user.id_token)
    pool = stack.info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool, Logins=login)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=login)
    return identity_id, creds["Credentials"]


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
