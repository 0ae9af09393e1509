"""An admin MQTT client that records what the rules deliver, for the rules engine's tests.

The engine tests (a gateway alone) and the full-stack rules tests connect the same way as the
local admin on the plain TCP listener, subscribe, publish JSON and read back what arrived on
a topic.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.waiting import wait_for


class Recorder:
    """A paho client logged in as the local admin, keeping every message it receives."""

    def __init__(self, host: str, port: int, prefix: str, version: int = mqtt.MQTTv5) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: list[int] = []
        self.client_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=version
        )
        self.mqtt.username_pw_set("test", "test")
        self.mqtt.on_message = lambda c, u, m: self.messages.append(m)
        self.mqtt.on_subscribe = lambda c, u, mid, codes, props: self.subacks.append(mid)
        self.mqtt.connect(host, port)
        self.mqtt.loop_start()
        wait_for(self.mqtt.is_connected)

    def subscribe(self, topic: str) -> None:
        _, mid = self.mqtt.subscribe(topic, qos=1)
        wait_for(lambda: mid in self.subacks)

    def publish(self, topic: str, payload: Any, **kwargs: Any) -> None:
        """Publish at QoS 1: ``payload`` as is when bytes, else as JSON."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.mqtt.publish(topic, data, qos=1, **kwargs).wait_for_publish(5)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        return [m for m in list(self.messages) if m.topic == topic]

    def json_on(self, topic: str) -> list[Any]:
        """The payloads received on ``topic``, decoded from JSON."""
        return [json.loads(m.payload) for m in self.on(topic)]

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
