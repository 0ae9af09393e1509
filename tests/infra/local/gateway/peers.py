"""Paho peers for the gateway's refusal and limit tests, and the bystander each test keeps.

A :class:`Peer` records everything the gateway tells it and never reconnects, so a refusal
stays visible; a :class:`Bystander` connects before the misbehaviour and must still be
served after it. The raw-socket helper reads exact bytes where paho would interpret them.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from infra.local.gateway.codec import (
    Connect,
    encode,
)
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for


class Peer:
    """A paho client that records everything the gateway tells it, and never reconnects."""

    def __init__(
        self,
        gw: GatewayHandle,
        client_id: str,
        *,
        version: int = 5,
        username: str | None = "test",
        password: str | None = "test",
        keepalive: int = 60,
        expect_connack: bool = True,
    ) -> None:
        self.client_id = client_id
        self.version = version
        protocol = mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311
        self.client = client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            reconnect_on_failure=False,  # a refusal must stay visible, not be retried
        )
        client.max_inflight_messages_set(0)  # no client-side throttling: bursts reach the wire
        client.max_queued_messages_set(0)
        self.connack: tuple[Any, Any] | None = None
        self.disconnects: list[Any] = []
        self.gone = threading.Event()
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self._lock = threading.Lock()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        if username is not None:
            client.username_pw_set(username, password)
        client.connect(gw.host, gw.mqtt_port, keepalive=keepalive)
        client.loop_start()
        if expect_connack:
            wait_for(lambda: self.connack is not None or self.gone.is_set())

    # paho callbacks (run on paho's network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = (reason, props)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnects.append(reason)
        self.gone.set()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self.subacks[mid] = [code.value for code in codes]

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.pubacks[mid] = reason.value

    # helpers
    @property
    def connack_code(self) -> int:
        assert self.connack is not None, f"{self.client_id}: no CONNACK"
        return self.connack[0].value

    @property
    def connected(self) -> bool:
        return self.connack is not None and self.connack_code == 0 and not self.gone.is_set()

    def subscribe(
        self, topics: list[tuple[str, int]], properties: Properties | None = None
    ) -> list[int]:
        """Subscribe and return the SUBACK codes as the gateway sent them."""
        if self.version == 5:
            request: Any = [(t, SubscribeOptions(qos=q)) for t, q in topics]
        else:
            request = topics
        result, mid = self.client.subscribe(request, properties=properties)
        assert result == mqtt.MQTT_ERR_SUCCESS
        wait_for(lambda: mid in self.subacks or self.gone.is_set())
        return self.subacks.get(mid, [])

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> int:
        return self.client.publish(topic, payload, qos=qos).mid

    def puback(self, mid: int, timeout: float = 5.0) -> int:
        wait_for(lambda: mid in self.pubacks, timeout)
        return self.pubacks[mid]

    def payloads(self, topic: str | None = None) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages if topic is None or m.topic == topic]

    def wait_gone(self, timeout: float = 5.0) -> None:
        wait_for(self.gone.is_set, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Bystander:
    """An unrelated client connected before the misbehaviour: it must stay fully served."""

    def __init__(self, gw: GatewayHandle) -> None:
        self.topic = f"bystander/{uuid.uuid4().hex[:8]}"
        self.peer = Peer(gw, "bystander-" + uuid.uuid4().hex[:8])
        assert self.peer.connected
        assert self.peer.subscribe([(self.topic, 1)]) == [1]

    def roundtrip(self) -> None:
        payload = uuid.uuid4().bytes
        mid = self.peer.publish(self.topic, payload)
        assert self.peer.puback(mid) == 0
        wait_for(lambda: payload in self.peer.payloads(self.topic))
        assert self.peer.connected and self.peer.disconnects == []


def presence(gw: GatewayHandle, event: str, client_id: str) -> list[dict[str, Any]]:
    topic = f"$aws/events/presence/{event}/{client_id}"
    return [json.loads(e.payload) for e in list(gw.tapped) if e.topic == topic]


def disconnect_reason(gw: GatewayHandle, client_id: str) -> str:
    events = wait_for(lambda: presence(gw, "disconnected", client_id))
    return events[-1]["disconnectReason"]


def raw_connect(gw: GatewayHandle, connect: Connect, timeout: float = 5.0) -> bytes:
    """Send one CONNECT on a raw socket and return every byte until the gateway closes."""
    with socket.create_connection((gw.host, gw.mqtt_port), timeout=timeout) as sock:
        sock.sendall(encode(connect))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
