"""AWS IoT lifecycle events: topics and JSON bodies exactly as AWS publishes them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

PRESENCE_PREFIX = "$aws/events/presence/"
SUBSCRIPTIONS_PREFIX = "$aws/events/subscriptions/"


class DisconnectReason:
    """The ``disconnectReason`` values AWS reports."""

    AUTH_ERROR = "AUTH_ERROR"
    CLIENT_INITIATED_DISCONNECT = "CLIENT_INITIATED_DISCONNECT"
    CLIENT_ERROR = "CLIENT_ERROR"
    CONNECTION_LOST = "CONNECTION_LOST"
    DUPLICATE_CLIENTID = "DUPLICATE_CLIENTID"
    FORBIDDEN_ACCESS = "FORBIDDEN_ACCESS"
    MQTT_KEEP_ALIVE_TIMEOUT = "MQTT_KEEP_ALIVE_TIMEOUT"
    SERVER_ERROR = "SERVER_ERROR"
    SERVER_INITIATED_DISCONNECT = "SERVER_INITIATED_DISCONNECT"
    THROTTLED = "THROTTLED"
    WEBSOCKET_TTL_EXPIRATION = "WEBSOCKET_TTL_EXPIRATION"


def now_ms() -> int:
    """An event's ``timestamp``: wall-clock milliseconds."""
    return int(time.time() * 1000)


def emits_events(client_id: str) -> bool:
    """AWS sends no lifecycle events for client ids containing MQTT wildcards."""
    return bool(client_id) and "#" not in client_id and "+" not in client_id


@dataclass(slots=True)
class ConnectionIdentity:
    """What every event of one connection repeats."""

    client_id: str
    session_identifier: str
    principal_identifier: str
    ip_address: str
    version_number: int = 0


def _dump(body: dict[str, object]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _event(
    ident: ConnectionIdentity, timestamp_ms: int, event_type: str, **fields: object
) -> bytes:
    """An event body: the fields every event but ``connect_failed`` opens with, in AWS's order,
    then the event's own."""
    return _dump(
        {
            "clientId": ident.client_id,
            "timestamp": timestamp_ms,
            "eventType": event_type,
            "sessionIdentifier": ident.session_identifier,
            "principalIdentifier": ident.principal_identifier,
            **fields,
        }
    )


def connected(ident: ConnectionIdentity, timestamp_ms: int) -> tuple[str, bytes]:
    return PRESENCE_PREFIX + "connected/" + ident.client_id, _event(
        ident,
        timestamp_ms,
        "connected",
        ipAddress=ident.ip_address,
        versionNumber=ident.version_number,
    )


def disconnected(ident: ConnectionIdentity, timestamp_ms: int, reason: str) -> tuple[str, bytes]:
    return PRESENCE_PREFIX + "disconnected/" + ident.client_id, _event(
        ident,
        timestamp_ms,
        "disconnected",
        clientInitiatedDisconnect=reason == DisconnectReason.CLIENT_INITIATED_DISCONNECT,
        disconnectReason=reason,
        versionNumber=ident.version_number,
    )


def connect_failed(ident: ConnectionIdentity, timestamp_ms: int, reason: str) -> tuple[str, bytes]:
    return PRESENCE_PREFIX + "connect_failed/" + ident.client_id, _dump(
        {
            "clientId": ident.client_id,
            "timestamp": timestamp_ms,
            "eventType": "connect_failed",
            "connectFailureReason": reason,
            "principalIdentifier": ident.principal_identifier,
            "sessionIdentifier": ident.session_identifier,
            "ipAddress": ident.ip_address,
        }
    )


def subscription_change(
    ident: ConnectionIdentity, timestamp_ms: int, event_type: str, topics: list[str]
) -> tuple[str, bytes]:
    """``event_type`` is ``subscribed`` or ``unsubscribed``."""
    return SUBSCRIPTIONS_PREFIX + event_type + "/" + ident.client_id, _event(
        ident, timestamp_ms, event_type, topics=topics
    )
