"""AWS IoT Core's MQTT behaviour as paho-mqtt sees it, for each transport and protocol version.

Every test runs four times: MQTT 3.1.1 and MQTT 5, over plain TCP (username/password) and
over a SigV4-presigned WebSocket on TLS. Where a test proves that something does *not*
arrive, it sends a later "sentinel" on the same path and waits for that instead of
sleeping: the gateway keeps per-connection order, so anything wrongly delivered would have
arrived first.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from infra.local.gateway import Limits
from tests.support.paho import (
    TCP_V5,
    V5_COMBOS,
    ClientFactory,
    Combo,
    Received,
    Will,
    combos,
    unique,
    wait_event,
)
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

DISCONNECT_WITH_WILL = 0x04
SESSION_TAKEN_OVER = 0x8E
KEEP_ALIVE_TIMEOUT = 0x8D


def _session_kwargs(combo: Combo) -> dict[str, object]:
    """A persistent session: MQTT 3.1.1 clean_session=0; MQTT 5 clean_start=0 with an expiry."""
    return {"clean": False, "session_expiry": 300 if combo.v5 else None}


def _wait_offline(gateway: GatewayHandle, client_id: str, count: int = 1) -> None:
    """Wait until the gateway has finished ``count`` connections of ``client_id``."""
    topic = f"$aws/events/presence/disconnected/{client_id}"
    wait_for(lambda: sum(e.topic == topic for e in gateway.tapped) >= count)


def _leave_persistent_session(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo, client_id: str, topic: str
) -> None:
    """Open a persistent session subscribed to ``topic`` at QoS 1, then leave it offline."""
    first = clients(gateway, combo, client_id, **_session_kwargs(combo))
    assert first.connect() == (0, False)
    assert first.subscribe(topic, 1) == [1]
    first.disconnect()
    _wait_offline(gateway, client_id)


@pytest.mark.parametrize("combo", combos())
def test_publish_subscribe_qos0_and_qos1(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    """Delivery QoS is the lower of publish and subscription QoS; QoS 1 is acknowledged."""
    base = unique("pubsub")
    sub = clients.connected(gateway, combo)
    assert sub.subscribe(f"{base}/q1/#", 1) == [1]
    assert sub.subscribe(f"{base}/q0", 0) == [0]
    pub = clients.connected(gateway, combo)

    assert pub.publish(f"{base}/q1/a", b"one", qos=1) == 0  # PUBACK, success
    pub.publish(f"{base}/q1/b", b"zero", qos=0)
    assert pub.publish(f"{base}/q0", b"downgraded", qos=1) == 0
    assert pub.publish(f"{base}/elsewhere", b"nobody", qos=1) == 0
    pub.publish(f"{base}/q0", b"last", qos=0)

    sub.wait_message(f"{base}/q0", b"last")
    assert sub.snapshot() == [
        Received(f"{base}/q1/a", b"one", 1, False, False),
        Received(f"{base}/q1/b", b"zero", 0, False, False),
        Received(f"{base}/q0", b"downgraded", 0, False, False),
        Received(f"{base}/q0", b"last", 0, False, False),
    ]
    assert pub.snapshot() == []  # a publisher without a subscription hears nothing


@pytest.mark.parametrize("combo", combos())
def test_retained_messages(gateway: GatewayHandle, clients: ClientFactory, combo: Combo) -> None:
    """One retained message per topic, delivered on subscribe only to the exact topic filter."""
    base = unique("retained")
    topic, marker = f"{base}/a", f"{base}/marker"
    pub = clients.connected(gateway, combo)
    assert pub.publish(topic, b"first", qos=1, retain=True) == 0
    assert pub.publish(topic, b"second", qos=1, retain=True) == 0  # replaces "first"
    assert pub.publish(marker, b"marker", qos=1, retain=True) == 0

    sub = clients.connected(gateway, combo)
    # Wildcard filters match both retained topics but must not receive either of them.
    assert sub.subscribe(f"{base}/+", 1) == [1]
    assert sub.subscribe(f"{base}/#", 1) == [1]
    assert sub.subscribe(topic, 1) == [1]
    sub.wait_message(topic)
    assert sub.snapshot() == [Received(topic, b"second", 1, True, False)]

    # A message published while subscribed is live traffic: its retain flag is cleared.
    assert pub.publish(topic, b"third", qos=1, retain=True) == 0
    live = sub.wait(lambda: [m for m in sub.messages if m.payload == b"third"], what="third")
    assert all(not m.retain for m in live)

    # A newcomer gets the latest retained message, retain flag set.
    late = clients.connected(gateway, combo)
    assert late.subscribe(topic, 1) == [1]
    assert late.wait_message(topic) == Received(topic, b"third", 1, True, False)

    # An empty retained payload deletes it: the next subscriber gets only the marker.
    assert pub.publish(topic, b"", qos=1, retain=True) == 0
    after = clients.connected(gateway, combo)
    assert after.subscribe(topic, 1) == [1]
    assert after.subscribe(marker, 1) == [1]
    after.wait_message(marker)
    assert after.snapshot() == [Received(marker, b"marker", 1, True, False)]


@pytest.mark.parametrize("combo", combos())
def test_retained_message_at_qos0(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    """A retained QoS 0 message comes at QoS 0, and a QoS 0 subscription caps a QoS 1 one."""
    base = unique("retained0")
    pub = clients.connected(gateway, combo)
    pub.publish(f"{base}/zero", b"z", qos=0, retain=True)
    assert pub.publish(f"{base}/one", b"o", qos=1, retain=True) == 0
    sub = clients.connected(gateway, combo)
    assert sub.subscribe(f"{base}/zero", 1) == [1]
    assert sub.subscribe(f"{base}/one", 0) == [0]
    sub.wait_message(f"{base}/one")
    assert sub.snapshot() == [
        Received(f"{base}/zero", b"z", 0, True, False),
        Received(f"{base}/one", b"o", 0, True, False),
    ]


@pytest.mark.parametrize("combo", combos())
def test_persistent_session_resumes_with_queued_qos1(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    """Offline QoS 1 messages wait in the session; QoS 0 ones are not stored (as in AWS)."""
    client_id, topic = unique("persistent"), unique("persistent-topic")
    _leave_persistent_session(gateway, clients, combo, client_id, topic)

    pub = clients.connected(gateway, combo)
    assert pub.publish(topic, b"queued-1", qos=1) == 0
    pub.publish(topic, b"not-stored", qos=0)
    assert pub.publish(topic, b"queued-2", qos=1) == 0

    again = clients(gateway, combo, client_id, **_session_kwargs(combo))
    assert again.connect() == (0, True)  # session present
    again.wait_message(topic, b"queued-2")
    # The QoS 0 message sat between the two in publish order, so it would have come first.
    assert [(m.payload, m.qos) for m in again.snapshot()] == [(b"queued-1", 1), (b"queued-2", 1)]

    # The resumed session still holds the subscription for live traffic.
    assert pub.publish(topic, b"live", qos=1) == 0
    assert again.wait_message(topic, b"live").qos == 1


@pytest.mark.parametrize("combo", combos())
def test_clean_session_discards_the_old_session(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    client_id, topic, sentinel = unique("clean"), unique("clean-topic"), unique("sentinel")
    _leave_persistent_session(gateway, clients, combo, client_id, topic)
    pub = clients.connected(gateway, combo)
    assert pub.publish(topic, b"queued", qos=1) == 0

    fresh = clients(gateway, combo, client_id, clean=True)
    assert fresh.connect() == (0, False)  # no session present
    assert fresh.subscribe(sentinel, 1) == [1]
    assert pub.publish(topic, b"after", qos=1) == 0
    assert pub.publish(sentinel, b"sentinel", qos=1) == 0
    fresh.wait_message(sentinel)
    # Neither the queued message nor the old subscription survived the clean start.
    assert [m.payload for m in fresh.snapshot()] == [b"sentinel"]

    # A clean session ends with its connection: a later resume finds nothing.
    fresh.disconnect()
    _wait_offline(gateway, client_id, count=2)
    later = clients(gateway, combo, client_id, **_session_kwargs(combo))
    assert later.connect() == (0, False)


@pytest.mark.parametrize("combo", combos())
def test_will_is_published_when_the_connection_drops(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    will_topic = unique("will")
    observer = clients.observer(gateway, will_topic)
    client = clients.connected(gateway, combo, will=Will(will_topic, b"gone", qos=1))
    assert observer.on_topic(will_topic) == []  # not before the connection ends
    client.drop()
    message = observer.wait_message(will_topic)
    assert (message.payload, message.qos, message.retain) == (b"gone", 1, False)


@pytest.mark.parametrize("combo", combos())
def test_no_will_after_a_clean_disconnect(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    will_topic = unique("will")
    observer = clients.observer(gateway, will_topic, "$aws/events/presence/disconnected/+")
    client = clients.connected(gateway, combo, will=Will(will_topic, b"gone", qos=1))
    client.disconnect()
    wait_event(observer, "disconnected", client.client_id)
    # The gateway publishes a will before the disconnected event; give it a moment anyway.
    time.sleep(0.3)
    assert observer.on_topic(will_topic) == []


@pytest.mark.parametrize("combo", combos(V5_COMBOS))
def test_disconnect_with_will_message_sends_the_will(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    """MQTT 5 DISCONNECT reason 0x04 asks the server to publish the will anyway."""
    will_topic = unique("will")
    observer = clients.observer(gateway, will_topic)
    client = clients.connected(gateway, combo, will=Will(will_topic, b"bye", qos=1))
    client.disconnect(reason_code=DISCONNECT_WITH_WILL)
    assert observer.wait_message(will_topic).payload == b"bye"


@pytest.mark.parametrize("combo", combos())
def test_takeover_by_the_same_client_id(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    """The newest connection for a client id wins; the old one is dropped."""
    client_id, topic = unique("twin"), unique("twin-topic")
    first = clients.connected(gateway, combo, client_id)
    second = clients(gateway, combo, client_id)
    assert second.connect() == (0, False)
    first.wait(lambda: first.disconnects, what="the takeover")
    wait_for(lambda: not first.connected)
    if combo.v5:
        assert first.disconnects == [(SESSION_TAKEN_OVER, True)]

    # The winner works normally and is not disturbed by the loser.
    assert second.subscribe(topic, 1) == [1]
    assert second.publish(topic, b"still here", qos=1) == 0
    assert second.wait_message(topic).payload == b"still here"
    assert second.connected
    assert second.disconnects == []


@pytest.mark.parametrize("combo", combos())
def test_keepalive_expiry_closes_a_silent_client(
    start_gateway: Callable[..., GatewayHandle], clients: ClientFactory, combo: Combo
) -> None:
    """No packet for 1.5 x keep-alive: the gateway closes the connection and sends the will."""
    gateway = start_gateway(limits=Limits(keepalive_min=1))
    will_topic = unique("will")
    observer = clients.observer(gateway, will_topic)
    client = clients.connected(
        gateway, combo, keepalive=1, will=Will(will_topic, b"timed out", qos=1)
    )
    # While paho pings every second the connection outlives 1.5 s.
    client.wait(lambda: client.received_packets.count("PINGRESP") >= 2, what="two PINGRESPs")
    assert client.connected
    assert client.disconnects == []
    assert observer.on_topic(will_topic) == []

    client.pause()  # silence: no more PINGREQs
    silent_since = time.monotonic()
    observer.wait_message(will_topic, timeout=5)
    assert time.monotonic() - silent_since <= 1.5 + 1.0
    if combo.v5:
        # paho reads what the gateway sent before closing: DISCONNECT 0x8D.
        client.resume()
        client.wait(lambda: client.disconnects, what="the DISCONNECT")
        assert client.disconnects[0] == (KEEP_ALIVE_TIMEOUT, True)


@pytest.mark.parametrize("combo", combos())
def test_qos2_publish_is_neither_acknowledged_nor_delivered(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    topic = unique("qos2")
    sub = clients.connected(gateway, combo)
    assert sub.subscribe(topic, 1) == [1]
    pub = clients.connected(gateway, combo)
    pub.publish(topic, b"exactly once", qos=2, wait=False)
    assert pub.publish(topic, b"at least once", qos=1) == 0
    sub.wait_message(topic, b"at least once")
    assert [m.payload for m in sub.snapshot()] == [b"at least once"]
    # A PUBREC would have come before the later PUBACK on the same connection.
    assert "PUBREC" not in pub.received_packets
    assert pub.connected


@pytest.mark.parametrize("combo", combos())
def test_qos2_subscribe_gets_no_suback(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    topic, sentinel = unique("qos2-filter"), unique("sentinel")
    client = clients.connected(gateway, combo)
    mid = client.subscribe_nowait(topic, 2)
    assert client.subscribe(sentinel, 1) == [1]
    assert mid not in client.subacks  # its SUBACK would have preceded the sentinel's
    assert client.received_packets.count("SUBACK") == 1

    # Nor did it subscribe anything.
    pub = clients.connected(gateway, TCP_V5)
    assert pub.publish(topic, b"unwanted", qos=1) == 0
    assert pub.publish(sentinel, b"wanted", qos=1) == 0
    client.wait_message(sentinel)
    assert [m.payload for m in client.snapshot()] == [b"wanted"]
    assert client.connected
