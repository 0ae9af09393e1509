"""Lifecycle events exactly as AWS IoT Core publishes them, seen by an admin subscriber.

An admin MQTT client subscribed to ``$aws/events/#`` watches other clients connect,
subscribe, unsubscribe, disconnect (for each reason AWS names) and fail to connect, and
checks each event's exact set of keys and values. To prove an event did *not* happen, a
sentinel client connects and disconnects afterwards: once its ``disconnected`` event is in,
anything earlier would have been too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from infra.local.gateway import Credential, Limits, Principal
from tests.support.paho import (
    ALL_COMBOS,
    TCP_V5,
    TCP_V311,
    ClientFactory,
    Combo,
    MqttClient,
    combos,
    events,
    unique,
    wait_event,
)
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

COMMON = {"clientId", "timestamp", "eventType", "sessionIdentifier", "principalIdentifier"}
CONNECTED_KEYS = COMMON | {"ipAddress", "versionNumber"}
DISCONNECTED_KEYS = COMMON | {"clientInitiatedDisconnect", "disconnectReason", "versionNumber"}
SUBSCRIPTION_KEYS = COMMON | {"topics"}
CONNECT_FAILED_KEYS = COMMON | {"connectFailureReason", "ipAddress"}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
ADMIN = "test"
DENIED_KEY, DENIED_SECRET = "AKIDLIFECYCLEDENIED", "denied-secret"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _flush(gateway: GatewayHandle, clients: ClientFactory, observer: MqttClient) -> None:
    """Connect and disconnect a sentinel client and wait for its last event."""
    sentinel = clients.connected(gateway, TCP_V5, unique("sentinel"))
    sentinel.disconnect()
    wait_event(observer, "disconnected", sentinel.client_id)


def _only(found: list[dict], event_type: str) -> dict:
    matching = [e for e in found if e["eventType"] == event_type]
    assert len(matching) == 1, (event_type, found)
    return matching[0]


@pytest.mark.parametrize("combo", combos())
def test_connect_subscribe_unsubscribe_disconnect(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/#")
    before = _now_ms()
    client = clients.connected(gateway, combo)
    cid = client.client_id
    assert client.subscribe_many([("room/a", 1), ("room/+/typing", 0)]) == [1, 0]
    client.unsubscribe("room/a")
    client.disconnect()
    wait_event(observer, "disconnected", cid)
    after = _now_ms()

    found = events(observer, client_id=cid)
    assert len(found) == 4, found
    connected = _only(found, "connected")
    subscribed = _only(found, "subscribed")
    unsubscribed = _only(found, "unsubscribed")
    disconnected = _only(found, "disconnected")

    assert set(connected) == CONNECTED_KEYS
    assert set(subscribed) == SUBSCRIPTION_KEYS
    assert set(unsubscribed) == SUBSCRIPTION_KEYS
    assert set(disconnected) == DISCONNECTED_KEYS
    for event in found:
        assert event["clientId"] == cid
        assert event["principalIdentifier"] == ADMIN
        assert type(event["timestamp"]) is int
        assert before <= event["timestamp"] <= after
        # One connection, one session identifier, on every event it causes.
        assert event["sessionIdentifier"] == connected["sessionIdentifier"]
    assert UUID.match(connected["sessionIdentifier"])
    assert connected["ipAddress"] == "127.0.0.1"
    assert type(connected["versionNumber"]) is int
    assert disconnected["versionNumber"] == connected["versionNumber"]
    assert subscribed["topics"] == ["room/a", "room/+/typing"]
    assert unsubscribed["topics"] == ["room/a"]
    assert disconnected["clientInitiatedDisconnect"] is True
    assert disconnected["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"

    # The events arrive on their per-client topics.
    topics = {m.topic for m in observer.snapshot() if m.topic.endswith("/" + cid)}
    assert topics == {
        f"$aws/events/presence/connected/{cid}",
        f"$aws/events/subscriptions/subscribed/{cid}",
        f"$aws/events/subscriptions/unsubscribed/{cid}",
        f"$aws/events/presence/disconnected/{cid}",
    }


@pytest.mark.parametrize("combo", combos([TCP_V311, TCP_V5]))
def test_version_number_and_session_identifier_per_connection(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/presence/#")
    cid = unique("versioned")
    for count in (1, 2):
        client = clients.connected(gateway, combo, cid)
        client.disconnect()
        wait_event(observer, "disconnected", cid, count=count)
    connected = events(observer, "connected", cid)
    disconnected = events(observer, "disconnected", cid)
    assert len(connected) == len(disconnected) == 2
    first, second = connected
    # Connect and disconnect of one connection share the version and the session id.
    for conn, disc in zip(connected, disconnected, strict=True):
        assert disc["versionNumber"] == conn["versionNumber"]
        assert disc["sessionIdentifier"] == conn["sessionIdentifier"]
    assert second["versionNumber"] == first["versionNumber"] + 1
    assert second["sessionIdentifier"] != first["sessionIdentifier"]


@pytest.mark.parametrize("combo", combos())
def test_dropped_connection_is_connection_lost(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/presence/#")
    client = clients.connected(gateway, combo)
    client.drop()
    (event,) = wait_event(observer, "disconnected", client.client_id)
    assert set(event) == DISCONNECTED_KEYS
    assert event["disconnectReason"] == "CONNECTION_LOST"
    assert event["clientInitiatedDisconnect"] is False


@pytest.mark.parametrize("combo", combos())
def test_takeover_is_duplicate_clientid(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/presence/#")
    cid = unique("twin")
    first = clients.connected(gateway, combo, cid)
    (old,) = wait_event(observer, "connected", cid)
    second = clients.connected(gateway, combo, cid)
    (gone,) = wait_event(observer, "disconnected", cid)
    _, new = wait_event(observer, "connected", cid, count=2)
    first.wait(lambda: first.disconnects, what="the takeover")

    assert set(gone) == DISCONNECTED_KEYS
    assert gone["disconnectReason"] == "DUPLICATE_CLIENTID"
    assert gone["clientInitiatedDisconnect"] is False
    # The event belongs to the old connection, not the one that replaced it.
    assert gone["sessionIdentifier"] == old["sessionIdentifier"]
    assert gone["versionNumber"] == old["versionNumber"]
    assert new["sessionIdentifier"] != old["sessionIdentifier"]
    assert new["versionNumber"] == old["versionNumber"] + 1

    _flush(gateway, clients, observer)
    assert len(events(observer, "disconnected", cid)) == 1  # the winner is still connected
    assert second.connected


@pytest.mark.parametrize("combo", combos([TCP_V311, TCP_V5]))
def test_keepalive_timeout_is_reported(
    start_gateway: Callable[..., GatewayHandle], clients: ClientFactory, combo: Combo
) -> None:
    gateway = start_gateway(limits=Limits(keepalive_min=1))
    observer = clients.observer(gateway, "$aws/events/presence/#")
    client = clients.connected(gateway, combo, keepalive=1)
    client.pause()
    (event,) = wait_event(observer, "disconnected", client.client_id, timeout=5)
    assert set(event) == DISCONNECTED_KEYS
    assert event["disconnectReason"] == "MQTT_KEEP_ALIVE_TIMEOUT"
    assert event["clientInitiatedDisconnect"] is False


def test_wildcard_client_ids_get_no_events(gateway: GatewayHandle, clients: ClientFactory) -> None:
    observer = clients.observer(gateway, "$aws/events/#")
    broker = gateway.gateway.broker
    quiet = [f"{unique('plus')}+x", f"{unique('hash')}#x"]
    for cid in quiet:
        client = clients.connected(gateway, TCP_V5, cid)
        assert client.subscribe("room/a", 1) == [1]
        client.unsubscribe("room/a")
        client.disconnect()
        wait_for(lambda cid=cid: gateway.call(lambda: cid not in broker.connections))
    _flush(gateway, clients, observer)
    for cid in quiet:
        assert events(observer, client_id=cid) == []
        assert not [e for e in gateway.tapped if e.topic.endswith("/" + cid)]


@pytest.mark.parametrize("combo", combos([TCP_V311, TCP_V5]))
def test_wrong_password_is_connect_failed(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/#")
    client = clients(gateway, combo, password="wrong")
    reason, _ = client.connect(expect_success=False)
    assert reason == 0x86  # bad user name or password (MQTT 3.1.1 CONNACK 4, as paho maps it)
    (event,) = wait_event(observer, "connect_failed", client.client_id)
    assert set(event) == CONNECT_FAILED_KEYS
    assert event["clientId"] == client.client_id
    assert event["ipAddress"] == "127.0.0.1"
    assert UUID.match(event["sessionIdentifier"])
    # AWS documents only AUTHORIZATION_FAILED; this local listener also names bad passwords.
    assert event["connectFailureReason"] == "AUTHORIZATION_FAILED"
    _flush(gateway, clients, observer)
    assert [e["eventType"] for e in events(observer, client_id=client.client_id)] == [
        "connect_failed"
    ]


@pytest.mark.parametrize("combo", combos())
def test_principal_not_allowed_is_connect_failed(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    """An authenticated principal that may not connect: AUTHORIZATION_FAILED, no session."""
    principal = Principal("iam", DENIED_KEY)
    gateway.call(lambda: gateway.credentials.add(Credential(DENIED_KEY, DENIED_SECRET, principal)))
    observer = clients.observer(gateway, "$aws/events/#")
    client = clients(
        gateway,
        combo,
        username=DENIED_KEY,
        password=DENIED_SECRET,
        access_key=DENIED_KEY,
        secret=DENIED_SECRET,
    )
    before = _now_ms()
    reason, _ = client.connect(expect_success=False)
    # MQTT 5: CONNACK 0x87 not authorized; MQTT 3.1.1: AWS just closes the connection.
    assert reason == (0x87 if combo.v5 else -1)
    (event,) = wait_event(observer, "connect_failed", client.client_id)
    assert set(event) == CONNECT_FAILED_KEYS
    assert event["eventType"] == "connect_failed"
    assert event["connectFailureReason"] == "AUTHORIZATION_FAILED"
    assert event["principalIdentifier"] == DENIED_KEY
    assert event["ipAddress"] == "127.0.0.1"
    assert before <= event["timestamp"] <= _now_ms()
    _flush(gateway, clients, observer)
    assert [e["eventType"] for e in events(observer, client_id=client.client_id)] == [
        "connect_failed"
    ]


@pytest.mark.parametrize("combo", combos([c for c in ALL_COMBOS if c.v5]))
def test_publishing_to_aws_events_is_refused_mqtt5(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/#")
    client = clients.connected(gateway, combo)
    forged = f"$aws/events/presence/connected/{unique('forged')}"
    assert client.publish(forged, b'{"eventType":"connected"}', qos=1) == 0x87
    assert client.connected
    _flush(gateway, clients, observer)
    assert [m for m in observer.snapshot() if m.topic == forged] == []
    # The connection is still usable.
    topic = unique("after")
    assert client.subscribe(topic, 1) == [1]
    assert client.publish(topic, b"ok", qos=1) == 0
    client.wait_message(topic, b"ok")


@pytest.mark.parametrize("combo", combos([c for c in ALL_COMBOS if not c.v5]))
def test_publishing_to_aws_events_closes_mqtt311(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    observer = clients.observer(gateway, "$aws/events/#")
    client = clients.connected(gateway, combo)
    forged = f"$aws/events/presence/connected/{unique('forged')}"
    client.publish(forged, b'{"eventType":"connected"}', qos=1, wait=False)
    client.wait(lambda: client.disconnects, what="the connection to close")
    assert client.pubacks == {}
    (event,) = wait_event(observer, "disconnected", client.client_id)
    assert event["clientInitiatedDisconnect"] is False
    assert [m for m in observer.snapshot() if m.topic == forged] == []


def test_version_number_keeps_growing_across_gateway_restarts(
    start_gateway: Callable[..., GatewayHandle],
) -> None:
    """Presence ordering relies on versionNumber: a restarted gateway must not start again
    below the versions it already published for a client id."""
    import json

    import paho.mqtt.client as mqtt

    def connect_once(handle: GatewayHandle) -> int:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="restarted")
        client.username_pw_set(ADMIN, "test")
        client.connect(handle.host, handle.mqtt_port)
        client.loop_start()
        try:
            event = wait_for(
                lambda: next(
                    (e for e in handle.tapped if e.topic.endswith("connected/restarted")), None
                )
            )
        finally:
            client.disconnect()
            client.loop_stop()
        return json.loads(event.payload)["versionNumber"]

    before = connect_once(start_gateway())
    # A gateway started later stands for the restarted one (same client id, fresh process state).
    assert connect_once(start_gateway()) > before
