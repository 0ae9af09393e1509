"""Each publish and subscribe limit behaves as AWS IoT Core does, and the gateway keeps serving
others.

Real paho clients (MQTT 3.1.1 and 5.0) talk to the gateway over loopback TCP. Every test also
runs a *bystander*: a client connected before the misbehaving one, which must still publish
and receive afterwards (``peers.py``, fixtures in ``conftest.py``). CONNECT's refusals are
``test_connect_refusals.py``.

AWS behaviour: shared/reference/aws-iot-core.md sections 4 ("Refusals") and 6 ("Limits").
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from infra.local.gateway import Limits
from infra.local.gateway.codec import (
    MQTT_311,
    Connect,
    PacketReader,
    Publish,
    Subscribe,
    SubscriptionOptions,
    encode,
)
from tests.infra.local.gateway.peers import (
    Bystander,
    Peer,
    disconnect_reason,
    uid,
)
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

KB128 = 128 * 1024


# --------------------------------------------------------------------------- payload size


@pytest.mark.parametrize("qos", [0, 1])
def test_payload_over_128kb_mqtt5_disconnect_0x95_not_delivered(gateway, bystander, peers, qos):
    """AWS disconnects a client publishing over 128 KB (CLIENT_ERROR).

    MQTT 5 clients learn why from DISCONNECT 0x95: Packet Too Large is not a valid PUBACK
    reason code (MQTT 5 3.4.2.1), and paho treats a PUBACK carrying it as a protocol error.
    """
    topic = uid("big")
    sub = peers(gateway, uid("sub"))
    assert sub.subscribe([(topic, 1)]) == [1]
    pub = peers(gateway, uid("pub"))
    assert pub.puback(pub.publish(topic, b"y" * KB128)) == 0  # exactly 128 KB is fine
    wait_for(lambda: sub.payloads(topic))
    pub.publish(topic, b"x" * (KB128 + 1), qos=qos)
    pub.wait_gone()
    assert [r.value for r in pub.disconnects][:1] == [0x95]
    assert disconnect_reason(gateway, pub.client_id) == "CLIENT_ERROR"
    # A later message on the topic arrives right after the 128 KB one: nothing in between.
    bystander.peer.publish(topic, b"after")
    wait_for(lambda: b"after" in sub.payloads(topic))
    assert sub.payloads(topic) == [b"y" * KB128, b"after"]
    bystander.roundtrip()


def test_payload_over_128kb_mqtt311_closes_connection(gateway, bystander, peers):
    topic = uid("big")
    sub = peers(gateway, uid("sub"))
    assert sub.subscribe([(topic, 1)]) == [1]
    pub = peers(gateway, uid("pub311"), version=3)
    assert pub.puback(pub.publish(topic, b"y" * KB128)) == 0
    pub.publish(topic, b"x" * (KB128 + 1))
    pub.wait_gone()
    assert disconnect_reason(gateway, pub.client_id) == "CLIENT_ERROR"
    # A later message on the topic arrives right after the 128 KB one: nothing in between.
    bystander.peer.publish(topic, b"after")
    wait_for(lambda: b"after" in sub.payloads(topic))
    assert sub.payloads(topic) == [b"y" * KB128, b"after"]
    bystander.roundtrip()


# --------------------------------------------------------------------------- topic size and depth

LONG_TOPIC = "t/" + "x" * 254  # 256 bytes
DEEP_TOPIC = "a/b/c/d/e/f/g/h"  # 7 slashes


@pytest.mark.parametrize(
    "bad_topic", [LONG_TOPIC + "x", "é" * 128 + "x", DEEP_TOPIC + "/i"], ids=["257B", "utf8", "8sl"]
)
@pytest.mark.parametrize("version", [3, 5])
def test_publish_to_invalid_topic_closes_connection(gateway, bystander, peers, version, bad_topic):
    sub = peers(gateway, uid("sub"))
    assert sub.subscribe([(LONG_TOPIC, 1), (DEEP_TOPIC, 1)]) == [1, 1]
    pub = peers(gateway, uid("pub"), version=version)
    # The longest and deepest valid topics are fine.
    assert pub.puback(pub.publish(LONG_TOPIC, b"long")) == 0
    assert pub.puback(pub.publish(DEEP_TOPIC, b"deep")) == 0
    wait_for(lambda: len(sub.payloads()) == 2)
    pub.publish(bad_topic, b"bad")
    pub.wait_gone()
    if version == 5:
        assert [r.value for r in pub.disconnects][:1] == [0x90]  # Topic Name invalid
    assert disconnect_reason(gateway, pub.client_id) == "CLIENT_ERROR"
    bystander.roundtrip()


@pytest.mark.parametrize(("version", "failure"), [(3, 0x80), (5, 0x8F)])
def test_subscribe_to_invalid_filter_is_refused(gateway, bystander, peers, version, failure):
    peer = peers(gateway, uid("sub"), version=version)
    codes = peer.subscribe(
        [("f/" + "x" * 255, 1), ("a/b/c/d/e/f/g/h/#", 0), ("a/+/c/d/e/f/g/#", 1), (LONG_TOPIC, 0)]
    )
    assert codes == [failure, failure, 1, 0]
    assert peer.connected
    bystander.roundtrip()


def test_basic_ingest_topic_is_exempt_from_the_slash_limit(gateway, bystander, peers):
    topic = "$aws/rules/myrule/a/b/c/d/e/f/g/h"  # 10 slashes, 7 after the Basic Ingest prefix
    sub = peers(gateway, uid("sub"))
    assert sub.subscribe([("$aws/rules/myrule/#", 1), ("marker/ingest", 1)]) == [1, 1]
    pub = peers(gateway, uid("pub"))
    assert pub.puback(pub.publish(topic, b'{"n":1}')) == 0
    assert pub.puback(pub.publish("marker/ingest", b"m")) == 0
    wait_for(lambda: sub.payloads("marker/ingest"))
    # Basic Ingest goes to the rules engine (the tap) only, never to subscribers.
    assert sub.payloads() == [b"m"]
    ingested = [e for e in gateway.tapped if e.topic == topic]
    assert [(e.source, e.rule_name, e.payload) for e in ingested] == [
        ("basic-ingest", "myrule", b'{"n":1}')
    ]
    # Beyond 7 slashes after the prefix it is refused like any other topic.
    pub.publish(topic + "/i", b"x")
    pub.wait_gone()
    assert [r.value for r in pub.disconnects][:1] == [0x90]
    bystander.roundtrip()


# --------------------------------------------------------------------------- subscriptions


@pytest.mark.parametrize(("version", "quota"), [(3, 0x80), (5, 0x97)])
def test_fifty_subscriptions_per_connection(gateway, bystander, peers, version, quota):
    peer = peers(gateway, uid("many"), version=version)
    filters = [f"s/{n}" for n in range(50)]
    for start in range(0, 50, 8):
        batch = filters[start : start + 8]
        assert peer.subscribe([(f, 1) for f in batch]) == [1] * len(batch)
    assert peer.subscribe([("s/50", 1)]) == [quota]
    # Subscribing again to a filter already held is not a new subscription.
    assert peer.subscribe([("s/7", 0)]) == [0]
    # Freeing one makes room for exactly one more.
    peer.client.unsubscribe("s/0")
    wait_for(lambda: gateway.call(lambda: "s/0" not in _session(gateway, peer).subscriptions))
    assert peer.subscribe([("s/50", 1), ("s/51", 1)]) == [1, quota]
    assert peer.connected
    bystander.roundtrip()


@pytest.mark.parametrize(("version", "quota"), [(3, 0x80), (5, 0x97)])
def test_eight_filters_per_subscribe(gateway, bystander, peers, version, quota):
    peer = peers(gateway, uid("eight"), version=version)
    assert peer.subscribe([(f"n/{n}", 1) for n in range(9)]) == [quota] * 9
    assert gateway.call(lambda: dict(_session(gateway, peer).subscriptions)) == {}
    assert peer.subscribe([(f"n/{n}", 1) for n in range(8)]) == [1] * 8
    assert peer.connected
    bystander.roundtrip()


def _session(gw: GatewayHandle, peer: Peer) -> Any:
    return gw.gateway.broker.sessions[peer.client_id]


# --------------------------------------------------------------------------- publish rate


def test_publish_rate_mqtt5_quota_exceeded(gateway, bystander, peers):
    """100 publishes/s per connection: a burst of 200 gets about 100 through, the rest 0x97."""
    topic = uid("rate")
    sub = peers(gateway, uid("sub"))
    assert sub.subscribe([(topic, 1)]) == [1]
    pub = peers(gateway, uid("fast"))
    started = time.monotonic()
    mids = [pub.publish(topic, str(n).encode()) for n in range(200)]
    codes = [pub.puback(mid) for mid in mids]
    elapsed = time.monotonic() - started
    accepted = codes.count(0)
    assert set(codes) <= {0, 0x97}
    # The bucket starts full (100) and refills at 100/s while the burst lasts.
    assert 100 <= accepted <= 100 + int(elapsed * 100) + 1, (accepted, elapsed)
    assert codes.count(0x97) == 200 - accepted > 0
    # Exactly the accepted ones are delivered, in order.
    wait_for(lambda: len(sub.payloads(topic)) >= accepted)
    expected = [str(n).encode() for n, code in enumerate(codes) if code == 0]
    assert sub.payloads(topic) == expected
    assert pub.connected
    bystander.roundtrip()


def test_publish_rate_mqtt311_throttled(start_gateway, peers):
    """MQTT 3.1.1 has no way to refuse one message: AWS drops the connection (THROTTLED)."""
    gw = start_gateway(limits=Limits(publishes_per_second=20))
    by = Bystander(gw)
    try:
        topic = uid("rate")
        sub = peers(gw, uid("sub"))
        assert sub.subscribe([(topic, 1)]) == [1]
        pub = peers(gw, uid("fast311"), version=3)
        for n in range(60):
            pub.publish(topic, str(n).encode())
        pub.wait_gone()
        assert disconnect_reason(gw, pub.client_id) == "THROTTLED"
        # The bucket allowed 20 (plus what refilled during the burst), in order; a marker
        # published afterwards shows where the accepted ones end.
        by.peer.publish(topic, b"end")
        wait_for(lambda: b"end" in sub.payloads(topic))
        got = sub.payloads(topic)[:-1]
        assert got == [str(n).encode() for n in range(len(got))]
        assert 20 <= len(got) < 60
        by.roundtrip()
    finally:
        by.peer.close()


# --------------------------------------------------------------------------- reserved topics


def test_reserved_topics_mqtt5(gateway, bystander, peers):
    peer = peers(gateway, uid("res5"))
    forged = f"$aws/events/presence/connected/{uid('forged')}"
    assert peer.puback(peer.publish(forged, b"{}")) == 0x87  # Not authorized
    assert not [e for e in gateway.tapped if e.topic == forged]
    # A shared subscription without its topic filter is an invalid filter.
    assert peer.subscribe([("$share/group", 1), ("t", 1)]) == [0x8F, 1]
    assert peer.connected
    bystander.roundtrip()


def test_reserved_topics_mqtt311(gateway, bystander, peers):
    peer = peers(gateway, uid("res311"), version=3)
    assert peer.subscribe([("$share/group", 1), ("t", 1)]) == [0x80, 1]
    forged = f"$aws/events/presence/connected/{uid('forged')}"
    peer.publish(forged, b"{}")
    peer.wait_gone()
    # AWS: AUTH_ERROR is "failed to authenticate or authorization failed"; FORBIDDEN_ACCESS
    # is for clients not allowed to connect at all (a forbidden IP address, for instance).
    assert disconnect_reason(gateway, peer.client_id) == "AUTH_ERROR"
    assert not [e for e in gateway.tapped if e.topic == forged]
    bystander.roundtrip()


def test_subscription_identifier_disconnects_0xa1(gateway, bystander, peers):
    peer = peers(gateway, uid("subid"))
    props = Properties(PacketTypes.SUBSCRIBE)
    props.SubscriptionIdentifier = 7
    peer.client.subscribe([("t/subid", SubscribeOptions(qos=1))], properties=props)
    peer.wait_gone()
    assert [r.value for r in peer.disconnects][:1] == [0xA1]
    assert disconnect_reason(gateway, peer.client_id) == "CLIENT_ERROR"
    bystander.roundtrip()


# --------------------------------------------------------------------------- slow consumer


def _raw_subscriber(
    gw: GatewayHandle, client_id: str, topics: list[tuple[str, int]]
) -> socket.socket:
    """A subscriber that connects, subscribes, and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # keep the kernel's share small
    sock.settimeout(5)
    sock.connect((gw.host, gw.mqtt_port))
    reader = PacketReader(version=MQTT_311)
    sock.sendall(encode(Connect(client_id, username="test", password=b"test")))
    sock.sendall(encode(Subscribe(1, [(t, SubscriptionOptions(q)) for t, q in topics])))
    got: list[Any] = []
    while len(got) < 2:
        got += reader.feed(sock.recv(4096))
    assert got[0].reason_code == 0 and got[1].reason_codes == [q for _, q in topics]
    return sock


def test_slow_consumer_memory_is_bounded(start_gateway, peers):
    """A subscriber that stops reading costs bounded memory; everyone else carries on."""
    limits = Limits(
        publishes_per_second=100_000,
        max_queued_messages=40,
        max_inflight=10,
        write_buffer_high_water=256 * 1024,
    )
    gw = start_gateway(limits=limits)
    by = Bystander(gw)
    slow = _raw_subscriber(gw, "slow", [("slow/q0", 0), ("slow/q1", 1)])
    try:
        healthy = peers(gw, uid("healthy"))
        assert healthy.subscribe([("slow/q0", 0), ("slow/q1", 1)]) == [0, 1]
        pub = peers(gw, uid("pub"))

        def state() -> dict[str, int]:
            broker = gw.gateway.broker
            session = broker.sessions["slow"]
            transport = broker.connections["slow"].sink.transport
            return {
                "pending": len(session.pending),
                "inflight": len(session.inflight),
                "session_dropped": session.dropped,
                "write_buffer": transport.get_write_buffer_size(),
                **broker.stats,
            }

        def bounded(seen: dict[str, int]) -> None:
            assert seen["pending"] <= limits.max_queued_messages, seen
            assert seen["inflight"] <= limits.max_inflight, seen
            # One loop turn's writes may land past the high-water mark, never more.
            assert seen["write_buffer"] <= limits.write_buffer_high_water + 1024 * 1024, seen

        chunk, per_round = 32 * 1024, 8
        mids: list[int] = []
        sent = 0

        def publish_round() -> None:
            nonlocal sent
            for n in range(per_round):
                qos = n % 2
                payload = f"{sent}:".encode().ljust(chunk, b".")
                mids.append(pub.publish(f"slow/q{qos}", payload, qos=qos))
                sent += 1
            # Pace the publisher by the healthy reader, so only the slow one falls behind.
            wait_for(lambda: len(healthy.payloads()) >= sent, 20)

        # Publish until the gateway has to drop for the slow client (its kernel buffers are
        # full): a few MiB here, at most 50 MiB wherever TCP buffers are larger.
        for _ in range(200):
            publish_round()
            seen = gw.call(state)
            bounded(seen)
            if seen["dropped_qos0"] and seen["dropped_qos1"]:
                break
        assert seen["dropped_qos0"] > 0 and seen["dropped_qos1"] > 0, seen
        assert seen["session_dropped"] == seen["dropped_qos1"]
        # More traffic only raises the drop counters; the queues stay where they are.
        for _ in range(5):
            publish_round()
        later = gw.call(state)
        bounded(later)
        assert later["dropped_qos0"] > seen["dropped_qos0"]
        assert later["dropped_qos1"] > seen["dropped_qos1"]
        # The publisher and the healthy subscriber were not affected at all.
        assert all(pub.puback(mid) == 0 for mid in mids[1::2])
        # Every message reached the healthy subscriber exactly once.
        assert sorted(int(p.split(b":")[0]) for p in healthy.payloads()) == list(range(sent))
        assert pub.connected and healthy.connected
        by.roundtrip()
    finally:
        slow.close()
        by.peer.close()


def test_publish_followed_by_garbage_in_one_write_is_still_delivered(gateway, bystander):
    """Bad input loses nothing: the valid PUBLISH ahead of the garbage reaches subscribers."""
    client_id = uid("garbage")
    connect = encode(Connect(client_id, username="test", password=b"test"))
    publish = encode(Publish(bystander.topic, b"before-garbage", 0))
    with socket.create_connection((gateway.host, gateway.mqtt_port), timeout=5) as sock:
        sock.sendall(connect)
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        sock.sendall(publish + b"\x00\x00\xff\xff")
        while sock.recv(65536):
            pass  # the gateway closes the connection after the garbage
    wait_for(lambda: b"before-garbage" in bystander.peer.payloads(bystander.topic))
    assert disconnect_reason(gateway, client_id) == "CLIENT_ERROR"
    bystander.roundtrip()
