"""Hostile traffic at the gateway's own doors: the connect deadline counted from accept, the cap
on connections not yet past CONNECT, the per-client-id connect throttle, the byte budget of an
offline session, and temporary keys on plain TCP.

Each misbehaviour runs next to a bystander connected before it, which must stay served.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from infra.local.gateway import Limits
from infra.local.gateway.codec import MQTT_5, MQTT_311, Connect, encode
from infra.local.identity import Credential, Principal
from tests.infra.local.gateway.peers import Bystander, Peer, presence, raw_connect, uid
from tests.support.paho import TCP_V311, ClientFactory
from tests.support.raw_mqtt import Frames
from tests.support.sockets import closed_within
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(40)

DEADLINE = 1.0
# Generous: the deadline plus a loaded machine's scheduling, never a timing claim.
CLOSED_WITHIN = DEADLINE + 4.0
CONNECTION_RATE_EXCEEDED = 0x9F
BAD_USER_NAME_OR_PASSWORD = 0x86
BAD_USERNAME_OR_PASSWORD_311 = 4


@pytest.fixture
def sockets() -> Iterator[Callable[[int], socket.socket]]:
    with ExitStack() as opened:

        def open_to(port: int) -> socket.socket:
            return opened.enter_context(socket.create_connection(("127.0.0.1", port), 5))

        yield open_to


def short_deadline(start_gateway: Callable[..., GatewayHandle], **more: int) -> GatewayHandle:
    return start_gateway(limits=Limits(connect_deadline_seconds=DEADLINE, **more))


# ---------------------------------------------------------------------- one deadline from accept


def test_a_trickled_connect_is_closed_at_the_deadline_counted_from_accept(
    start_gateway: Callable[..., GatewayHandle], sockets: Callable[[int], socket.socket]
) -> None:
    gw = short_deadline(start_gateway)
    bystander = Bystander(gw)
    packet = encode(Connect("trickler", username="test", password=b"test"))
    sock = sockets(gw.mqtt_port)
    accepted = time.monotonic()
    closed = False
    for byte in packet[:-1]:  # every byte well inside a per-byte timeout, never the last one
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if closed_within(sock, DEADLINE / 4):
            closed = True
            break
        if time.monotonic() - accepted > CLOSED_WITHIN:
            break
    assert closed, "the trickled CONNECT outlived the connect deadline"
    assert time.monotonic() - accepted < CLOSED_WITHIN
    assert gw.gateway.stats["connect_deadline"] >= 1
    # No client id was ever accepted: AWS sends no lifecycle event for it.
    assert not [e for e in gw.tapped if e.topic.endswith("/trickler")]
    bystander.roundtrip()
    # The same CONNECT sent at once is accepted.
    Peer(gw, "trickler").close()


@pytest.mark.parametrize("listener", ["mqtt", "mqtts", "wss", "ws"])
def test_a_silent_socket_is_closed_at_the_deadline_on_every_listener(
    start_gateway: Callable[..., GatewayHandle],
    sockets: Callable[[int], socket.socket],
    listener: str,
) -> None:
    """Nothing sent at all: no TLS ClientHello (mqtts, wss), no HTTP upgrade (ws), no CONNECT."""
    gw = short_deadline(start_gateway)
    bystander = Bystander(gw)
    sock = sockets(gw.gateway.ports[listener])
    assert closed_within(sock, CLOSED_WITHIN)
    bystander.roundtrip()


def test_a_websocket_upgraded_over_tls_must_still_connect_within_the_same_deadline(
    start_gateway: Callable[..., GatewayHandle], sockets: Callable[[int], socket.socket]
) -> None:
    """The TLS handshake done at once does not restart the clock: the upgrade is still due."""
    gw = short_deadline(start_gateway)
    context = ssl.create_default_context(cafile=gw.ca_file)
    tls = context.wrap_socket(sockets(gw.wss_port), server_hostname="localhost")
    tls.sendall(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # headers never finished
    start = time.monotonic()
    try:
        tls.settimeout(CLOSED_WITHIN)
        assert tls.recv(65536) == b""
    except (ConnectionResetError, ssl.SSLError):
        pass
    assert time.monotonic() - start < CLOSED_WITHIN


# ---------------------------------------------------------------------- the pending cap


def test_sockets_beyond_the_pending_cap_are_closed_at_once_and_others_are_served(
    start_gateway: Callable[..., GatewayHandle], sockets: Callable[[int], socket.socket]
) -> None:
    gw = start_gateway(limits=Limits(max_pending_connections=4, connect_deadline_seconds=30))
    bystander = Bystander(gw)
    silent = [sockets(gw.gateway.ports["ws"]) for _ in range(4)]
    wait_for(lambda: len(gw.gateway.pending_connections("ws")) == 4)
    extra = sockets(gw.gateway.ports["ws"])
    assert closed_within(extra, 5.0)
    assert gw.gateway.stats["pending_refused"] >= 1
    assert not any(closed_within(s, 0.05) for s in silent)  # the first four wait their turn
    # Another listener has its own cap: plain TCP still connects, and the bystander is served.
    Peer(gw, uid("during-cap")).close()
    bystander.roundtrip()
    for s in silent:
        s.close()
    wait_for(lambda: not gw.gateway.pending_connections("ws"))
    later = sockets(gw.gateway.ports["ws"])
    assert not closed_within(later, 0.2)


# ---------------------------------------------------------------------- connect throttle


def connack_code(received: bytes) -> int | None:
    """The CONNACK's reason/return code in ``received``, or None when there was none."""
    frames = Frames()
    frames.feed(received)
    packet = frames.next()
    if packet is None or packet[0] >> 4 != 2:
        return None
    return packet[1][1]


def connect_once(
    gw: GatewayHandle, client_id: str, version: int
) -> tuple[socket.socket, int | None]:
    sock = socket.create_connection((gw.host, gw.mqtt_port), timeout=5)
    sock.sendall(
        encode(
            Connect(client_id, protocol_level=version, username="test", password=b"test"), version
        )
    )
    frames = Frames()
    while (packet := frames.next()) is None:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return sock, None
        frames.feed(data)
    assert packet[0] >> 4 == 2
    return sock, packet[1][1]


@pytest.mark.parametrize("version", [MQTT_5, MQTT_311], ids=["v5", "v311"])
def test_twenty_connects_a_second_with_one_client_id_are_throttled(
    start_gateway: Callable[..., GatewayHandle], version: int
) -> None:
    limits = Limits()
    gw = start_gateway(limits=limits)
    bystander = Bystander(gw)
    client_id = uid("flapper")
    answers: list[int | None] = []
    with ExitStack() as opened:
        started = time.monotonic()
        for _ in range(20):
            sock, code = connect_once(gw, client_id, version)
            opened.callback(sock.close)
            answers.append(code)
        refilled = int((time.monotonic() - started) * limits.connects_per_second_per_client)
        accepted = answers.count(0)
        assert limits.connect_burst <= accepted <= limits.connect_burst + refilled + 1
        refused = [a for a in answers if a != 0]
        expected = CONNECTION_RATE_EXCEEDED if version == MQTT_5 else None  # 3.1.1: closed
        assert refused and set(refused) == {expected}
        assert gw.gateway.broker.stats["connect_throttled"] == len(refused)
        # Other client ids are not throttled by it, and the bystander is served.
        Peer(gw, uid("neighbour")).close()
        bystander.roundtrip()

        def reconnects() -> bool:
            sock, code = connect_once(gw, client_id, version)
            opened.callback(sock.close)
            return code == 0

        # A second later the client id may connect again (AWS: 1 per second).
        assert wait_for(reconnects, timeout=5, interval=0.5)


# ---------------------------------------------------------------------- temporary keys on TCP


@pytest.mark.parametrize(
    ("version", "expected"),
    [(MQTT_5, BAD_USER_NAME_OR_PASSWORD), (MQTT_311, BAD_USERNAME_OR_PASSWORD_311)],
    ids=["v5", "v311"],
)
def test_a_temporary_key_without_its_token_is_refused_on_plain_tcp(
    gateway: GatewayHandle, version: int, expected: int
) -> None:
    """Username/password has no room for a session token: a temporary key (Cognito, a role
    session) is refused on plain TCP, the local admin's long-term key is not."""
    key = "ASIA" + uuid.uuid4().hex[:16].upper()
    secret = uuid.uuid4().hex
    gateway.credentials.add(
        Credential(key, secret, Principal("admin", key), session_token="token-" + secret)
    )
    connect = Connect("temp-key", protocol_level=version, username=key, password=secret.encode())
    assert connack_code(raw_connect(gateway, connect)) == expected
    assert presence(gateway, "connect_failed", "temp-key")  # as for any bad password
    # The long-term admin key on the same listener is accepted.
    Peer(gateway, "long-term", version=5 if version == MQTT_5 else 4).close()


# ---------------------------------------------------------------------- offline byte budget


def test_an_offline_session_keeps_at_most_its_byte_budget(
    start_gateway: Callable[..., GatewayHandle], clients: ClientFactory
) -> None:
    budget = 1024 * 1024
    gw = start_gateway(limits=Limits(max_queued_bytes=budget))
    bystander = Bystander(gw)
    client_id = uid("away")
    topic = f"inbox/{client_id}"
    away = clients.connected(gw, TCP_V311, client_id, clean=False)
    assert away.subscribe(topic, 1) == [1]
    away.disconnect()
    wait_for(lambda: gw.call(lambda: gw.gateway.broker.sessions[client_id].connection is None))
    page = b"x" * (100 * 1024)  # a history page's size
    for _ in range(60):  # ~6 MB offered while the client is away
        gw.call(lambda: gw.gateway.publish(topic, page, qos=1))

    def held() -> tuple[int, int, int]:
        session = gw.gateway.broker.sessions[client_id]
        return session.queued_bytes, len(session.pending), session.dropped

    queued_bytes, kept, dropped = gw.call(held)
    assert queued_bytes <= budget
    assert 0 < kept < 60 and dropped == 60 - kept
    assert gw.gateway.broker.stats["dropped_qos1"] >= dropped
    bystander.roundtrip()
    # Back online, the client gets what was kept; the budget is free again.
    back = clients(gw, TCP_V311, client_id, clean=False)
    assert back.connect() == (0, True)
    back.wait(lambda: len([m for m in back.messages if m.topic == topic]) == kept, 10)
    assert gw.call(held)[0] == 0
