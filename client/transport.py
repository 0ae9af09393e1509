"""MQTT for the chat client: awsiotsdk's MQTT 5 client (default) or its MQTT 3.1.1 connection,
over SigV4-signed WebSocket, behind one small interface.

Both reconnect by themselves with exponential backoff and jitter; the credentials provider is
asked on every (re)connect, so an expired key is never reused. On each successful connection
the transport calls ``on_connected(resumed)`` and the chat client resubscribes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from .identity import Identity
from .stack_file import StackInfo

log = logging.getLogger("iotchat.client")

MessageHandler = Callable[[str, bytes], None]


class Transport(Protocol):
    def start(self) -> None: ...
    def subscribe(self, topic_filter: str) -> Any: ...
    def publish(self, topic: str, payload: bytes) -> Any: ...
    def stop(self) -> None: ...


def _credentials_provider(identity: Identity) -> Any:
    from awscrt.auth import AwsCredentials, AwsCredentialsProvider

    def current() -> AwsCredentials:
        creds = identity.credentials()
        return AwsCredentials(
            creds.access_key_id,
            creds.secret_key,
            creds.session_token,
            datetime.fromtimestamp(creds.expiration, UTC),
        )

    return AwsCredentialsProvider.new_delegate(current)


def _tls_kwargs(stack: StackInfo) -> dict[str, Any]:
    return {"ca_filepath": stack.ca_file} if stack.ca_file else {}


class Mqtt5Transport:
    """awsiotsdk's MQTT 5 client; subclasses choose how it reaches the gateway (``_build``)."""

    def __init__(
        self,
        stack: StackInfo,
        identity: Any,
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

        self.client = self._build(
            stack,
            identity,
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
        )

    def _build(self, stack: StackInfo, identity: Identity, **options: Any) -> Any:
        """SigV4 WebSocket with the identity's Cognito credentials."""
        from awsiot import mqtt5_client_builder

        return mqtt5_client_builder.websockets_with_default_aws_signing(
            region=stack.region,
            credentials_provider=_credentials_provider(identity),
            endpoint=stack.iot_host,
            port=stack.wss_port,
            **options,
            **_tls_kwargs(stack),
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


class Mqtt311Transport:
    def __init__(
        self,
        stack: StackInfo,
        identity: Identity,
        client_id: str,
        on_message: MessageHandler,
        on_connected: Callable[[bool], None],
        on_disconnected: Callable[[str], None],
        *,
        keep_alive: int = 60,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
    ) -> None:
        from awscrt import mqtt
        from awsiot import mqtt_connection_builder

        self._mqtt = mqtt
        self._on_message = on_message
        self._on_connected = on_connected

        def interrupted(connection: Any, error: Any, **_: Any) -> None:
            on_disconnected(str(error))

        def resumed(connection: Any, return_code: Any, session_present: bool, **_: Any) -> None:
            on_connected(True)

        self.connection = mqtt_connection_builder.websockets_with_default_aws_signing(
            region=stack.region,
            credentials_provider=_credentials_provider(identity),
            endpoint=stack.iot_host,
            port=stack.wss_port,
            client_id=client_id,
            clean_session=True,
            keep_alive_secs=keep_alive,
            reconnect_min_timeout_secs=max(1, int(min_backoff)),
            reconnect_max_timeout_secs=max(1, int(max_backoff)),
            on_connection_interrupted=interrupted,
            on_connection_resumed=resumed,
            **_tls_kwargs(stack),
        )

    def start(self) -> None:
        def connected(future: Any) -> None:
            if future.exception() is None:
                self._on_connected(False)

        self.connection.connect().add_done_callback(connected)

    def subscribe(self, topic_filter: str) -> Any:
        def callback(topic: str, payload: bytes, **_: Any) -> None:
            self._on_message(topic, bytes(payload))

        future, _ = self.connection.subscribe(
            topic_filter, self._mqtt.QoS.AT_LEAST_ONCE, callback=callback
        )
        return future

    def publish(self, topic: str, payload: bytes) -> Any:
        future, _ = self.connection.publish(topic, payload, self._mqtt.QoS.AT_LEAST_ONCE)
        return future

    def stop(self) -> None:
        self.connection.disconnect().result(10)
