"""Sending to topics from a Lambda: AWS IoT's data-plane Publish (``iot-data``)."""

from __future__ import annotations

from typing import Any, Protocol

from .protocol import dumps


class Publisher(Protocol):
    def publish(self, topic: str, body: dict[str, Any]) -> None: ...


class IotDataPublisher:
    """Publishes with QoS 1 through an ``iot-data`` client (the stack's endpoint locally)."""

    def __init__(self, iot_data: Any) -> None:
        self.client = iot_data

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        self.client.publish(topic=topic, qos=1, payload=dumps(body))


class RecordingPublisher:
    """Keeps what would be sent, for unit tests of the domain code."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        dumps(body)  # what would go on the wire must serialise, as in IotDataPublisher
        self.sent.append((topic, body))

    def to(self, topic: str) -> list[dict[str, Any]]:
        return [body for sent_topic, body in self.sent if sent_topic == topic]
