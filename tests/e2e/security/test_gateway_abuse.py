"""The device gateway under hostile traffic, on a running stack: each attack next to a guest who
keeps chatting, and the legitimate form of the same action still accepted.

- 1,100 silent WebSocket sockets under ``ulimit -n 1024`` (ws listener): those past the
  pending cap closed at once, the rest at the connect deadline; health, Cognito and chat go on.
- a CONNECT trickled one byte at a time (plain TCP): closed at the deadline counted from accept.
- a WebSocket that never upgrades (wss listener): closed at the same deadline.
- ~6 MB of 100 KB pages to an offline session: kept up to the byte budget, the rest dropped
  and counted.
- 20 CONNECTs in a second with one client id: MQTT 5 CONNACK 0x9F after the burst.
- the live connection of a certificate revoked by another process (mTLS): DISCONNECT 0x87 and
  ``disconnected`` with AUTH_ERROR.
- a Cognito key and secret as MQTT username/password (plain TCP): CONNACK 0x86.
"""

from __future__ import annotations

import json
import resource
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from infra.local.gateway import Limits
from infra.local.gateway.codec import Connect, encode
from infra.local.registry import Registry, create_device, revoke_device
from tests.e2e.security.helpers import Session, tls_session, wss_session
from tests.support.cognito import guest_credentials
from tests.support.raw_mqtt import CONNACK, V5, V311, Frames, connect_packet, read_varint
from tests.support.sockets import closed_within
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.up_command import up_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

ACCEPTED = 0x00
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
CONNECTION_RATE_EXCEEDED = 0x9F
PUBLISH, DISCONNECT = 3, 14
DEADLINE = 2.0
CLOSED_WITHIN = DEADLINE + 5.0  # the deadline plus a busy machine's slack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    """Default limits but a short connect deadline, so the deadline tests stay short."""
    limits = Limits(connect_deadline_seconds=DEADLINE)
    with fresh_stack(tmp_path_factory, "abuse", limits=limits) as s:
        yield s


@pytest.fixture
def closing() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


# ---------------------------------------------------------------------- a guest who chats


def publish_parts(body: bytes, version: int) -> tuple[str, bytes]:
    """(topic, payload) of a QoS 1 PUBLISH body."""
    length = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + length].decode()
    at = 2 + length + 2  # packet id
    if version == V5:
        props = read_varint(body, at)
        assert props is not None
        at = props[1] + props[0]
    return topic, body[at:]


def says(session: Session, room: str, text: str) -> None:
    message = {"type": "message", "id": uuid.uuid4().hex, "room": room, "body": text}
    assert session.publish("chat/out", json.dumps(message).encode()) == ACCEPTED


def hears(session: Session, room: str, text: str) -> None:
    while True:
        packet = session.read()
        assert packet is not None, "the chatting guest was disconnected"
        if packet[0] >> 4 != PUBLISH:
            continue
        topic, payload = publish_parts(packet[1], session.version)
        if topic == f"chat/pub/{room}" and json.loads(payload).get("body") == text:
            return


@dataclass
class Chatter:
    """A guest in a room over SigV4 WebSocket (MQTT 5), hearing its own messages back."""

    session: Session
    room: str

    def chats(self) -> None:
        text = f"still here {uuid.uuid4().hex[:6]}"
        says(self.session, self.room, text)
        hears(self.session, self.room, text)


def chatter(stack: InProcessStack, closing: ExitStack) -> Chatter:
    me, creds = guest_credentials(stack)
    session = wss_session(stack, creds)
    closing.callback(session.close)
    assert session.connect(me) == ACCEPTED
    room = f"room-{uuid.uuid4().hex[:8]}"
    assert session.subscribe(f"chat/pub/{room}") == 1
    found = Chatter(session, room)
    found.chats()
    return found


# ---------------------------------------------------------------------- connect deadline


def test_a_trickled_connect_is_closed_by_the_deadline_while_a_guest_chats(
    stack: InProcessStack, closing: ExitStack
) -> None:
    guest = chatter(stack, closing)
    packet = connect_packet("trickler", V311, username="test", password="test")
    sock = closing.enter_context(
        socket.create_connection(("127.0.0.1", stack.info["iot"]["mqttPort"]), 5)
    )
    accepted = time.monotonic()
    closed = False
    for byte in packet[:-1]:  # one byte every quarter deadline: never idle for long
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if closed or closed_within(sock, DEADLINE / 4):
            closed = True
            break
    assert closed and time.monotonic() - accepted < CLOSED_WITHIN
    assert not stack.taps_on("$aws/events/presence/connect_failed/trickler")  # no client id yet
    guest.chats()
    # The same CONNECT in one piece is accepted on the same listener.
    whole = closing.enter_context(
        socket.create_connection(("127.0.0.1", stack.info["iot"]["mqttPort"]), 5)
    )
    whole.sendall(packet)
    assert whole.recv(4) == b"\x20\x02\x00\x00"


def test_a_websocket_that_never_upgrades_is_closed_by_the_same_deadline(
    stack: InProcessStack, closing: ExitStack
) -> None:
    guest = chatter(stack, closing)
    silent = closing.enter_context(
        socket.create_connection(("127.0.0.1", stack.info["iot"]["wssPort"]), 5)
    )
    assert closed_within(silent, CLOSED_WITHIN)
    guest.chats()


# ---------------------------------------------------------------------- offline byte budget


def persistent_session(stack: InProcessStack, creds: dict[str, Any], me: str) -> Session:
    session = wss_session(stack, creds, V311)
    session._send(encode(Connect(me, protocol_level=V311, clean_start=False, keep_alive=60)))
    ack = session.read_kind(CONNACK)
    assert ack is not None and ack[1][1] == ACCEPTED
    return session


def test_an_offline_session_holds_at_most_its_byte_budget_under_a_page_flood(
    stack: InProcessStack, closing: ExitStack
) -> None:
    guest = chatter(stack, closing)
    me, creds = guest_credentials(stack)
    away = persistent_session(stack, creds, me)
    assert away.subscribe(f"chat/in/{me}") == 1
    away.close()
    wait_for(lambda: stack.gateway.broker.sessions[me].connection is None)
    # What a `history` request flood makes the backend send: 100 KB pages to the inbox.
    page = json.dumps({"v": 1, "type": "history", "pad": "x" * 100_000}).encode()
    data = stack.iot_data()
    offered = 60
    for _ in range(offered):
        data.publish(topic=f"chat/in/{me}", qos=1, payload=page)
    session = stack.gateway.broker.sessions[me]
    budget = Limits().max_queued_bytes
    kept, held = stack.call(lambda: (len(session.pending), session.queued_bytes))
    assert held <= budget < offered * len(page)
    assert 0 < kept < offered and session.dropped == offered - kept
    assert stack.gateway.broker.stats["dropped_qos1"] >= offered - kept
    guest.chats()
    # Back online, the guest gets every page that was kept.
    back = persistent_session(stack, creds, me)
    closing.callback(back.close)
    for _ in range(kept):
        packet = back.read_kind(PUBLISH)
        assert packet is not None
        assert publish_parts(packet[1], V311)[0] == f"chat/in/{me}"


# ---------------------------------------------------------------------- connect throttle


def test_twenty_connects_a_second_with_one_client_id_are_throttled(
    stack: InProcessStack, closing: ExitStack
) -> None:
    guest = chatter(stack, closing)
    me, creds = guest_credentials(stack)
    answers = []
    started = time.monotonic()
    for _ in range(20):
        session = wss_session(stack, creds)
        closing.callback(session.close)
        answers.append(session.connect(me))
    elapsed = time.monotonic() - started
    burst = Limits().connect_burst
    assert burst <= answers.count(ACCEPTED) <= burst + int(elapsed) + 1
    assert set(answers) == {ACCEPTED, CONNECTION_RATE_EXCEEDED}
    guest.chats()
    _, other_creds = other = guest_credentials(stack)
    neighbour = wss_session(stack, other_creds)
    closing.callback(neighbour.close)
    assert neighbour.connect(other[0]) == ACCEPTED

    def reconnects() -> bool:
        session = wss_session(stack, creds)
        closing.callback(session.close)
        return session.connect(me) == ACCEPTED

    assert wait_for(reconnects, timeout=5, interval=0.5)  # a second later, as AWS allows


# ---------------------------------------------------------------------- revocation


def test_a_certificate_revoked_by_another_process_loses_its_live_connection(
    stack: InProcessStack, closing: ExitStack, tmp_path: Path
) -> None:
    guest = chatter(stack, closing)
    registry = stack.stack.registry
    name, other_name = (f"{label}-{uuid.uuid4().hex[:8]}" for label in ("revoked", "kept"))
    device = create_device(registry, stack.ca, name, tmp_path / name)
    other = create_device(registry, stack.ca, other_name, tmp_path / other_name)
    live = tls_session(stack, device.cert_path, device.key_path)
    closing.callback(live.close)
    assert live.connect(name) == ACCEPTED
    kept = tls_session(stack, other.cert_path, other.key_path)
    closing.callback(kept.close)
    assert kept.connect(other_name) == ACCEPTED
    # `iotchat device revoke` in another process: its own Registry on the same state dir.
    revoke_device(Registry.open(stack.stack.state_dir), name)
    packet = live.read(timeout=10)
    assert packet is not None and packet[0] >> 4 == DISCONNECT and packet[1][0] == NOT_AUTHORIZED
    assert live.read(timeout=5) is None
    (event,) = wait_for(lambda: stack.taps_on(f"$aws/events/presence/disconnected/{name}"))
    assert json.loads(event.payload)["disconnectReason"] == "AUTH_ERROR"
    assert kept.alive()
    guest.chats()


# ---------------------------------------------------------------------- temporary keys


def test_a_cognito_key_without_its_token_is_refused_on_plain_tcp(
    stack: InProcessStack, closing: ExitStack
) -> None:
    me, creds = guest_credentials(stack)
    port = stack.info["iot"]["mqttPort"]
    sock = closing.enter_context(socket.create_connection(("127.0.0.1", port), 5))
    sock.sendall(connect_packet(me, V5, username=creds["AccessKeyId"], password=creds["SecretKey"]))
    frames = Frames()
    while (packet := frames.next()) is None:
        data = sock.recv(65536)
        assert data, "closed without CONNACK"
        frames.feed(data)
    assert packet[0] >> 4 == CONNACK and packet[1][1] == BAD_USER_NAME_OR_PASSWORD
    # The same key signs a WebSocket URL, token included, and is accepted there...
    signed = wss_session(stack, creds)
    closing.callback(signed.close)
    assert signed.connect(me) == ACCEPTED
    # ...and the local admin's long-term key still works on plain TCP.
    admin = closing.enter_context(socket.create_connection(("127.0.0.1", port), 5))
    admin.sendall(connect_packet("admin-tcp", V311, username="test", password="test"))
    assert admin.recv(4) == b"\x20\x02\x00\x00"


# ---------------------------------------------------------------------- descriptors


@dataclass
class ProcessStack:
    """What the helpers read of a stack (its stack file) for one in its own process."""

    info: dict[str, Any]

    @property
    def endpoint(self) -> str:
        return str(self.info["api"]["endpoint"])


SILENT_SOCKETS = 1100
FD_LIMIT = 1024


def limit_open_files() -> None:  # pragma: no cover - runs in the child before exec
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


@pytest.fixture
def small_stack(tmp_path: Path) -> Iterator[ProcessStack]:
    """``iotchat up`` in its own process under ``ulimit -n 1024`` (soft and hard, so it cannot
    raise it), default limits."""
    log = tmp_path / "up.out"
    with up_process(tmp_path / "s", log=log, preexec_fn=limit_open_files, timeout=40) as info:
        yield ProcessStack(info)


def healthy(stack: ProcessStack) -> bool:
    with urllib.request.urlopen(stack.endpoint + "/_iotchat/health", timeout=5) as answer:
        return bool(answer.status == 200)


@pytest.mark.timeout(90)
def test_1100_silent_websocket_sockets_under_ulimit_1024_leave_the_stack_serving(
    small_stack: ProcessStack, closing: ExitStack
) -> None:
    stack = cast(InProcessStack, small_stack)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < SILENT_SOCKETS + 200:  # this process opens them all
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        closing.callback(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))
    guest = chatter(stack, closing)
    port = small_stack.info["iot"]["wsPort"]
    silent = []
    for _ in range(SILENT_SOCKETS):
        sock = socket.socket()
        closing.callback(sock.close)
        sock.connect(("127.0.0.1", port))
        silent.append(sock)
    # Sockets beyond the pending cap are closed at once, not held until the deadline.
    cap = Limits().max_pending_connections
    closed = sum(closed_within(s, 0.01) for s in silent)
    assert closed >= SILENT_SOCKETS - cap - 50  # (a few may still wait in the backlog)
    # Meanwhile: health answers, Cognito issues a new guest, who connects and chats too.
    assert healthy(small_stack)
    guest.chats()
    newcomer = chatter(stack, closing)
    newcomer.chats()
    # The ones held are closed at the connect deadline.
    held = [s for s in silent if not closed_within(s, 0)]
    deadline = Limits().connect_deadline_seconds
    assert all(closed_within(s, deadline + 10) for s in held)
    guest.chats()
