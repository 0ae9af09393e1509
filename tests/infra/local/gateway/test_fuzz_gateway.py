"""Gateway fuzzing: garbage in never crashes the live gateway, and never hurts other clients.

The live gateway (one per module, for speed) gets random and mutated input over real TCP and
WebSocket connections: after each case the connection is either closed by the gateway or
still answers a PINGREQ, the gateway's event loop reports no error, and a healthy client
connected throughout still round-trips messages. The codec alone is ``test_fuzz_codec.py``.

Every hypothesis run is derandomized and database-free, so CI sees the same cases every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidState
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from infra.local.ca import LocalCA
from infra.local.gateway import (
    AdminOnlyAuthorizer,
    Gateway,
    GatewayConfig,
    Limits,
    StaticCredentialStore,
)
from infra.local.gateway.codec import (
    CONNECT,
    MQTT_5,
    MQTT_311,
    Connect,
    Packet,
    PacketReader,
    Will,
    encode,
)
from infra.local.registry import Registry, RegistryCredentialStore
from infra.local.sigv4 import presign_url
from tests.infra.local.gateway.mqtt_packets import (
    FUZZ,
    chunk,
    chunkings,
    encode_stream,
    mutate,
    mutations,
    packets,
    properties,
    publishes,
    subscribes,
    versions,
)
from tests.infra.local.gateway.peers import Bystander
from tests.support.stack import GatewayHandle

PINGREQ = b"\xc0\x00"
# CONNACK, PUBLISH, PUBACK, SUBACK, UNSUBACK, PINGRESP, DISCONNECT
SERVER_TO_CLIENT_TYPES = frozenset({2, 3, 4, 9, 11, 13, 14})


# --------------------------------------------------------------------------- the live gateway


MAX_PACKET = Limits().max_packet_bytes


@dataclass
class LiveGateway:
    handle: GatewayHandle
    healthy: Bystander
    errors: list[Any] = field(default_factory=list)

    def check(self) -> None:
        """The loop reported no exception and logged no error."""
        assert self.errors == [], self.errors


class _ErrorLog(logging.Handler):
    def __init__(self, sink: list[Any]) -> None:
        super().__init__(logging.ERROR)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


@pytest.fixture(scope="module")
def live(local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    """One gateway for the whole module, whose event loop records every unhandled error."""
    errors: list[Any] = []
    registry = Registry.open(tmp_path_factory.mktemp("registry"))
    credentials = RegistryCredentialStore(StaticCredentialStore(), registry)
    authorizer = AdminOnlyAuthorizer()
    config = GatewayConfig(
        mqtt_port=0,
        mqtts_port=None,
        wss_port=0,
        wss_context=local_ca.server_ssl_context(require_client_cert=False),
    )
    gateway = Gateway(config, credentials=credentials, authorizer=authorizer)
    ready: Future[GatewayHandle] = Future()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        await gateway.start()
        stop.append(asyncio.Event())
        ready.set_result(GatewayHandle(gateway, loop, local_ca, credentials, authorizer, registry))
        await stop[0].wait()
        await gateway.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    handle = ready.result(10)
    error_log = _ErrorLog(errors)
    logging.getLogger("iotchat").addHandler(error_log)
    healthy = Bystander(handle)
    try:
        yield LiveGateway(handle, healthy, errors)
    finally:
        healthy.peer.close()
        logging.getLogger("iotchat").removeHandler(error_log)
        handle.loop.call_soon_threadsafe(stop[0].set)
        thread.join(10)


# --------------------------------------------------------------------------- wire helpers


class Closed(Exception):
    """The gateway closed (or reset) the connection."""


def read_length(data: bytes, i: int) -> tuple[int, int, str]:
    """Decode a remaining length from ``data[i]`` on as the gateway does: (the value read so far,
    the index after its bytes, state), state ``ok``, ``partial`` (``data`` ends inside it) or
    ``bad-length`` (longer than 4 bytes)."""
    length, shift = 0, 0
    while True:
        if i >= len(data):
            return length, i, "partial"
        byte = data[i]
        i += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return length, i, "ok"
        shift += 7
        if shift > 21:
            return length, i, "bad-length"


def split_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int, str]:
    """Frame MQTT bytes the way the gateway does: (frames, bytes consumed, state).

    ``state`` is ``ok`` (everything framed), ``partial`` (the last frame is incomplete) or
    ``bad-length`` (a remaining length longer than 4 bytes: the gateway must close).
    """
    out: list[tuple[int, bytes]] = []
    pos, n = 0, len(data)
    while pos < n:
        length, i, state = read_length(data, pos + 1)
        if state != "ok":
            return out, pos, state
        if n - i < length:
            return out, pos, "partial"
        out.append((data[pos], data[i : i + length]))
        pos = i + length
    return out, pos, "ok"


def completion(payload: bytes) -> tuple[bytes, bool]:
    """Bytes that complete the last partial frame, and whether the gateway must close anyway."""
    _, pos, state = split_frames(payload)
    if state == "bad-length":
        return b"", True
    if state == "ok":
        return b"", False
    rest = payload[pos:]
    length, i, state = read_length(rest, 1)  # ok or partial: split_frames saw no bad length
    # A partial remaining length is terminated where it stands.
    header_tail = b"\x00" if state == "partial" else b""
    header_len = i + len(header_tail)
    if header_len + length > MAX_PACKET:
        return header_tail, True  # refused from the fixed header alone
    have = max(0, len(rest) - header_len)
    return header_tail + b"\x00" * (length - have), False


def count_pingreqs(stream: bytes) -> int:
    frames, _, _ = split_frames(stream)
    return sum(1 for first, body in frames if first == 0xC0 and not body)


class TcpWire:
    def __init__(self, gw: GatewayHandle) -> None:
        self.sock = socket.create_connection((gw.host, gw.mqtt_port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reset = False

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as exc:
            self.reset = True
            raise Closed from exc

    def recv(self) -> bytes:
        try:
            return self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            self.reset = True
            return b""

    def close(self) -> None:
        self.sock.close()


class WsWire:
    """MQTT over a SigV4-presigned WSS connection; each send is one binary WebSocket message.

    websockets' sans-I/O client on one blocking TLS socket: the threaded sync client reads
    and writes one SSL object from two threads, which made its handshake hang now and then.
    """

    def __init__(self, gw: GatewayHandle) -> None:
        url = presign_url(f"127.0.0.1:{gw.wss_port}", "test", "test", region="us-east-1")
        context = ssl.create_default_context(cafile=gw.ca_file)
        raw = socket.create_connection((gw.host, gw.wss_port), timeout=5)
        self.sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
        self.proto = ClientProtocol(parse_uri(url), subprotocols=[Subprotocol("mqtt")])
        self.proto.send_request(self.proto.connect())
        self._flush()
        self.pending: list[bytes] = []
        self.reset = False
        self.eof = False
        while self.proto.state is State.CONNECTING:
            data = self.sock.recv(65536)
            assert data, "WebSocket handshake refused"
            self.proto.receive_data(data)
        assert self.proto.handshake_exc is None, self.proto.handshake_exc
        self._collect()

    def _flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:  # b"" only asks to half-close; the gateway closes for us
                self.sock.sendall(data)

    def _collect(self) -> None:
        for event in self.proto.events_received():
            if isinstance(event, Frame):
                assert event.opcode is not Opcode.TEXT, "the gateway sent a text frame"
                if event.opcode in (Opcode.BINARY, Opcode.CONT):
                    self.pending.append(event.data)

    def send(self, data: bytes) -> None:
        self.send_frame(lambda: self.proto.send_binary(data))

    def send_frame(self, queue: Callable[[], None]) -> None:
        try:
            queue()
            self._flush()
        except (InvalidState, ConnectionResetError, BrokenPipeError, ssl.SSLError) as exc:
            self.reset = True
            raise Closed from exc

    def recv(self) -> bytes:
        while not self.pending:
            if self.eof or self.proto.close_rcvd is not None:
                return b""
            try:
                data = self.sock.recv(65536)  # a 5 s timeout fails the test
            except (ConnectionResetError, ssl.SSLError):
                self.reset = True
                return b""
            if data:
                self.proto.receive_data(data)
            else:
                self.eof = True
                self.proto.receive_eof()
            # Pongs and our half of the closing handshake; if the gateway already closed,
            # there is nothing left to answer.
            with contextlib.suppress(ConnectionResetError, BrokenPipeError, ssl.SSLError):
                self._flush()
            self._collect()
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()


Wire = TcpWire | WsWire


def connect_ok(wire: Wire, client_id: str, version: int) -> None:
    """A valid admin CONNECT, answered by a successful CONNACK."""
    wire.send(encode(Connect(client_id, version, username="test", password=b"test")))
    received = b""
    while True:
        data = wire.recv()
        assert data, "gateway closed a valid connection"
        received += data
        frames, _, _ = split_frames(received)
        if frames:
            break
    (first, body), *_ = frames
    assert first == 0x20 and body[1] == 0, body


def exchange(wire: Wire, payload: bytes, sizes: list[int], version: int | None) -> str:
    """Send ``payload`` (completed and followed by a PINGREQ); report ``closed`` or ``open``.

    ``open`` means the gateway answered every PINGREQ it was sent, so it processed everything
    and the connection still works; otherwise it must close it. Whatever it sent on the way
    must be well-formed server-to-client MQTT in the connection's protocol version.
    """
    padding, must_close = completion(payload)
    stream = payload + padding + PINGREQ
    expected = count_pingreqs(stream)
    outcome = None
    try:
        for piece in chunk(stream, sizes):
            wire.send(piece)
    except Closed:
        outcome = "closed"
    received = b""
    while outcome is None:
        data = wire.recv()  # a 5 s timeout: neither answering nor closing fails the test
        if not data:
            outcome = "closed"
            break
        received += data
        frames, _, _ = split_frames(received)
        pings = sum(1 for first, _ in frames if first == 0xD0)
        if pings >= expected and not must_close:
            outcome = "open"
    frames, consumed, state = split_frames(received)
    if not wire.reset:
        assert state == "ok", f"gateway sent a partial packet: {received[consumed:]!r}"
    assert all(first >> 4 in SERVER_TO_CLIENT_TYPES for first, _ in frames), frames
    if frames and version is None and frames[0][0] == 0x20:
        version = MQTT_311 if len(frames[0][1]) == 2 else MQTT_5  # from the CONNACK's shape
    if version is not None:
        PacketReader(version=version).feed(received[:consumed])  # raises if malformed
        if version == MQTT_311:
            assert all(first >> 4 != 14 for first, _ in frames), "DISCONNECT sent to MQTT 3.1.1"
    if must_close:
        assert outcome == "closed"
    return outcome


# --------------------------------------------------------------------------- live fuzzing

KINDS = ["garbage-first", "mutated-connect", "garbage-after", "packets-after"]
wills = st.builds(
    Will, st.sampled_from(["w", "w/x", "$aws/x", "a/+"]), st.binary(max_size=8), st.integers(0, 2)
)


@dataclass
class LiveCase:
    kind: str
    version: int
    sizes: list[int]
    garbage: bytes = b""
    items: list[Packet] = field(default_factory=list)
    connect_properties: dict[int, Any] = field(default_factory=dict)
    will: Will | None = None
    ops: list[tuple[str, int, int]] = field(default_factory=list)

    def payload(self, client_id: str) -> bytes:
        if self.kind == "mutated-connect":
            connect = Connect(
                client_id,
                self.version,
                username="test",
                password=b"test",
                will=self.will,
                properties=self.connect_properties,
            )
            return mutate(encode(connect), self.ops)
        if self.kind == "packets-after":
            return mutate(encode_stream(self.version, self.items), self.ops)
        return self.garbage

    @property
    def connect_first(self) -> bool:
        return self.kind.endswith("-after")


@st.composite
def live_cases(draw: st.DrawFn) -> LiveCase:
    version = draw(versions)
    kind = draw(st.sampled_from(KINDS))
    case = LiveCase(kind, version, draw(chunkings))
    if kind in ("garbage-first", "garbage-after"):
        case.garbage = draw(st.binary(min_size=1, max_size=160))
    elif kind == "mutated-connect":
        if version == MQTT_5:
            case.connect_properties = draw(properties(CONNECT))
        case.will = draw(st.none() | wills)
        case.ops = draw(mutations)
    else:
        client_packets = st.one_of(publishes(version), subscribes(version), packets(version))
        case.items = draw(st.lists(client_packets, min_size=1, max_size=3))
        case.ops = draw(st.just([]) | mutations)  # often none: valid but odd packets
    return case


def run_live_case(
    live: LiveGateway, wire_type: Callable[[GatewayHandle], Wire], case: LiveCase, number: int
) -> str:
    client_id = f"fz{number:06d}"
    wire = wire_type(live.handle)
    try:
        if case.connect_first:
            connect_ok(wire, client_id, case.version)
        version = case.version if case.connect_first else None
        return exchange(wire, case.payload(client_id), case.sizes, version)
    finally:
        wire.close()


@pytest.mark.timeout(240)
def test_live_tcp_listener_survives_garbage(live):
    numbers = itertools.count()
    outcomes: dict[str, int] = {}

    @settings(FUZZ, max_examples=2000)
    @given(live_cases())
    def run(case: LiveCase) -> None:
        number = next(numbers)
        outcome = run_live_case(live, TcpWire, case, number)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        outcomes[case.kind + outcome] = outcomes.get(case.kind + outcome, 0) + 1
        live.check()
        if number % 250 == 0:
            live.healthy.roundtrip()

    run()
    live.check()
    live.healthy.roundtrip()
    # Both outcomes really happened, also past the framing layer (on valid-looking packets).
    assert outcomes.get("open", 0) > 100 and outcomes.get("closed", 0) > 100, outcomes
    assert outcomes.get("packets-afteropen", 0) > 50, outcomes


@pytest.mark.timeout(120)
def test_live_wss_listener_survives_garbage_frames(live):
    numbers = itertools.count(500_000)
    outcomes: dict[str, int] = {}

    @settings(FUZZ, max_examples=120)
    @given(live_cases())
    def run(case: LiveCase) -> None:
        outcome = run_live_case(live, WsWire, case, next(numbers))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        live.check()

    run()
    live.healthy.roundtrip()
    assert outcomes.get("open", 0) > 5 and outcomes.get("closed", 0) > 5, outcomes


def wait_closed(sock: socket.socket) -> None:
    """Read until the peer closes; a socket timeout (the gateway kept it open) fails the test."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass  # an abrupt close is a close too


def assert_closed(wire: WsWire) -> None:
    while wire.recv():
        pass
    wire.close()


@pytest.mark.timeout(60)
def test_wss_protocol_violations_close_only_that_connection(live):
    gw = live.handle
    # A text frame is not MQTT: the gateway closes the WebSocket.
    wire = WsWire(gw)
    connect_ok(wire, "wss-text", MQTT_311)
    wire.send_frame(lambda: wire.proto.send_text(b"CONNECT?"))
    assert_closed(wire)
    assert wire.proto.close_rcvd is not None
    # An unmasked client frame breaks RFC 6455: the WebSocket layer fails the connection.
    wire = WsWire(gw)
    connect_ok(wire, "wss-unmasked", MQTT_5)
    wire.sock.sendall(b"\x82\x02\xc0\x00")
    assert_closed(wire)
    assert wire.proto.close_rcvd is not None and wire.proto.close_rcvd.code == 1002
    # Raw junk instead of frames.
    wire = WsWire(gw)
    connect_ok(wire, "wss-junk", MQTT_5)
    wire.sock.sendall(uuid.uuid4().bytes * 64)
    assert_closed(wire)
    # MQTT bytes fragmented over many tiny binary messages are still MQTT.
    wire = WsWire(gw)
    connect_ok(wire, "wss-fragments", MQTT_5)
    for byte in PINGREQ:
        wire.send(bytes([byte]))
    assert wire.recv() == b"\xd0\x00"
    wire.close()
    # Not an HTTP upgrade at all, over TLS; and not even TLS.
    context = ssl.create_default_context(cafile=gw.ca_file)
    with (
        socket.create_connection((gw.host, gw.wss_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"BREW /mqtt HTCPCP/1.0\r\n\r\n" + bytes(range(256)))
        wait_closed(tls)
    with socket.create_connection((gw.host, gw.wss_port), timeout=5) as raw:
        raw.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" * 4)
        wait_closed(raw)
    live.check()
    live.healthy.roundtrip()
