"""Direct mode: MQTT 5 over mutual TLS with the device's own certificate (port 8883).

The chat client's MQTT 5 transport with another way in (same constructor, same callbacks), so
``ChatClient(stack, identity, transport_factory=MtlsTransport)`` works unchanged; the identity is
a :class:`~client.edge.device.DeviceIdentity`, whose thing name is the client id the device
policy requires.
"""

from __future__ import annotations

from typing import Any

from ..stack_file import StackInfo
from ..transport import Mqtt5Client
from .device import DEFAULT_MQTTS_PORT, DeviceIdentity


class MtlsTransport(Mqtt5Client[DeviceIdentity]):
    def _build(self, stack: StackInfo, identity: DeviceIdentity, **options: Any) -> Any:
        """Mutual TLS with the device certificate, instead of SigV4 WebSocket."""
        from awsiot import mqtt5_client_builder

        if identity.cert_path is None or identity.key_path is None:
            raise ValueError("mutual TLS needs the device's certificate and private key")
        ca = {"ca_filepath": str(identity.ca_path)} if identity.ca_path else {}
        return mqtt5_client_builder.mtls_from_path(
            endpoint=stack.iot_host,
            port=stack.mqtts_port or DEFAULT_MQTTS_PORT,
            cert_filepath=str(identity.cert_path),
            pri_key_filepath=str(identity.key_path),
            **options,
            **ca,
        )
