"""What a person reads when a connection fails: words, never the SDK's error codes."""

from __future__ import annotations

import pytest
from awscrt import mqtt5
from awscrt.exceptions import AwsCrtError

from client.reasons import describe, describe_error


def crt(name: str, message: str = "An SDK message.") -> AwsCrtError:
    return AwsCrtError(0, name, message)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER, "took this one over"),
        (mqtt5.DisconnectReasonCode.SERVER_SHUTTING_DOWN, "shutting down"),
        (mqtt5.DisconnectReasonCode.NOT_AUTHORIZED, "not allowed"),
        (mqtt5.DisconnectReasonCode.MESSAGE_RATE_TOO_HIGH, "faster than the server allows"),
    ],
)
def test_a_server_disconnect_is_told_by_its_reason(
    code: mqtt5.DisconnectReasonCode, words: str
) -> None:
    said = describe(
        crt("AWS_ERROR_MQTT5_DISCONNECT_RECEIVED"), mqtt5.DisconnectPacket(reason_code=code)
    )
    assert words in said and "AWS_" not in said


def test_a_refused_connect_is_told_by_its_connack_reason() -> None:
    packet = mqtt5.ConnackPacket(reason_code=mqtt5.ConnectReasonCode.NOT_AUTHORIZED)
    said = describe(crt("AWS_ERROR_MQTT5_CONNACK_CONNECTION_REFUSED"), packet)
    assert said == "the stack refused the connection: these credentials may not connect"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("AWS_IO_SOCKET_CONNECTION_REFUSED", "is the stack running?"),
        ("AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE", "certificate or TLS problem"),
        ("AWS_ERROR_HTTP_WEBSOCKET_UPGRADE_FAILURE", "refused the signed WebSocket"),
        ("AWS_ERROR_MQTT5_PING_RESPONSE_TIMEOUT", "went quiet"),
        ("AWS_IO_DNS_QUERY_FAILED", "could not be resolved"),
    ],
)
def test_sdk_errors_become_words(name: str, words: str) -> None:
    said = describe(crt(name), None)
    assert words in said and "AWS_" not in said


def test_an_unknown_sdk_error_falls_back_to_its_sentence_not_its_code() -> None:
    assert describe_error(crt("AWS_ERROR_SOMETHING_NEW", "Something new broke.")) == (
        "Something new broke"
    )
    assert describe_error(None) == "the connection ended"
    assert describe_error(ValueError("plain words")) == "plain words"
