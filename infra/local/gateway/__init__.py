"""The device gateway: an MQTT 3.1.1/5.0 broker with AWS IoT Core semantics."""

from infra.local.identity import (
    ADMIN_ACCESS_KEY_ID,
    ADMIN_PRINCIPAL,
    ADMIN_SECRET_ACCESS_KEY,
    AdminOnlyAuthorizer,
    Authorizer,
    Credential,
    CredentialStore,
    Principal,
    StaticCredentialStore,
)

from .broker import Broker, PublishEvent, PublishTap
from .limits import Limits
from .server import Gateway, GatewayConfig

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
