"""The device gateway: an MQTT 3.1.1/5.0 broker with AWS IoT Core semantics.

Its modules, from the wire up:

- ``codec``: sans-I/O MQTT 3.1.1 and 5.0 packets, bytes in and out (every packet sent is
  encoded here);
- ``connection``: one client connection, whatever the transport, and its batched writes;
- ``session``: messages in flight and the per-client-id session that outlives a connection;
- ``topics``: the subscription index (topic validation itself is :mod:`iot_rules.topics`);
- ``shared``: shared subscriptions (``$share/<ShareName>/<TopicFilter>``) and their groups;
- ``broker``: the facade, with one handler per packet type, closing and keep-alive;
- ``connect``: CONNECT (client id, authentication, authorization, will, takeover, CONNACK);
- ``delivery``: routing, QoS 0/1 delivery, queues, retained messages, wills, sessions;
- ``lifecycle``: the ``$aws/events/...`` lifecycle events; ``limits``: AWS's service limits;
- ``authorizer``: the authorization seam; ``policy_authorizer``: the one backed by policies;
- ``server``: the asyncio listeners (TCP, mutual TLS, SigV4 WebSocket) around one broker.
"""

from infra.local.identity import (
    ADMIN_ACCESS_KEY_ID,
    ADMIN_PRINCIPAL,
    ADMIN_SECRET_ACCESS_KEY,
    Credential,
    CredentialStore,
    Principal,
    StaticCredentialStore,
)

from .authorizer import AdminOnlyAuthorizer, Authorizer
from .broker import Broker
from .delivery import PublishEvent, PublishTap
from .limits import Limits
from .server import Gateway, GatewayConfig

# The identity names are re-exported for callers outside the gateway that still import them
# from here; the gateway's own modules import them from infra.local.identity.
__all__ = [
    "ADMIN_ACCESS_KEY_ID",
    "ADMIN_PRINCIPAL",
    "ADMIN_SECRET_ACCESS_KEY",
    "AdminOnlyAuthorizer",
    "Authorizer",
    "Broker",
    "Credential",
    "CredentialStore",
    "Gateway",
    "GatewayConfig",
    "Limits",
    "Principal",
    "PublishEvent",
    "PublishTap",
    "StaticCredentialStore",
]
