"""Greengrass mode: the nucleus's MQTT connection, reached over Greengrass IPC.

A component on a Greengrass core does not hold a certificate of its own: it asks the nucleus to
publish to and subscribe on AWS IoT Core for it (``aws.greengrass.ipc.mqttproxy``, allowed per
topic by the recipe's ``accessControl``), and the messages go out as the core device's thing.
The nucleus reconnects to the cloud by itself, so this transport connects once.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..stack_file import StackInfo
from ..transport import ChatTransport, ConnectOptions
from .device import DeviceIdentity

log = logging.getLogger("iotchat.edge")

# Set by the nucleus for every component it runs; its presence is what selects this transport.
SOCKET_ENV = "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"
THING_NAME_ENV = "AWS_IOT_THING_NAME"


def under_greengrass() -> bool:
    return bool(os.environ.get(SOCKET_ENV))


class IpcTransport(ChatTransport[DeviceIdentity]):
    """The chat client's transport interface over the nucleus's ``mqttproxy`` IPC service;
    the connect options are unused, the nucleus keeps its own connection."""

    def _open(
        self, stack: StackInfo, identity: DeviceIdentity, client_id: str, options: ConnectOptions
    ) -> None:
        self.ipc: Any = None
        self._operations: list[Any] = []  # streaming operations must stay referenced

    def connect_nucleus(self) -> Any:
        """The IPC client; tests override this to stand in for the nucleus."""
        from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

        return GreengrassCoreIPCClientV2()

    def start(self) -> None:
        try:
            self.ipc = self.connect_nucleus()
        except Exception as exc:
            # No retry: without its nucleus the component cannot work, and the nucleus
            # restarts components that exit with an error.
            reason = f"cannot reach the Greengrass nucleus: {exc}"
            self.callbacks.on_disconnected(reason)
            raise ConnectionError(reason) from exc
        self.callbacks.on_connected(False)

    def subscribe(self, topic_filter: str) -> Any:
        from awsiot.greengrasscoreipc.model import QOS

        def event(message: Any) -> None:
            mqtt = message.message
            payload = mqtt.payload
            if isinstance(payload, str):
                payload = payload.encode()
            self.callbacks.on_message(mqtt.topic_name, bytes(payload or b""))

        def error(exc: Exception) -> bool:
            log.warning("subscription to %s: %s", topic_filter, exc)
            return False  # keep the stream open

        future, operation = self.ipc.subscribe_to_iot_core_async(
            topic_name=topic_filter,
            qos=QOS.AT_LEAST_ONCE,
            on_stream_event=event,
            on_stream_error=error,
        )
        self._operations.append(operation)
        return future

    def publish(self, topic: str, payload: bytes) -> Any:
        from awsiot.greengrasscoreipc.model import QOS

        return self.ipc.publish_to_iot_core_async(
            topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=payload
        )

    def stop(self) -> None:
        for operation in self._operations:
            try:
                operation.close()
            except Exception as exc:  # closing a stream the nucleus already ended
                log.debug("closing a subscription: %s", exc)
        self._operations.clear()
        if self.ipc is not None:
            self.ipc.close()
            self.ipc = None
