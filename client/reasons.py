"""Why a connection failed or ended, in words a person reads instead of the SDK's codes.

awsiotsdk reports failures as ``AwsCrtError`` names (``AWS_ERROR_MQTT5_DISCONNECT_RECEIVED``)
and MQTT 5 reason codes (``SESSION_TAKEN_OVER``). The chat shows people what happened and what
to do; the code stays available for logs at debug level, never on the screen.

The disconnect reasons AWS IoT Core gives (a second connection with the same client id takes the
first one over, keep-alive at 1.5 times the interval, the throttles) are the ones listed in
https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html
"""

from __future__ import annotations

from typing import Any

# MQTT 5 DISCONNECT reason codes the server sends (by awscrt's enum member name).
DISCONNECT_REASONS = {
    "NORMAL_DISCONNECTION": "the server ended the connection",
    "UNSPECIFIED_ERROR": "the server ended the connection",
    "MALFORMED_PACKET": "the server could not read what this client sent",
    "PROTOCOL_ERROR": "the server found a protocol error in what this client sent",
    "IMPLEMENTATION_SPECIFIC_ERROR": "the server refused what this client sent",
    "NOT_AUTHORIZED": "the server says these credentials are not allowed to do that",
    "SERVER_BUSY": "the server is busy; try again shortly",
    "SERVER_SHUTTING_DOWN": "the server is shutting down",
    "KEEP_ALIVE_TIMEOUT": "the server heard nothing from this client in time",
    "SESSION_TAKEN_OVER": "another connection with the same client id took this one over",
    "TOPIC_FILTER_INVALID": "a subscription was refused as invalid",
    "TOPIC_NAME_INVALID": "a topic was refused as invalid",
    "RECEIVE_MAXIMUM_EXCEEDED": "too many messages were in flight at once",
    "PACKET_TOO_LARGE": "a message was larger than the server allows",
    "MESSAGE_RATE_TOO_HIGH": "messages were sent faster than the server allows",
    "QUOTA_EXCEEDED": "a server quota was exceeded",
    "ADMINISTRATIVE_ACTION": "an administrator closed the connection",
    "CONNECTION_RATE_EXCEEDED": "too many connection attempts; the server asks to slow down",
    "MAXIMUM_CONNECT_TIME": "the connection reached its longest allowed time",
}

# MQTT 5 CONNACK reason codes of a refused connection.
CONNECT_REFUSALS = {
    "NOT_AUTHORIZED": "the stack refused the connection: these credentials may not connect",
    "BAD_USERNAME_OR_PASSWORD": "the stack refused the connection: credentials not accepted",
    "CLIENT_IDENTIFIER_NOT_VALID": "the stack refused this client id",
    "BANNED": "the stack refused the connection: this client is banned",
    "SERVER_UNAVAILABLE": "the stack is unavailable; try again shortly",
    "SERVER_BUSY": "the stack is busy; try again shortly",
    "QUOTA_EXCEEDED": "the stack refused the connection: a quota was exceeded",
    "CONNECTION_RATE_EXCEEDED": "too many connection attempts; the stack asks to slow down",
}

# awscrt error names, by exact name or by prefix (first match wins).
CRT_ERRORS: list[tuple[str, str]] = [
    ("AWS_IO_SOCKET_CONNECTION_REFUSED", "nothing is listening there (is the stack running?)"),
    ("AWS_IO_SOCKET_TIMEOUT", "the stack did not answer in time"),
    ("AWS_IO_SOCKET_NO_ROUTE_TO_HOST", "the stack's host cannot be reached"),
    ("AWS_IO_SOCKET_NETWORK_DOWN", "the network is down"),
    ("AWS_IO_SOCKET_CLOSED", "the connection was closed"),
    ("AWS_IO_SOCKET_", "the network connection failed"),
    ("AWS_IO_DNS_", "the stack's host name could not be resolved"),
    ("AWS_IO_TLS_", "the secure connection could not be set up (certificate or TLS problem)"),
    ("AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE", "the stack refused the signed WebSocket"),
    ("AWS_ERROR_HTTP_WEBSOCKET", "the WebSocket connection failed"),
    ("AWS_AUTH_", "no credentials could be obtained for the connection"),
    ("AWS_ERROR_MQTT5_CONNACK_TIMEOUT", "the stack did not answer the connection request"),
    ("AWS_ERROR_MQTT5_CONNACK_CONNECTION_REFUSED", "the stack refused the connection"),
    ("AWS_ERROR_MQTT5_PING_RESPONSE_TIMEOUT", "the connection went quiet (no answer to a ping)"),
    ("AWS_ERROR_MQTT5_DISCONNECT_RECEIVED", "the server ended the connection"),
    ("AWS_ERROR_MQTT5_USER_REQUESTED_STOP", "stopped"),
    ("AWS_ERROR_MQTT5_CLIENT_TERMINATED", "stopped"),
    ("AWS_ERROR_MQTT_UNEXPECTED_HANGUP", "the connection was closed unexpectedly"),
    ("AWS_ERROR_MQTT_TIMEOUT", "the stack did not answer in time"),
    ("AWS_ERROR_MQTT_NOT_CONNECTED", "not connected"),
    ("AWS_ERROR_MQTT_CONNECTION_", "the connection was closed"),
    ("AWS_ERROR_MQTT", "the connection failed"),
]


def _code_name(packet: Any) -> str | None:
    code = getattr(packet, "reason_code", None)
    return getattr(code, "name", None) if code is not None else None


def describe(exception: Any = None, packet: Any = None) -> str:
    """What happened, in words: from a DISCONNECT or CONNACK ``packet``'s reason code when the
    server sent one, else from the SDK's error ``exception``, else its plain text."""
    name = _code_name(packet)
    if name is not None:
        table = CONNECT_REFUSALS if "connack" in type(packet).__name__.lower() else {}
        words = table.get(name) or DISCONNECT_REASONS.get(name)
        if words:
            return words
    return describe_error(exception)


def describe_error(exception: Any) -> str:
    """An SDK error (or anything else) as words; never the bare ``AWS_...`` code."""
    if exception is None:
        return "the connection ended"
    error_name = getattr(exception, "name", None)
    if isinstance(error_name, str):
        for prefix, words in CRT_ERRORS:
            if error_name.startswith(prefix):
                return words
        message = getattr(exception, "message", None)
        if isinstance(message, str) and message.strip():
            return message.strip().rstrip(".")
        return "the connection failed"
    text = str(exception).strip()
    return text or "the connection failed"
