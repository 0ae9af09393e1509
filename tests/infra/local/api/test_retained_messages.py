"""iot-data GetRetainedMessage and ListRetainedMessages through the API endpoint, with boto3.

Messages are retained the two ways a user would: an MQTT client publishing with RETAIN, and
iot-data Publish with ``retain=True``; boto3's ``iot-data`` client then reads them back over a
loopback socket, signed like any AWS call, and is held to the same authorizer as Publish:
``iot:GetRetainedMessage`` on the topic and ``iot:ListRetainedMessages`` on ``*``, which the
admin has and no chat identity does.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.cognito import guest_credentials, signed_in_credentials
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with run_stack_in_thread(stack_options(tmp_path_factory.mktemp("retained") / "state")) as h:
        yield h


def _prefix() -> str:
    return f"retained-{uuid.uuid4().hex[:8]}"


def _error(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> tuple[int, str]:
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def _mqtt_retain(local: InProcessStack, topic: str, payload: bytes, qos: int = 1) -> None:
    """Publish with RETAIN from a paho client, as a device would, and wait for the PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:8]}")
    client.username_pw_set("test", "test")
    client.connect(local.info["iot"]["host"], local.info["iot"]["mqttPort"])
    client.loop_start()
    try:
        info = client.publish(topic, payload, qos=qos, retain=True)
        info.wait_for_publish(5)
        wait_for(lambda: local.taps_on(topic))
    finally:
        client.disconnect()
        client.loop_stop()


def _all_retained(client: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
    """Every page boto3's paginator fetches."""
    paginator = client.get_paginator("list_retained_messages")
    return [page["retainedTopics"] for page in paginator.paginate(**kwargs)]


def test_a_message_retained_over_mqtt_is_read_back(local):
    topic = f"{_prefix()}/device/state"
    before = int(time.time() * 1000)
    _mqtt_retain(local, topic, b'{"on":true}')
    after = int(time.time() * 1000)
    answer = local.iot_data().get_retained_message(topic=topic)
    assert answer["topic"] == topic
    assert answer["payload"] == b'{"on":true}'
    assert answer["qos"] == 1
    assert before <= answer["lastModifiedTime"] <= after
    assert "userProperties" not in answer  # MQTT 3.1.1 has none


def test_user_properties_come_back_as_aws_documents_them(local):
    topic = f"{_prefix()}/config"
    iot = local.iot_data()
    iot.publish(
        topic=topic,
        qos=0,
        retain=True,
        payload=b"cfg",
        userProperties=json.dumps([{"deviceName": "alpha"}, {"deviceCnt": "45"}]),
    )
    answer = iot.get_retained_message(topic=topic)
    assert (answer["payload"], answer["qos"]) == (b"cfg", 0)
    # botocore decodes the blob; the JSON inside is AWS's array of one-pair objects.
    assert json.loads(answer["userProperties"]) == [{"deviceName": "alpha"}, {"deviceCnt": "45"}]


def test_a_newer_retained_message_replaces_the_older_and_an_empty_one_deletes_it(local):
    topic = f"{_prefix()}/lamp"
    iot = local.iot_data()
    iot.publish(topic=topic, qos=1, retain=True, payload=b"first")
    _mqtt_retain(local, topic, b"second", qos=0)
    assert iot.get_retained_message(topic=topic)["payload"] == b"second"
    iot.publish(topic=topic, qos=1, retain=True, payload=b"")
    with pytest.raises(iot.exceptions.ResourceNotFoundException) as exc:
        iot.get_retained_message(topic=topic)
    assert _error(exc) == (404, "ResourceNotFoundException")
    listed = [t["topic"] for page in _all_retained(iot) for t in page]
    assert topic not in listed


def test_a_message_published_without_retain_is_not_retained(local):
    topic = f"{_prefix()}/live"
    iot = local.iot_data()
    iot.publish(topic=topic, qos=1, payload=b"not kept")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_retained_message(topic=topic)


def test_the_list_pages_through_every_topic_in_order_without_payloads(local):
    prefix = _prefix()
    iot = local.iot_data()
    topics = [f"{prefix}/{name}" for name in ("a", "b/c", "d", "e f", "é")]
    for n, topic in enumerate(topics):
        iot.publish(topic=topic, qos=1, retain=True, payload=b"x" * (n + 1))
    pages = _all_retained(iot, PaginationConfig={"PageSize": 2})
    assert all(len(page) <= 2 for page in pages)
    ours = [t for page in pages for t in page if t["topic"].startswith(prefix + "/")]
    assert [t["topic"] for t in ours] == sorted(topics)
    by_topic = {t["topic"]: t for t in ours}
    for n, topic in enumerate(topics):
        summary = by_topic[topic]
        assert (summary["payloadSize"], summary["qos"]) == (n + 1, 1)
        assert "payload" not in summary
        assert summary["lastModifiedTime"] > 0


def test_bad_list_parameters_are_invalid_requests(local):
    iot = local.iot_data()
    with pytest.raises(iot.exceptions.InvalidRequestException) as exc:
        iot.list_retained_messages(maxResults=201)
    assert _error(exc) == (400, "InvalidRequestException")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.list_retained_messages(nextToken="%%% not ours %%%")
    assert "retainedTopics" in iot.list_retained_messages(maxResults=200)


def test_an_invalid_topic_is_an_invalid_request(local):
    iot = local.iot_data()
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.get_retained_message(topic="a/+/b")
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.get_retained_message(topic="/".join("x" * 9))  # 8 slashes


@pytest.mark.parametrize("who", ["guest", "signed-in user"])
def test_chat_identities_may_neither_list_nor_read_retained_messages(local, who):
    topic = f"{_prefix()}/secret"
    admin = local.iot_data()
    admin.publish(topic=topic, qos=1, retain=True, payload=b"for the backend")
    get = guest_credentials if who == "guest" else signed_in_credentials
    _, creds = get(local)
    caller = local.iot_data(creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        caller.get_retained_message(topic=topic)
    assert _error(exc) == (403, "ForbiddenException")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        caller.list_retained_messages()
    assert _error(exc) == (403, "ForbiddenException")
    # The admin beside them still reads it: the refusal is about who asks.
    assert admin.get_retained_message(topic=topic)["payload"] == b"for the backend"


def test_a_bad_signature_is_refused_before_anything_is_read(local):
    iot = local.iot_data("test", "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        iot.list_retained_messages()
    assert _error(exc) == (403, "ForbiddenException")


def test_the_topic_label_is_percent_encoded_like_publishs(local):
    """boto3 encodes ``/`` in the label; the path the endpoint sees decodes to the topic."""
    topic = f"{_prefix()}/a b/ü/%"
    iot = local.iot_data()
    iot.publish(topic=topic, qos=1, retain=True, payload=b"odd")
    assert iot.get_retained_message(topic=topic)["topic"] == topic
    assert urllib.parse.quote(topic, safe="") in _recorded_path(iot, topic)


def _recorded_path(client: Any, topic: str) -> str:
    """The URL boto3 sends for GetRetainedMessage on ``topic``."""
    seen: list[str] = []
    client.meta.events.register("before-send.iot-data.GetRetainedMessage", _record(seen))
    client.get_retained_message(topic=topic)
    return seen[-1]


def _record(seen: list[str]) -> Any:
    def record(request: Any, **_: Any) -> None:
        seen.append(request.url)

    return record
