"""iot-data requests and answers, without the I/O: ``Publish``'s query (``qos``, ``retain``,
``messageExpiry``, ``contentType``, ``responseTopic``) and MQTT 5 headers turned into a publish's
options, with the errors AWS answers for bad ones
(https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_Publish.html); and the JSON
``GetRetainedMessage`` and ``ListRetainedMessages`` answer with, and the latter's pages
(https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_GetRetainedMessage.html,
https://docs.aws.amazon.com/iot/latest/apireference/API_iotdata_ListRetainedMessages.html).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aiohttp import web

from infra.local.gateway.codec import Prop, Properties
from infra.local.gateway.session import Message
from infra.local.gateway.topics import InvalidTopic, validate_topic_name

from .errors import ApiError

_PAYLOAD_FORMATS = {"UNSPECIFIED_BYTES": 0, "UTF8_DATA": 1}
_U32_MAX = 2**32 - 1


def payload_too_large(limit: int) -> ApiError:
    return ApiError(
        413, "RequestEntityTooLargeException", f"Payload exceeds the maximum size of {limit} bytes"
    )


def invalid_request(message: str) -> ApiError:
    return ApiError(400, "InvalidRequestException", message)


def publish_qos(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if value not in ("0", "1"):
        raise invalid_request("qos must be 0 or 1")
    return int(value)


def boolean_flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    if value.lower() not in ("true", "false"):
        raise invalid_request(f"{name} must be true or false")
    return value.lower() == "true"


def user_properties(header: str) -> list[tuple[str, str]]:
    """``x-amz-mqtt5-user-properties``: base64 of ``[{"key": "value"}, ...]`` as JSON.

    botocore serialises the (string) parameter with ``json.dumps`` before base64, so the
    decoded value may be a JSON string holding the array; both forms are accepted.
    """
    try:
        value: Any = json.loads(base64.b64decode(header, validate=True))
        if isinstance(value, str):
            value = json.loads(value)
    except (binascii.Error, ValueError):
        raise invalid_request("userProperties must be base64-encoded JSON") from None
    if not isinstance(value, list):
        raise invalid_request("userProperties must be a JSON array of objects")
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict):
            raise invalid_request("userProperties must be a JSON array of objects")
        for key, val in item.items():
            if not isinstance(val, str):
                raise invalid_request("userProperties values must be strings")
            pairs.append((key, val))
    return pairs


def publish_properties(request: web.Request, body: bytes) -> Properties:
    """The MQTT 5 properties an iot-data publish carries, from its query and headers."""
    query = request.rel_url.query
    headers = request.headers
    props: Properties = {}
    fmt = headers.get("x-amz-mqtt5-payload-format-indicator")
    if fmt is not None:
        if fmt not in _PAYLOAD_FORMATS:
            raise invalid_request("payloadFormatIndicator must be UNSPECIFIED_BYTES or UTF8_DATA")
        props[Prop.PAYLOAD_FORMAT_INDICATOR] = _PAYLOAD_FORMATS[fmt]
        if fmt == "UTF8_DATA":
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid_request(
                    "payload is not UTF-8 but payloadFormatIndicator says so"
                ) from None
    expiry = query.get("messageExpiry")
    if expiry is not None:
        if not expiry.isascii() or not expiry.isdigit() or int(expiry) > _U32_MAX:
            raise invalid_request("messageExpiry must be a whole number of seconds")
        props[Prop.MESSAGE_EXPIRY_INTERVAL] = int(expiry)
    content_type = query.get("contentType")
    if content_type is not None:
        props[Prop.CONTENT_TYPE] = content_type
    response_topic = query.get("responseTopic")
    if response_topic is not None:
        try:
            validate_topic_name(response_topic)
        except InvalidTopic as exc:
            raise invalid_request(f"Invalid responseTopic: {exc}") from None
        props[Prop.RESPONSE_TOPIC] = response_topic
    correlation = headers.get("x-amz-mqtt5-correlation-data")
    if correlation is not None:
        try:
            props[Prop.CORRELATION_DATA] = base64.b64decode(correlation, validate=True)
        except binascii.Error:
            raise invalid_request("correlationData must be base64") from None
    user = headers.get("x-amz-mqtt5-user-properties")
    if user is not None:
        props[Prop.USER_PROPERTY] = user_properties(user)
    return props


# ---------------------------------------------------------------------- retained messages

MAX_RESULTS = 200  # ListRetainedMessages' maxResults: 1..200 (botocore's model), 200 by default


def not_found(topic: str) -> ApiError:
    return ApiError(404, "ResourceNotFoundException", f"No retained message for topic {topic}")


def retained_message(msg: Message) -> dict[str, Any]:
    """GetRetainedMessage's answer: the payload (a JSON blob: base64), QoS, the time it was
    stored (epoch ms) and, when it has MQTT 5 user properties, them as base64 of a JSON array
    of ``{"name": "value"}`` objects."""
    body: dict[str, Any] = {
        "topic": msg.topic,
        "payload": base64.b64encode(msg.payload).decode(),
        "qos": msg.qos,
        "lastModifiedTime": msg.timestamp_ms,
    }
    pairs = msg.properties.get(Prop.USER_PROPERTY)
    if pairs:
        document = json.dumps([{name: value} for name, value in pairs])
        body["userProperties"] = base64.b64encode(document.encode()).decode()
    return body


def retained_summary(msg: Message) -> dict[str, Any]:
    """One entry of ListRetainedMessages: no payload, only its size."""
    return {
        "topic": msg.topic,
        "payloadSize": len(msg.payload),
        "qos": msg.qos,
        "lastModifiedTime": msg.timestamp_ms,
    }


def max_results(value: str | None) -> int:
    if value is None or value == "":
        return MAX_RESULTS
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_RESULTS:
        raise invalid_request(f"maxResults must be between 1 and {MAX_RESULTS}")
    return int(value)


def page_token(topic: str) -> str:
    """An opaque nextToken: the last topic listed, so a page starts after it even when
    messages were retained or deleted meanwhile."""
    return base64.urlsafe_b64encode(topic.encode()).decode()


def page_start(token: str | None) -> str | None:
    """The topic a nextToken continues after; None for the first page."""
    if token is None or token == "":
        return None
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError):
        raise invalid_request("nextToken is not one this API returned") from None


def retained_page(
    messages: list[Message], after: str | None, limit: int
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of summaries from ``messages`` (sorted by topic) after the topic ``after``,
    and the token of the next page (None on the last one)."""
    rest = [m for m in messages if after is None or m.topic > after]
    page = rest[:limit]
    token = page_token(page[-1].topic) if len(rest) > limit else None
    return [retained_summary(m) for m in page], token
