"""iot-data publish through the edge API, as boto3 and a Lambda would call it.

One local stack runs in-process (its own thread and loop) for the module, so the tests can
also watch the gateway's publish tap; every request still goes over a loopback socket, from
boto3 or from a hand-signed HTTP request, and every delivery to a real paho subscriber.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import paho.mqtt.client as mqtt
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.gateway import (
    ADMIN_PRINCIPAL,
    Credential,
    Principal,
    StaticCredentialStore,
)
from infra.local.sigv4 import SigV4Error, canonical_path, verify_authorization_header
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

REGION = "us-east-1"
MAX_PAYLOAD = 128 * 1024


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    options = stack_options(tmp_path_factory.mktemp("edge") / "state")
    with run_stack_in_thread(options) as handle:
        yield handle
        stack = handle.stack
    assert not stack.dynamodb.running


class Subscriber:
    """A paho client that keeps every message with its MQTT 5 properties."""

    def __init__(self, local: InProcessStack, protocol: int = mqtt.MQTTv5) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.subacks: set[int] = set()
        self._lock = threading.Lock()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
            reconnect_on_failure=False,
        )
        client.username_pw_set("test", "test")
        client.on_message = self._on_message
        client.on_subscribe = lambda c, u, mid, codes, props: self.subacks.add(mid)
        client.connect(local.info["iot"]["host"], local.info["iot"]["mqttPort"])
        client.loop_start()
        wait_for(client.is_connected)
        self.client = client

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        _, mid = self.client.subscribe(topic_filter, qos=qos)
        wait_for(lambda: mid in self.subacks)

    def wait_messages(self, count: int) -> list[mqtt.MQTTMessage]:
        wait_for(lambda: len(self.messages) >= count)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscriber(local: InProcessStack) -> Iterator[Subscriber]:
    sub = Subscriber(local)
    yield sub
    sub.close()


def _topic(prefix: str = "edge") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:8]}"


def _signed_request(
    local: InProcessStack,
    path: str,
    body: bytes = b"",
    *,
    key: str = "test",
    secret: str = "test",
    service: str = "iotdata",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """POST a request signed by botocore's own signer, without boto3's client-side checks."""
    request = AWSRequest("POST", local.endpoint + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret), service, REGION).add_auth(request)
    prepared = request.prepare()
    http = urllib.request.Request(
        prepared.url, data=body, headers=dict(prepared.headers), method="POST"
    )
    try:
        with urllib.request.urlopen(http, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"null")


# ---------------------------------------------------------------------- delivery


def test_publish_reaches_an_mqtt5_subscriber_with_every_property(local, subscriber):
    base = _topic()
    topic = f"{base}/room/a b/\u00e9"  # slashes, a space and non-ASCII in the topic
    subscriber.subscribe(f"{base}/#", qos=1)
    correlation = b"\x00\x01req-7"
    local.iot_data().publish(
        topic=topic,
        qos=1,
        payload=b'{"text": "hello"}',
        userProperties=json.dumps([{"room": "lobby"}, {"sender": "lambda"}]),
        payloadFormatIndicator="UTF8_DATA",
        contentType="application/json",
        responseTopic=f"{base}/reply",
        correlationData=base64.b64encode(correlation).decode(),
        messageExpiry=3600,
    )
    (message,) = subscriber.wait_messages(1)
    assert message.topic == topic
    assert message.payload == b'{"text": "hello"}'
    assert message.qos == 1
    props = message.properties
    assert props.UserProperty == [("room", "lobby"), ("sender", "lambda")]
    assert props.PayloadFormatIndicator == 1
    assert props.ContentType == "application/json"
    assert props.ResponseTopic == f"{base}/reply"
    assert props.CorrelationData == correlation
    assert 3590 <= props.MessageExpiryInterval <= 3600


def test_publish_is_seen_by_the_rules_tap_with_clientid_na(local, subscriber):
    topic = _topic("chat/in")
    subscriber.subscribe(topic, qos=0)
    local.iot_data().publish(topic=topic, qos=0, payload=b"x")
    subscriber.wait_messages(1)
    (event,) = wait_for(lambda: local.taps_on(topic))
    assert event.client_id == "n/a"
    assert event.principal == ADMIN_PRINCIPAL
    assert event.qos == 0 and not event.retain
    assert event.payload == b"x"


def test_retained_publish_reaches_a_later_subscriber(local):
    topic = _topic("retained") + "/state"
    local.iot_data().publish(topic=topic, qos=1, retain=True, payload=b"on")
    late = Subscriber(local, protocol=mqtt.MQTTv311)
    try:
        late.subscribe(topic)
        (message,) = late.wait_messages(1)
        assert (message.payload, message.retain, message.qos) == (b"on", True, 1)
    finally:
        late.close()
    # An empty retained payload deletes it, as in AWS.
    local.iot_data().publish(topic=topic, qos=1, retain=True, payload=b"")
    later = Subscriber(local)
    try:
        later.subscribe(topic)
        later.client.publish(topic, b"marker", qos=1)
        (message,) = later.wait_messages(1)
        assert message.payload == b"marker"
    finally:
        later.close()


def test_payload_of_exactly_128_kb_is_accepted(local, subscriber):
    topic = _topic()
    subscriber.subscribe(topic)
    local.iot_data().publish(topic=topic, qos=1, payload=b"z" * MAX_PAYLOAD)
    (message,) = subscriber.wait_messages(1)
    assert len(message.payload) == MAX_PAYLOAD


# ---------------------------------------------------------------------- refusals


def _error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def test_oversized_payload_is_413_and_not_delivered(local, subscriber):
    topic = _topic()
    subscriber.subscribe(topic)
    client = local.iot_data()
    with pytest.raises(client.exceptions.RequestEntityTooLargeException) as exc:
        client.publish(topic=topic, qos=1, payload=b"z" * (MAX_PAYLOAD + 1))
    assert _error(exc) == (413, "RequestEntityTooLargeException")
    client.publish(topic=topic, qos=1, payload=b"after")
    assert [m.payload for m in subscriber.wait_messages(1)] == [b"after"]


@pytest.mark.parametrize(
    "topic",
    [
        "chat/+/x",
        "chat/#",
        "a/b/c/d/e/f/g/h/i",  # 8 slashes: AWS allows 7
        "t" * 257,
    ],
    ids=["plus", "hash", "too-deep", "too-long"],
)
def test_invalid_topic_is_400(local, topic):
    client = local.iot_data()
    with pytest.raises(client.exceptions.InvalidRequestException) as exc:
        client.publish(topic=topic, payload=b"x")
    assert _error(exc) == (400, "InvalidRequestException")
    assert not local.taps_on(topic)


def _chunked_publish(local: InProcessStack, topic: str, chunks: list[bytes]) -> tuple[int, str]:
    """An admin-signed publish whose body is sent chunked (no Content-Length), with its
    payload hash declared as the signature requires."""
    body = b"".join(chunks)
    headers = {"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()}
    request = AWSRequest("POST", local.endpoint + f"/topics/{topic}", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), "iotdata", REGION).add_auth(request)
    prepared = dict(request.prepare().headers)
    prepared.pop("Content-Length", None)
    url = urllib.parse.urlsplit(local.endpoint)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("POST", f"/topics/{topic}", body=iter(chunks), headers=prepared)
        response = conn.getresponse()
        return response.status, response.getheader("x-amzn-ErrorType") or ""
    finally:
        conn.close()


def test_a_chunked_payload_is_counted_as_it_arrives(local, subscriber):
    topic = _topic()
    subscriber.subscribe(topic)
    assert _chunked_publish(local, topic, [b"a" * 1000, b"b" * 1000]) == (200, "")
    (message,) = subscriber.wait_messages(1)
    assert message.payload == b"a" * 1000 + b"b" * 1000
    too_big = [b"z" * 65536] * 3  # 192 KiB, no Content-Length announced it
    assert _chunked_publish(local, topic, too_big) == (413, "RequestEntityTooLargeException")
    assert len(local.taps_on(topic)) == 1


def test_unsigned_payload_is_refused_for_publish(local):
    topic = _topic()
    headers = {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    status, headers, _ = _signed_request(local, f"/topics/{topic}", b"x", headers=headers)
    assert (status, headers["x-amzn-ErrorType"]) == (403, "ForbiddenException")
    status, _, _ = _signed_request(local, f"/topics/{topic}", b"x")
    assert status == 200
    assert len(wait_for(lambda: local.taps_on(topic))) == 1


def test_bad_parameters_are_400(local):
    topic = _topic()
    status, headers, body = _signed_request(local, f"/topics/{topic}?qos=2", b"x")
    assert status == 400 and headers["x-amzn-ErrorType"] == "InvalidRequestException"
    assert "qos" in body["message"]
    bad_props = base64.b64encode(b'{"not": "a list"}').decode()
    status, _, _ = _signed_request(
        local, f"/topics/{topic}", b"x", headers={"x-amz-mqtt5-user-properties": bad_props}
    )
    assert status == 400
    status, _, _ = _signed_request(
        local,
        f"/topics/{topic}",
        b"\xff\xfe",
        headers={"x-amz-mqtt5-payload-format-indicator": "UTF8_DATA"},
    )
    assert status == 400
    assert not local.taps_on(topic)


def test_bad_signature_is_403_and_nothing_is_published(local):
    topic = _topic()
    client = local.iot_data(secret="not-the-secret")
    with pytest.raises(client.exceptions.ForbiddenException) as exc:
        client.publish(topic=topic, payload=b"x")
    assert _error(exc) == (403, "ForbiddenException")
    assert "signature" in str(exc.value)
    unknown = local.iot_data(key="AKIDUNKNOWN", secret="whatever")
    with pytest.raises(unknown.exceptions.ForbiddenException):
        unknown.publish(topic=topic, payload=b"x")
    status, _, _ = _signed_request(local, f"/topics/{topic}", b"x", service="iotdevicegateway")
    assert status == 403  # signed for another service
    request = urllib.request.Request(local.endpoint + f"/topics/{topic}", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(request, timeout=5)
    assert unsigned.value.code == 403
    assert not local.taps_on(topic)


def test_session_token_must_match(local, subscriber):
    store: StaticCredentialStore = local.stack.credentials
    store.add(Credential("ASIATEMPADMIN", "temp-secret", ADMIN_PRINCIPAL, session_token="tok+/="))
    topic = _topic()
    subscriber.subscribe(topic)
    local.iot_data("ASIATEMPADMIN", "temp-secret", token="tok+/=").publish(
        topic=topic, payload=b"1"
    )
    assert [m.payload for m in subscriber.wait_messages(1)] == [b"1"]
    wrong = local.iot_data("ASIATEMPADMIN", "temp-secret", token="other")
    with pytest.raises(wrong.exceptions.ForbiddenException):
        wrong.publish(topic=topic, payload=b"2")


def test_only_authorised_principals_may_publish(local):
    store: StaticCredentialStore = local.stack.credentials
    store.add(Credential("AKIAGUEST", "guest-secret", Principal("iam", "AKIAGUEST")))
    topic = _topic()
    guest = local.iot_data("AKIAGUEST", "guest-secret")
    with pytest.raises(guest.exceptions.ForbiddenException) as exc:
        guest.publish(topic=topic, payload=b"x")
    assert _error(exc) == (403, "ForbiddenException")
    admin = local.iot_data()
    with pytest.raises(admin.exceptions.ForbiddenException):
        admin.publish(topic="$aws/events/presence/connected/someone", payload=b"{}")
    assert not local.taps_on(topic)


def test_unknown_json_target_is_an_aws_error(local):
    request = urllib.request.Request(
        local.endpoint + "/",
        data=b"{}",
        headers={"X-Amz-Target": "NoSuchService_20200101.Op"},
    )
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=5)
    assert exc.value.code == 400
    assert json.loads(exc.value.read())["__type"] == "UnknownOperationException"


# ---------------------------------------------------------------------- the verifier itself


def _botocore_signed(url: str, body: bytes, secret: str = "test") -> AWSRequest:
    request = AWSRequest("POST", url, data=body)
    SigV4Auth(Credentials("test", secret), "iotdata", REGION).add_auth(request)
    return request


def _verify(request: AWSRequest, body: bytes, **kwargs: Any) -> Credential:
    url = request.url
    path_and_query = url.split("//", 1)[1].partition("/")[2]
    raw_path, _, raw_query = ("/" + path_and_query).partition("?")
    headers = dict(request.headers.items())
    headers["Host"] = url.split("//", 1)[1].split("/", 1)[0]
    return verify_authorization_header(
        "POST", raw_path, raw_query, headers, body, StaticCredentialStore(), **kwargs
    )


def test_verifier_accepts_botocore_and_rejects_any_change():
    url = "http://127.0.0.1:4566/topics/a%2Fb%24c?qos=1&contentType=text%2Fplain%2Bx"
    request = _botocore_signed(url, b"payload")
    assert _verify(request, b"payload", service="iotdata").principal == ADMIN_PRINCIPAL
    with pytest.raises(SigV4Error) as exc:
        _verify(request, b"payload!", service="iotdata")
    assert exc.value.reason == "SignatureMismatch"
    with pytest.raises(SigV4Error) as exc:
        _verify(request, b"payload", service="iotdata", region="eu-west-1")
    assert exc.value.reason == "InvalidCredentialScope"
    with pytest.raises(SigV4Error) as exc:
        _verify(request, b"payload", service="iotdata", now=0)
    assert exc.value.reason == "NotYetValid"
    tampered = _botocore_signed(url, b"payload")
    tampered.url = url.replace("qos=1", "qos=0")
    with pytest.raises(SigV4Error) as exc:
        _verify(tampered, b"payload", service="iotdata")
    assert exc.value.reason == "SignatureMismatch"


def test_canonical_path_encodes_the_path_again_like_the_sdks():
    assert canonical_path("/topics/a%2Fb") == "/topics/a%252Fb"
    assert canonical_path("/a/./b/../c//d/") == "/a/c/d/"
    assert canonical_path("") == "/"


def test_stack_state_dir_is_where_dynamodb_keeps_its_data(local):
    data_dir = Path(local.info["iot"]["caFile"]).parent.parent / "dynamodb"
    assert local.stack.dynamodb.data_dir == data_dir
    assert any(data_dir.iterdir())
