"""paho-mqtt clients wired to a test gateway, for every (transport, protocol) pair.

The gateway tests drive the broker only with real, independent clients. This module builds a
paho client for plain TCP (username/password) or SigV4-signed WebSocket over TLS, runs its
network loop in paho's own thread with automatic reconnects turned off (a reconnect would
hide exactly the disconnects the tests look for), and records everything the client sees
(CONNACKs, messages, acknowledgements, disconnects) under one condition variable so tests
can wait for events instead of sleeping.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.wss_client import cut_connection, sign_websocket

if TYPE_CHECKING:
    from tests.support.stack import GatewayHandle

ADMIN_KEY = "test"
ADMIN_SECRET = "test"  # the documented local admin, as in LocalStack
REGION = "us-east-1"
EVENTS_PREFIX = "$aws/events/"


class Combo(NamedTuple):
    """One way of reaching the gateway: ``transport`` is ``tcp`` or ``wss``."""

    transport: str
    protocol: int  # mqtt.MQTTv311 or mqtt.MQTTv5

    @property
    def v5(self) -> bool:
        return self.protocol == mqtt.MQTTv5

    @property
    def id(self) -> str:
        return f"{self.transport}-{'v5' if self.v5 else 'v311'}"


TCP_V311 = Combo("tcp", mqtt.MQTTv311)
TCP_V5 = Combo("tcp", mqtt.MQTTv5)
WSS_V311 = Combo("wss", mqtt.MQTTv311)
WSS_V5 = Combo("wss", mqtt.MQTTv5)
ALL_COMBOS = [TCP_V311, TCP_V5, WSS_V311, WSS_V5]
V5_COMBOS = [TCP_V5, WSS_V5]


def combos(items: list[Combo] | None = None) -> list[Any]:
    """``pytest.param`` objects with readable ids (``tcp-v311`` ...) for parametrize."""
    return [pytest.param(c, id=c.id) for c in (items or ALL_COMBOS)]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    delay: int | None = None  # MQTT 5 Will Delay Interval, seconds


class ConnectFailed(AssertionError):
    """The CONNECT did not end in a successful CONNACK."""


class MqttClient:
    """A paho client for one (transport, protocol) pair, with its traffic recorded."""

    def __init__(
        self,
        gateway: GatewayHandle,
        combo: Combo,
        client_id: str | None = None,
        *,
        clean: bool = True,
        session_expiry: int | None = None,
        keepalive: int = 60,
        will: Will | None = None,
        username: str | None = ADMIN_KEY,
        password: str | None = ADMIN_SECRET,
        access_key: str = ADMIN_KEY,
        secret: str = ADMIN_SECRET,
    ) -> None:
        self.gateway = gateway
        self.combo = combo
        self.client_id = client_id or unique("c")
        self.clean = clean
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self._cond = threading.Condition()
        self.connacks: list[tuple[int, bool]] = []  # (reason code, session present)
        self.messages: list[Received] = []
        self.subacks: dict[int, list[int]] = {}
        self.unsubacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self.disconnects: list[tuple[int, bool]] = []  # (reason code, DISCONNECT from server)
        self.received_packets: list[str] = []  # packet names paho logged as received
        self._paused = False
        self._dropped = False

        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": self.client_id,
            "protocol": combo.protocol,
            "transport": "websockets" if combo.transport == "wss" else "tcp",
            "reconnect_on_failure": False,
        }
        if not combo.v5:
            kwargs["clean_session"] = clean
        client = mqtt.Client(**kwargs)
        if combo.transport == "wss":
            sign_websocket(
                client, gateway.ca_file, f"{gateway.host}:{gateway.wss_port}", access_key, secret
            )
        elif username is not None:
            client.username_pw_set(username, password)
        if will is not None:
            will_props = None
            if will.delay is not None:
                will_props = Properties(PacketTypes.WILLMESSAGE)
                will_props.WillDelayInterval = will.delay
            client.will_set(will.topic, will.payload, will.qos, will.retain, will_props)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        client.on_log = self._on_log
        self.paho = client

    # ------------------------------------------------------------------ callbacks (loop thread)

    def _record(self, fn: Callable[[], None]) -> None:
        with self._cond:
            fn()
            self._cond.notify_all()

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._record(lambda: self.connacks.append((reason_code.value, flags.session_present)))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        item = Received(
            message.topic, bytes(message.payload), message.qos, bool(message.retain), message.dup
        )
        self._record(lambda: self.messages.append(item))

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        self._record(lambda: self.subacks.__setitem__(mid, [rc.value for rc in reason_codes]))

    def _on_unsubscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, properties: Any
    ) -> None:
        codes = [rc.value for rc in reason_codes] if isinstance(reason_codes, list) else []
        self._record(lambda: self.unsubacks.__setitem__(mid, codes))

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        self._record(lambda: self.pubacks.__setitem__(mid, reason_code.value))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        entry = (reason_code.value, flags.is_disconnect_packet_from_server)
        self._record(lambda: self.disconnects.append(entry))

    def _on_log(self, client: Any, userdata: Any, level: int, buf: str) -> None:
        if buf.startswith("Received "):
            name = buf.split()[1]
            self._record(lambda: self.received_packets.append(name))

    # ------------------------------------------------------------------ waiting

    def wait(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
        """Wait until ``predicate()`` (evaluated under the lock) is truthy, or fail."""
        with self._cond:
            value = self._cond.wait_for(predicate, timeout)
        if not value:
            raise AssertionError(f"{self.client_id}: timed out after {timeout}s waiting for {what}")
        return value

    def snapshot(self) -> list[Received]:
        with self._cond:
            return list(self.messages)

    def on_topic(self, topic: str) -> list[Received]:
        return [m for m in self.snapshot() if m.topic == topic]

    def wait_message(
        self, topic: str, payload: bytes | None = None, timeout: float = 5.0
    ) -> Received:
        def found() -> Received | None:
            for m in self.messages:
                if m.topic == topic and (payload is None or m.payload == payload):
                    return m
            return None

        return self.wait(found, timeout, f"a message on {topic!r}")

    @property
    def connected(self) -> bool:
        # paho leaves its state at "connected" after a server DISCONNECT; the socket tells.
        return self.paho.is_connected() and self.paho.socket() is not None

    # ------------------------------------------------------------------ actions

    def connect(self, *, expect_success: bool = True, timeout: float = 5.0) -> tuple[int, bool]:
        """CONNECT and wait for the outcome: (reason code, session present).

        A refusal without CONNACK (AWS closes an unauthorised MQTT 3.1.1 CONNECT) comes back
        as ``(-1, False)``.
        """
        kwargs: dict[str, Any] = {"keepalive": self.keepalive}
        if self.combo.v5:
            kwargs["clean_start"] = self.clean
            if self.session_expiry is not None:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.session_expiry
                kwargs["properties"] = props
        port = self.gateway.wss_port if self.combo.transport == "wss" else self.gateway.mqtt_port
        before, gone = len(self.connacks), len(self.disconnects)
        self.paho.connect(self.gateway.host, port, **kwargs)
        self.paho.loop_start()
        self.wait(
            lambda: len(self.connacks) > before or len(self.disconnects) > gone,
            timeout,
            "CONNACK or disconnect",
        )
        with self._cond:
            result = self.connacks[before] if len(self.connacks) > before else (-1, False)
        if expect_success and result[0] != 0:
            raise ConnectFailed(f"{self.client_id}: CONNECT refused with {result}")
        return result

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> list[int]:
        """SUBSCRIBE and wait for the SUBACK's reason codes."""
        mid = self.subscribe_nowait(topic_filter, qos)
        return self.wait(lambda: self.subacks.get(mid), timeout, f"SUBACK for {topic_filter!r}")

    def subscribe_many(self, filters: list[tuple[str, int]], timeout: float = 5.0) -> list[int]:
        """One SUBSCRIBE carrying several filters; returns the SUBACK's reason codes."""
        rc, mid = self.paho.subscribe(filters)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, rc
        return self.wait(lambda: self.subacks.get(mid), timeout, f"SUBACK for {filters!r}")

    def subscribe_nowait(self, topic_filter: str, qos: int = 1) -> int:
        rc, mid = self.paho.subscribe(topic_filter, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, rc
        return mid

    def unsubscribe(self, topic_filter: str, timeout: float = 5.0) -> None:
        rc, mid = self.paho.unsubscribe(topic_filter)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, rc
        self.wait(lambda: mid in self.unsubacks, timeout, f"UNSUBACK for {topic_filter!r}")

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        *,
        wait: bool = True,
        timeout: float = 5.0,
    ) -> int:
        """PUBLISH; at QoS 1 with ``wait`` returns the PUBACK's reason code, else the mid.

        paho reports a QoS 0 publish as done once written; that is waited for too, so the
        bytes are on the wire before the test goes on.
        """
        info = self.paho.publish(topic, payload, qos=qos, retain=retain)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        if wait and qos < 2:
            self.wait(lambda: info.mid in self.pubacks, timeout, f"PUBACK for {topic!r}")
            return self.pubacks[info.mid]
        return info.mid

    def disconnect(self, reason_code: int | None = None, timeout: float = 5.0) -> None:
        """Send DISCONNECT (MQTT 5: with ``reason_code``) and wait for the socket to close."""
        before = len(self.disconnects)
        rc = None
        if reason_code is not None:
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reason_code)
        self.paho.disconnect(reasoncode=rc)
        self.wait(lambda: len(self.disconnects) > before, timeout, "the disconnect")
        self.paho.loop_stop()

    def drop(self, timeout: float = 5.0) -> None:
        """Cut the TCP connection without an MQTT DISCONNECT (or WebSocket close frame).

        ``shutdown`` on the raw descriptor (below TLS and WebSocket framing) makes the
        gateway see the peer vanish, and paho's own loop sees the dead socket and stops; it
        cannot send anything afterwards.
        """
        self._dropped = True
        had_socket = cut_connection(self.paho)
        assert had_socket, "not connected"
        self.wait(lambda: self.disconnects, timeout, "paho to notice the dropped socket")
        self.paho.loop_stop()

    def pause(self) -> None:
        """Stop the network loop: the client goes silent (no PINGREQ) but keeps its socket."""
        self.paho.loop_stop()
        self._paused = True

    def resume(self) -> None:
        """Run the network loop again, e.g. to read what the gateway sent while paused."""
        self._paused = False
        self.paho.loop_start()

    def close(self) -> None:
        """Best-effort cleanup at the end of a test."""
        try:
            if self.paho.is_connected() and not self._paused and not self._dropped:
                self.paho.disconnect()
                self.wait(lambda: self.disconnects, 2.0, "the disconnect")
        except Exception:  # cleanup must not mask the test's own outcome
            pass
        with contextlib.suppress(OSError):
            cut_connection(self.paho)
        # Not loop_stop(): it waits forever while an unacknowledged (QoS 2) publish is queued.
        thread = self.paho._thread
        if thread is not None:
            thread.join(3.0)


class ClientFactory:
    """Creates clients for one test and closes every one of them afterwards."""

    def __init__(self) -> None:
        self.clients: list[MqttClient] = []

    def __call__(
        self, gateway: GatewayHandle, combo: Combo, client_id: str | None = None, **kw: Any
    ) -> MqttClient:
        client = MqttClient(gateway, combo, client_id, **kw)
        self.clients.append(client)
        return client

    def connected(
        self, gateway: GatewayHandle, combo: Combo, client_id: str | None = None, **kw: Any
    ) -> MqttClient:
        client = self(gateway, combo, client_id, **kw)
        client.connect()
        return client

    def observer(self, gateway: GatewayHandle, *filters: str) -> MqttClient:
        """An admin MQTT 5 client over TCP subscribed (QoS 1) to ``filters``."""
        client = self.connected(gateway, TCP_V5, unique("observer"))
        for topic_filter in filters:
            assert client.subscribe(topic_filter, 1) == [1]
        return client

    def close_all(self) -> None:
        for client in self.clients:
            client.close()


def factory_fixture() -> Iterator[ClientFactory]:
    factory = ClientFactory()
    try:
        yield factory
    finally:
        factory.close_all()


def events(
    client: MqttClient, event_type: str | None = None, client_id: str | None = None
) -> list[dict]:
    """Lifecycle event bodies ``client`` received, optionally for one type and client id."""
    out = []
    for m in client.snapshot():
        if not m.topic.startswith(EVENTS_PREFIX):
            continue
        body = m.json()
        if event_type is not None and body.get("eventType") != event_type:
            continue
        if client_id is not None and body.get("clientId") != client_id:
            continue
        out.append(body)
    return out


def wait_event(
    client: MqttClient, event_type: str, client_id: str, timeout: float = 5.0, count: int = 1
) -> list[dict]:
    """Wait until ``client`` has received ``count`` events of a type for a client id."""
    topic_suffix = f"/{event_type}/{client_id}"

    def enough() -> list[dict] | None:
        found = [
            m.json()
            for m in client.messages
            if m.topic.startswith(EVENTS_PREFIX) and m.topic.endswith(topic_suffix)
        ]
        return found if len(found) >= count else None

    return client.wait(enough, timeout, f"{count} {event_type} event(s) for {client_id!r}")


__all__ = [
    "ALL_COMBOS",
    "TCP_V5",
    "TCP_V311",
    "V5_COMBOS",
    "WSS_V5",
    "WSS_V311",
    "ClientFactory",
    "Combo",
    "ConnectFailed",
    "MqttClient",
    "Received",
    "Will",
    "combos",
    "events",
    "factory_fixture",
    "unique",
    "wait_event",
]
