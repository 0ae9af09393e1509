"""``#`` and the parent level, on both sides, as AWS IoT Core documents it.

AWS: "a subscription to the topic ``sensor/#`` receives messages published to the topics
``sensor/``, ``sensor/temperature``, ``sensor/temperature/room1``, but not messages published
to ``sensor``" (https://docs.aws.amazon.com/iot/latest/developerguide/mqtt.html#mqtt-differences),
where the MQTT specification's non-normative note says ``sensor/#`` matches ``sensor`` too.
"""

from __future__ import annotations

import pytest

from tests.support.paho import ClientFactory, Combo, combos, unique
from tests.support.stack import GatewayHandle

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("combo", combos())
def test_hash_matches_every_level_below_but_not_the_parent(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    sensor = unique("sensor")
    below = clients.connected(gateway, combo)
    assert below.subscribe(f"{sensor}/#", 1) == [1]
    parent = clients.connected(gateway, combo)  # the other side: the parent's own filter
    assert parent.subscribe(sensor, 1) == [1]
    publisher = clients.connected(gateway, combo)
    topics = [sensor, f"{sensor}/", f"{sensor}/temperature", f"{sensor}/temperature/room1"]
    for topic in topics:
        assert publisher.publish(topic, topic.encode(), qos=1) == 0
    sentinel = f"{sensor}/sentinel"
    assert publisher.publish(sentinel, b"end", qos=1) == 0
    below.wait_message(sentinel)
    # One connection keeps publish order, so the parent would have come before the sentinel.
    assert [m.topic for m in below.snapshot()] == [*topics[1:], sentinel]
    assert [m.payload for m in parent.wait(lambda: parent.snapshot())] == [sensor.encode()]


@pytest.mark.parametrize("combo", combos())
def test_hash_after_a_plus_needs_a_level_of_its_own(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    prefix = unique("top")
    client = clients.connected(gateway, combo)
    assert client.subscribe(f"{prefix}/+/#", 1) == [1]
    publisher = clients.connected(gateway, combo)
    for topic in (f"{prefix}/a", f"{prefix}/a/b"):
        assert publisher.publish(topic, b"x", qos=1) == 0
    client.wait_message(f"{prefix}/a/b")
    assert [m.topic for m in client.snapshot()] == [f"{prefix}/a/b"]
