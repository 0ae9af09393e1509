"""Shared subscriptions (``$share/<ShareName>/<TopicFilter>``) as AWS IoT Core offers them.

Each message that matches a group's filter reaches exactly one member of the group, whatever
the member's protocol version and transport (paho 3.1.1 and 5, TCP and SigV4 WebSocket, and
the AWS IoT Device SDK), while plain subscribers and other groups each get their own copy.
Where a test proves that something did *not* arrive twice, every member also holds a plain
subscription to a sentinel topic published last: the gateway keeps per-connection order, so
a stray copy would have come before the sentinel.
"""

from __future__ import annotations

import json
import queue
import time
from collections import Counter

import awscrt.mqtt
import awscrt.mqtt5
import pytest

from infra.local.gateway.codec import SubscriptionOptions
from infra.local.gateway.session import (
    Delivery,
    Message,
    Session,
    session_from_record,
    session_record,
)
from infra.local.gateway.shared import ShareKey, parse_shared
from infra.local.gateway.topics import InvalidTopic
from tests.infra.local.gateway.test_awsiotsdk import (
    TIMEOUT,
    Mqtt5Events,
    admin_provider,
    mqtt3,
    running,
    wss_mqtt3,
    wss_mqtt5,
)
from tests.support.paho import (
    TCP_V5,
    TCP_V311,
    ClientFactory,
    Combo,
    MqttClient,
    combos,
    unique,
)
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for
from tests.support.wss_client import cut_connection

pytestmark = pytest.mark.timeout(60)

MESSAGES = 30
TOPIC_FILTER_INVALID = 0x8F


def _payloads(client: MqttClient, topic: str) -> list[bytes]:
    return [m.payload for m in client.on_topic(topic)]


def _publish_all(publisher: MqttClient, topic: str, count: int = MESSAGES) -> list[bytes]:
    sent = [f"m{n}".encode() for n in range(count)]
    for payload in sent:
        assert publisher.publish(topic, payload, qos=1) == 0
    return sent


def _sentinel_reaches(gateway_clients: list[MqttClient], publisher: MqttClient, topic: str):
    assert publisher.publish(topic, b"sentinel", qos=1) == 0
    for client in gateway_clients:
        client.wait(lambda c=client: _payloads(c, topic), what="the sentinel")


@pytest.mark.parametrize("combo", combos())
def test_each_message_reaches_exactly_one_member_of_each_group(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    base = unique("jobs")
    topic, sentinel = f"{base}/work", f"{base}/sentinel"
    workers = [clients.connected(gateway, combo) for _ in range(3)]
    auditor = clients.connected(gateway, combo)  # alone in a second group
    plain = clients.connected(gateway, combo)  # an ordinary subscription to the same topic
    for worker in workers:
        assert worker.subscribe(f"$share/workers/{topic}", 1) == [1]
    assert auditor.subscribe(f"$share/audit/{base}/+", 1) == [1]
    assert plain.subscribe(topic, 1) == [1]
    everyone = [*workers, auditor, plain]
    for client in everyone:
        assert client.subscribe(sentinel, 1) == [1]
    publisher = clients.connected(gateway, TCP_V5)

    sent = _publish_all(publisher, topic)
    plain.wait(lambda: len(_payloads(plain, topic)) == MESSAGES, what="every message")
    auditor.wait(lambda: len(_payloads(auditor, topic)) == MESSAGES, what="every message")
    wait_for(lambda: sum(len(_payloads(w, topic)) for w in workers) >= MESSAGES)
    _sentinel_reaches(everyone, publisher, sentinel)

    shared = Counter(p for w in workers for p in _payloads(w, topic))
    assert shared == Counter(sent)  # each message once in the group, none lost
    assert sorted(_payloads(plain, topic)) == sorted(sent)
    # Members are chosen at random: with 30 messages and 3 members, more than one gets some
    # (all 30 at one member has a chance of 3 in 3**30).
    assert sum(1 for w in workers if _payloads(w, topic)) > 1
    # Live messages carry no retain flag, and the topic is the message's, not the filter.
    assert {m.topic for w in workers for m in w.on_topic(topic)} == {topic}


@pytest.mark.parametrize("combo", combos([TCP_V311, TCP_V5]))
def test_malformed_shared_filters_are_refused_beside_a_valid_one(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    client = clients.connected(gateway, combo)
    refused = TOPIC_FILTER_INVALID if combo.v5 else 0x80
    base = unique("share")
    # (paho itself refuses to send the forms with a wildcard inside a level.)
    for bad in ("$share/only-a-name", "$share//t", "$share/+/t", "$share/#", "$share/g/"):
        assert client.subscribe(bad, 1) == [refused], bad
    assert client.subscribe(f"$share/g/{base}", 1) == [1]
    assert client.connected


def test_a_shared_subscription_gets_no_retained_message(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    """AWS sends a retained message on subscribe only to a filter equal to its topic, and a
    ``$share/...`` filter never is one."""
    topic = unique("retained") + "/state"
    publisher = clients.connected(gateway, TCP_V5)
    assert publisher.publish(topic, b"on", qos=1, retain=True) == 0
    member = clients.connected(gateway, TCP_V5)
    assert member.subscribe(f"$share/g/{topic}", 1) == [1]
    exact = clients.connected(gateway, TCP_V5)
    assert exact.subscribe(topic, 1) == [1]
    assert exact.wait_message(topic).retain  # the plain subscriber got the retained one
    assert publisher.publish(topic, b"live", qos=1) == 0
    member.wait(lambda: _payloads(member, topic), what="the live message")
    assert _payloads(member, topic) == [b"live"]  # nothing retained came before it


@pytest.mark.parametrize("persistent", [False, True], ids=["clean", "persistent"])
@pytest.mark.parametrize("combo", combos([TCP_V311, TCP_V5]))
def test_a_qos1_message_of_a_member_that_drops_goes_to_another_member(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo, persistent: bool
) -> None:
    """Whether the member's session ends with it or waits for it, the message it did not
    acknowledge goes to a member that is there (MQTT 5 4.8.2 allows it at once)."""
    topic = unique("handover") + "/work"
    session: dict[str, object] = {}
    if persistent:
        session = {"clean": False, "session_expiry": 300 if combo.v5 else None}
    first = clients.connected(gateway, combo, **session)
    assert first.subscribe(f"$share/g/{topic}", 1) == [1]
    first.pause()  # reads nothing from here on, so acknowledges nothing
    publisher = clients.connected(gateway, TCP_V5)
    assert publisher.publish(topic, b"job", qos=1) == 0

    def unacknowledged() -> int:
        session = gateway.gateway.broker.sessions.get(first.client_id)
        return 0 if session is None else len(session.inflight)

    wait_for(lambda: gateway.call(unacknowledged) == 1)  # sent to the only member
    second = clients.connected(gateway, combo)
    assert second.subscribe(f"$share/g/{topic}", 1) == [1]
    assert second.on_topic(topic) == []  # a later member does not get it while `first` lives
    cut_connection(first.paho)  # gone without a PUBACK
    message = second.wait_message(topic)
    assert (message.payload, message.qos) == (b"job", 1)


def test_leaving_the_group_stops_delivery_to_that_member(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    base = unique("leave")
    topic, sentinel = f"{base}/work", f"{base}/sentinel"
    leaver, stayer = (clients.connected(gateway, TCP_V5) for _ in range(2))
    for member in (leaver, stayer):
        assert member.subscribe(f"$share/g/{topic}", 1) == [1]
        assert member.subscribe(sentinel, 1) == [1]
    leaver.unsubscribe(f"$share/g/{topic}")
    publisher = clients.connected(gateway, TCP_V5)
    sent = _publish_all(publisher, topic, 10)
    stayer.wait(lambda: len(_payloads(stayer, topic)) == 10, what="every message")
    _sentinel_reaches([leaver, stayer], publisher, sentinel)
    assert _payloads(stayer, topic) == sent
    assert _payloads(leaver, topic) == []


def test_awsiotsdk_mqtt5_clients_share_a_subscription(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    """Two AWS IoT Device SDK MQTT 5 clients over SigV4 WebSocket in one group."""
    topic = unique("sdk-share") + "/work"
    qos1 = awscrt.mqtt5.QoS.AT_LEAST_ONCE
    members = [(unique("sdk"), Mqtt5Events()) for _ in range(2)]
    sdk = [wss_mqtt5(gateway, cid, admin_provider(), events) for cid, events in members]
    with running(sdk[0], members[0][1]), running(sdk[1], members[1][1]):
        for client, (_, events) in zip(sdk, members, strict=True):
            events.connected.result(TIMEOUT)
            suback = client.subscribe(
                awscrt.mqtt5.SubscribePacket(
                    subscriptions=[
                        awscrt.mqtt5.Subscription(topic_filter=f"$share/sdk/{topic}", qos=qos1)
                    ]
                )
            ).result(TIMEOUT)
            assert suback.reason_codes == [awscrt.mqtt5.SubackReasonCode.GRANTED_QOS_1]
        publisher = clients.connected(gateway, TCP_V311)
        sent = _publish_all(publisher, topic, 20)
        got: list[bytes] = []

        def all_arrived() -> bool:
            for _, events in members:
                while True:
                    try:
                        got.append(events.messages.get_nowait().payload)
                    except queue.Empty:
                        break
            return len(got) >= len(sent)

        wait_for(all_arrived)
        assert Counter(got) == Counter(sent)
        # Nothing more is on its way: a sentinel on a plain subscription comes next.
        for client in sdk:
            client.subscribe(
                awscrt.mqtt5.SubscribePacket(
                    subscriptions=[awscrt.mqtt5.Subscription(topic_filter=f"{topic}/end", qos=qos1)]
                )
            ).result(TIMEOUT)
        assert publisher.publish(f"{topic}/end", b"end", qos=1) == 0
        for _, events in members:
            assert events.messages.get(timeout=TIMEOUT).payload == b"end"


@pytest.mark.parametrize(
    ("topic_filter", "key"),
    [
        ("$share/g/t", ShareKey("g", "t")),
        ("$share/workers/jobs/+/state", ShareKey("workers", "jobs/+/state")),
        ("$share/g/#", ShareKey("g", "#")),
        ("$share/g/$aws/events/presence/+/+", ShareKey("g", "$aws/events/presence/+/+")),
    ],
)
def test_shared_filters_name_their_group(topic_filter: str, key: ShareKey) -> None:
    assert parse_shared(topic_filter) == key
    assert key.subscription == topic_filter


@pytest.mark.parametrize(
    "topic_filter",
    ["$share/", "$share/g", "$share//t", "$share/g+/t", "$share/+/t", "$share/g#/t", "$share/g/a#"],
)
def test_malformed_shared_filters(topic_filter: str) -> None:
    with pytest.raises(InvalidTopic):
        parse_shared(topic_filter)


def test_the_group_filter_keeps_the_topic_limits() -> None:
    """The ``$share/<name>/`` prefix does not count, the filter after it does."""
    parse_shared("$share/g/a/b/c/d/e/f/g/h", 256, 7)  # 7 slashes in the filter
    with pytest.raises(InvalidTopic):
        parse_shared("$share/g/a/b/c/d/e/f/g/h/i", 256, 7)


def test_a_queued_shared_message_keeps_its_group_across_a_clean_restart() -> None:
    """A persistent session written at a clean stop and read back still knows which group a
    queued message came through, so another member can still take it later."""
    session = Session("member", max_queued=10)
    session.expiry_interval = 300
    session.expires_at = time.time() + 300
    session.subscriptions["$share/g/t"] = SubscriptionOptions(qos=1)
    session.enqueue(Delivery(Message("t", b"job", 1), 1, False, ShareKey("g", "t")))
    session.enqueue(Delivery(Message("t", b"plain", 1), 1, False))
    record = json.loads(json.dumps(session_record(session, time.time())))
    restored = session_from_record(record, 10, time.time())
    assert restored is not None
    assert [(d.message.payload, d.share) for d in restored.pending] == [
        (b"job", ShareKey("g", "t")),
        (b"plain", None),
    ]


def test_awsiotsdk_mqtt3_connections_share_a_subscription(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    """Two AWS IoT Device SDK MQTT 3.1.1 connections over SigV4 WebSocket in one group; each
    collects what it receives with its connection-wide ``on_message`` callback."""
    topic = unique("sdk3-share") + "/work"
    received: queue.Queue[bytes] = queue.Queue()
    connections = [wss_mqtt3(gateway, unique("sdk3"), admin_provider()) for _ in range(2)]
    for connection in connections:
        connection.on_message(lambda topic, payload, **_: received.put(payload))
    with mqtt3(connections[0]) as first, mqtt3(connections[1]) as second:
        for connection in (first, second):
            subscribed, _ = connection.subscribe(
                f"$share/sdk3/{topic}", awscrt.mqtt.QoS.AT_LEAST_ONCE, None
            )
            assert subscribed.result(TIMEOUT)["qos"] == awscrt.mqtt.QoS.AT_LEAST_ONCE
        publisher = clients.connected(gateway, TCP_V5)
        sent = _publish_all(publisher, topic, 20)
        got = [received.get(timeout=TIMEOUT) for _ in sent]
        assert Counter(got) == Counter(sent)
        # Nothing more is on its way: a sentinel on a plain subscription comes next.
        for connection in (first, second):
            subscribed, _ = connection.subscribe(
                f"{topic}/end", awscrt.mqtt.QoS.AT_LEAST_ONCE, None
            )
            subscribed.result(TIMEOUT)
        assert publisher.publish(f"{topic}/end", b"end", qos=1) == 0
        assert [received.get(timeout=TIMEOUT) for _ in range(2)] == [b"end", b"end"]
