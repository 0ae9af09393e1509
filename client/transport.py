"""MQTT for the chat client: awsiotsdk's MQTT 5 client (default) or its MQTT 3.1.1 connection,
over SigV4-signed WebSocket, behind one small interface.

Every transport is built the same way, ``factory(stack, identity, client_id, callbacks,
options)``, and reports through one :class:`TransportCallbacks`; :class:`ChatTransport` holds
that shape, for these and for the edge component's transports (client/edge/).

Both MQTT transports reconnect by themselves with exponential backoff and jitter; the
credentials provider is asked on every (re)connect, so an expired key is never reused. On each
successful connection the transport calls ``on_connected(resumed)`` and the chat client
resubscribes.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from .identity import ClientIdentity, Identity
from .reasons import describe, describe_error
from .stack_file import StackInfo

log = logging.getLogger("iotchat.client")

MessageHandler = Callable[[str, bytes], None]
IdentityT = TypeVar("IdentityT", bound=ClientIdentity)


@dataclass(frozen=True)
class TransportCallbacks:
    """What a transport tells its chat client; called on the transport's own thread."""

    on_message: MessageHandler  # a publish arrived: (topic, payload)
    on_connected: Callable[[bool], None]  # connected; True when it is a reconnect
    on_disconnected: Callable[[str], None]  # the connection (or an attempt) failed: why, in words


@dataclass(frozen=True)
class ConnectOptions:
    """How an MQTT transport keeps its connection; transports whose broker connection belongs
    to someone else (the Greengrass nucleus) ignore them."""

    keep_alive: int = 60
    min_backoff: float = 0.5  # seconds before the first reconnect attempt
    max_backoff: float = 30.0  # the longest wait between attempts


DEFAULT_OPTIONS = ConnectOptions()


class Transport(Protocol):
    """What the chat client needs of a transport (tests bring fakes of their own)."""

    def start(self) -> None: ...
    def subscribe(self, topic_filter: str) -> Any: ...
    def publish(self, topic: str, payload: bytes) -> Any: ...
    def stop(self) -> None: ...


# How the chat client builds its transport. The identity is whatever that transport connects
# as: a Cognito Identity for the SigV4 transports, a device identity for the edge's.
TransportFactory = Callable[[StackInfo, Any, str, TransportCallbacks, ConnectOptions], Transport]


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


def _sigv4_websocket(stack: StackInfo, identity: Identity) -> dict[str, Any]:
    """The builder arguments both awsiotsdk builders take for a SigV4-signed WebSocket."""
    where: dict[str, Any] = {
        "region": stack.region,
        "credentials_provider": _credentials_provider(identity),
        "endpoint": stack.iot_host,
        "port": stack.wss_port,
    }
    if stack.ca_file:
        where["ca_filepath"] = stack.ca_file
    return where


class ChatTransport(ABC, Generic[IdentityT]):
    """The constructor and interface every chat transport shares; a subclass builds its
    connection in :meth:`_open` and reports through ``self.callbacks``."""

    def __init__(
        self,
        stack: StackInfo,
        identity: IdentityT,
        client_id: str,
        callbacks: TransportCallbacks,
        options: ConnectOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.callbacks = callbacks
        self._open(stack, identity, client_id, options)

    @abstractmethod
    def _open(
        self, stack: StackInfo, identity: IdentityT, client_id: str, options: ConnectOptions
    ) -> None:
        """Build the connection; :meth:`start` connects it."""

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def subscribe(self, topic_filter: str) -> Any: ...

    @abstractmethod
    def publish(self, topic: str, payload: bytes) -> Any: ...

    @abstractmethod
    def stop(self) -> None: ...


class Mqtt5Client(ChatTransport[IdentityT]):
    """awsiotsdk's MQTT 5 client wired to the callbacks, QoS 1 both ways; subclasses choose how
    it reaches the gateway (:meth:`_build`) and so which identity they connect as."""

    def _open(
        self, stack: StackInfo, identity: IdentityT, client_id: str, options: ConnectOptions
    ) -> None:
        from awscrt import mqtt5

        self._mqtt5 = mqtt5
        self._connections = 0
        callbacks = self.callbacks

        def received(data: Any) -> None:
            packet = data.publish_packet
            callbacks.on_message(packet.topic, bytes(packet.payload or b""))

        def success(data: Any) -> None:
            self._connections += 1
            callbacks.on_connected(self._connections > 1)

        def lost(data: Any) -> None:
            error = getattr(data, "exception", None)
            log.debug("disconnected: %s", error)
            callbacks.on_disconnected(describe(error, getattr(data, "disconnect_packet", None)))

        def failed(data: Any) -> None:
            error = getattr(data, "exception", None)
            log.info("connection attempt failed: %s", error)
            callbacks.on_disconnected(describe(error, getattr(data, "connack_packet", None)))

        self.client = self._build(
            stack,
            identity,
            client_id=client_id,
            connect_options=mqtt5.ConnectPacket(
                client_id=client_id, keep_alive_interval_sec=options.keep_alive
            ),
            session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
            min_reconnect_delay_ms=int(options.min_backoff * 1000),
            max_reconnect_delay_ms=int(options.max_backoff * 1000),
            retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
            on_publish_received=received,
            on_lifecycle_connection_success=success,
            on_lifecycle_disconnection=lost,
            on_lifecycle_connection_failure=failed,
        )

    @abstractmethod
    def _build(self, stack: StackInfo, identity: IdentityT, **options: Any) -> Any:
        """The awsiotsdk MQTT 5 client for ``options`` (client id, callbacks, backoff)."""

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


class Mqtt5Transport(Mqtt5Client[Identity]):
    """MQTT 5 over SigV4 WebSocket with the identity's Cognito credentials."""

    def _build(self, stack: StackInfo, identity: Identity, **options: Any) -> Any:
        from awsiot import mqtt5_client_builder

        return mqtt5_client_builder.websockets_with_default_aws_signing(
            **_sigv4_websocket(stack, identity), **options
        )


class Mqtt311Transport(ChatTransport[Identity]):
    """MQTT 3.1.1 over SigV4 WebSocket; its connection reports resumes, not first connects."""

    def _open(
        self, stack: StackInfo, identity: Identity, client_id: str, options: ConnectOptions
    ) -> None:
        from awscrt import mqtt
        from awsiot import mqtt_connection_builder

        self._mqtt = mqtt
        callbacks = self.callbacks

        def interrupted(connection: Any, error: Any, **_: Any) -> None:
            log.debug("interrupted: %s", error)
            callbacks.on_disconnected(describe_error(error))

        def resumed(connection: Any, return_code: Any, session_present: bool, **_: Any) -> None:
            callbacks.on_connected(True)

        self.connection = mqtt_connection_builder.websockets_with_default_aws_signing(
            **_sigv4_websocket(stack, identity),
            client_id=client_id,
            clean_session=True,
            keep_alive_secs=options.keep_alive,
            reconnect_min_timeout_secs=max(1, int(options.min_backoff)),
            reconnect_max_timeout_secs=max(1, int(options.max_backoff)),
            on_connection_interrupted=interrupted,
            on_connection_resumed=resumed,
        )

    def start(self) -> None:
        def connected(future: Any) -> None:
            error = future.exception()
            if error is None:
                self.callbacks.on_connected(False)
            else:
                log.info("connection attempt failed: %s", error)
                self.callbacks.on_disconnected(describe_error(error))

        self.connection.connect().add_done_callback(connected)

    def subscribe(self, topic_filter: str) -> Any:
        def callback(topic: str, payload: bytes, **_: Any) -> None:
            self.callbacks.on_message(topic, bytes(payload))

        future, _ = self.connection.subscribe(
            topic_filter, self._mqtt.QoS.AT_LEAST_ONCE, callback=callback
        )
        return future

    def publish(self, topic: str, payload: bytes) -> Any:
        future, _ = self.connection.publish(topic, payload, self._mqtt.QoS.AT_LEAST_ONCE)
        return future

    def stop(self) -> None:
        self.connection.disconnect().result(10)
