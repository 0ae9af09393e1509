"""Well-formed MQTT packets as raw bytes, encoded by the project's own codec.

Some tests and benchmarks talk to the gateway below any client library: to read the exact
reason code a refusal carries, to open thousands of connections cheaply, or to be a consumer
that never reads its socket. They build their packets here, from the codec's packet classes
(``infra.local.gateway.codec``), rather than from hand-rolled byte strings. Tests that send
deliberately malformed bytes keep those bytes in the test.
"""

from __future__ import annotations

import socket

from infra.local.gateway.codec import (
    MQTT_5,
    MQTT_311,
    Connect,
    Disconnect,
    Pingreq,
    Publish,
    Subscribe,
    SubscriptionOptions,
    encode,
)

V311, V5 = MQTT_311, MQTT_5
CONNACK, PUBACK, SUBACK, PINGRESP = 2, 4, 9, 13  # packet types (high nibble of byte one)
PINGREQ = encode(Pingreq())
DISCONNECT = encode(Disconnect())


def connect_packet(
    client_id: str,
    version: int = V5,
    *,
    username: str | None = None,
    password: str | None = None,
    keep_alive: int = 60,
) -> bytes:
    """A clean-start CONNECT (MQTT 5: with no properties)."""
    packet = Connect(
        client_id,
        protocol_level=version,
        keep_alive=keep_alive,
        username=username,
        password=None if password is None else password.encode(),
    )
    return encode(packet, version)


def subscribe_packet(packet_id: int, topic_filter: str, version: int = V5, qos: int = 1) -> bytes:
    """A SUBSCRIBE for one filter."""
    options = SubscriptionOptions(qos=qos)
    return encode(Subscribe(packet_id, [(topic_filter, options)]), version)


def publish_packet(
    packet_id: int,
    topic: str,
    payload: bytes,
    version: int = V5,
    retain: bool = False,
    qos: int = 1,
) -> bytes:
    """A PUBLISH (QoS 1 by default, so that MQTT 5 answers with a PUBACK reason code)."""
    packet = Publish(topic, payload, qos=qos, retain=retain, packet_id=packet_id if qos else None)
    return encode(packet, version)


def connack_ok(data: bytes) -> bool:
    """True for an MQTT 3.1.1 CONNACK that accepted the connection."""
    return len(data) >= 4 and data[0] == 0x20 and data[1] == 0x02 and data[3] == 0


def read_varint(data: bytes, at: int) -> tuple[int, int] | None:
    """A variable byte integer at ``data[at:]``: (value, index after it), or ``None`` when
    ``data`` ends before it does."""
    value, shift = 0, 0
    while at < len(data):
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    return None


class Frames:
    """Splits a byte stream into MQTT packets, (first byte, body), whatever the chunking
    (a WebSocket frame or a TCP read may carry part of one packet or several)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> tuple[int, bytes] | None:
        if not self.buffer:
            return None
        header = read_varint(self.buffer, 1)
        if header is None:
            return None
        length, start = header
        if len(self.buffer) < start + length:
            return None
        first, body = self.buffer[0], self.buffer[start : start + length]
        self.buffer = self.buffer[start + length :]
        return first, body


def tcp_connect(
    port: int,
    client_id: str,
    *,
    username: str = "test",
    password: str = "test",
    keep_alive: int = 60,
    rcvbuf: int | None = None,
) -> socket.socket:
    """A plain-TCP MQTT 3.1.1 session on loopback (by default as the local admin), CONNACK
    checked; ``rcvbuf`` shrinks the socket's receive buffer (for a consumer that never reads)."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    packet = connect_packet(
        client_id, V311, username=username, password=password, keep_alive=keep_alive
    )
    sock.sendall(packet)
    sock.settimeout(10)
    ack = sock.recv(4)
    if not connack_ok(ack):
        raise RuntimeError(f"CONNECT refused: {ack!r}")
    return sock


def tcp_subscribe(sock: socket.socket, topic_filter: str, qos: int, packet_id: int = 1) -> None:
    """SUBSCRIBE on a :func:`tcp_connect` socket; raises unless a SUBACK comes back."""
    sock.sendall(subscribe_packet(packet_id, topic_filter, V311, qos))
    ack = sock.recv(5)
    if ack[:1] != b"\x90":
        raise RuntimeError(f"SUBSCRIBE refused: {ack!r}")


__all__ = [
    "CONNACK",
    "DISCONNECT",
    "PINGREQ",
    "PINGRESP",
    "PUBACK",
    "SUBACK",
    "V5",
    "V311",
    "Frames",
    "connack_ok",
    "connect_packet",
    "publish_packet",
    "read_varint",
    "subscribe_packet",
    "tcp_connect",
    "tcp_subscribe",
]
