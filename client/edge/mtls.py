"""Direct mode: MQTT 5 over mutual TLS with the device's own certificate (port 8883).

Built like the chat client's SigV4 transports (same constructor, same callbacks), so
``ChatClient(stack, identity, transport_factory=MtlsTransport)`` works unchanged; the identity is
a :class:`~client.edge.device.DeviceIdentity`, whose thing name is the client id the device
policy requires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..stack_file import StackInfo
from ..transport import MessageHandler
from .device import DEFAULT_MQTTS_PORT, DeviceIdentity

log = logging.getLogger("iotchat.edge")


class MtlsTransport:
    def __init__(
        self,
        stack: StackInfo,
        identity: DeviceIdentity,
        client_id: str,
        on_message: MessageHandler,
        on_connected: Callable[[bool], None],
        on_disconnected: Callable[[str], None],
        *,
        keep_alive: int = 60,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        from awscrt import mqtt5
        from awsiot import mqtt5_client_builder

        if identity.cert_path is None or identity.key_path is None:
            raise ValueError("mutual TLS needs the device's certificate and private key")
        self._mqtt5 = mqtt5
        self._connections = 0

        def received(data: Any) -> None:
            packet = data.publish_packet
            on_message(packet.topic, bytes(packet.payload or b""))

        def success(data: Any) -> None:
            self._connections += 1
            on_connected(self._connections > 1)

        def lost(data: Any) -> None:
            on_disconnected(str(getattr(data, "exception", None) or "disconnected"))

        def failed(data: Any) -> None:
            log.info("connection attempt failed: %s", getattr(data, "exception", data))
            on_disconnected(f"connect failed: {getattr(data, 'exception', data)}")

        ca = {"ca_filepath": str(identity.ca_path)} if identity.ca_path else {}
        self.client = mqtt5_client_builder.mtls_from_path(
            endpoint=stack.iot_host,
            port=stack.mqtts_port or DEFAULT_MQTTS_PORT,
            cert_filepath=str(identity.cert_path),
            pri_key_filepath=str(identity.key_path),
            client_id=client_id,
            connect_options=mqtt5.ConnectPacket(
                client_id=client_id, keep_alive_interval_sec=keep_alive
            ),
            session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
            min_reconnect_delay_ms=int(min_backoff * 1000),
            max_reconnect_delay_ms=int(max_backoff * 1000),
            retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
            on_publish_received=received,
            on_lifecycle_connection_success=success,
            on_lifecycle_disconnection=lost,
            on_lifecycle_connection_failure=failed,
            **ca,
        )

    def start(self) -> None:
        self.client.start()

    def subscribe(self, topic_filter: str) -> Any:
        mqtt5 = self._mqtt5
        return self.client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(topic_filter, mqtt5.QoS.AT_LEAST_ONCE)]
            )
        )

    def publish(self, topic: str, payload: bytes) -> Any:
        mqtt5 = self._mqtt5
        return self.client.publish(
            mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        )

    def stop(self) -> None:
        self.client.stop()
