"""The rules engine on a live gateway: real MQTT clients publish, rules republish and fail.

Lambda, DynamoDB and Kinesis actions are driven against the full local stack in
``test_rules_stack.py``; this file covers the engine's own behaviour with the gateway alone.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from infra.local.rules.actions import RuleServices
from infra.local.rules.engine import RulesEngine
from iot_rules.loader import RuleDefinition
from tests.infra.local.rules.recorder import Recorder
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)


def admin_client(gateway: GatewayHandle, version: int = mqtt.MQTTv5) -> Recorder:
    """An admin client on the gateway's plain listener."""
    return Recorder(gateway.host, gateway.mqtt_port, "rules", version)


@pytest.fixture
def client(gateway):
    c = admin_client(gateway)
    yield c
    c.close()


def attach(gateway: GatewayHandle, *rules: tuple[str, dict[str, Any]]) -> RulesEngine:
    """Run a rules engine on the gateway's loop, fed by its publish tap."""

    def publish(topic: str, payload: bytes, **kwargs: Any) -> None:
        gateway.gateway.publish(topic, payload, **kwargs)

    engine = RulesEngine(RuleServices(publish=publish))
    engine.load([RuleDefinition(name, payload) for name, payload in rules])
    gateway.call(lambda: gateway.gateway.add_tap(engine.on_publish))
    return engine


ROLE_ARN = "arn:aws:iam::000000000000:role/r"


def republish(topic: str, **options: Any) -> dict[str, Any]:
    """A republish action entry, as a ``TopicRulePayload`` lists it."""
    return {"republish": {"roleArn": ROLE_ARN, "topic": topic, **options}}


def rule_payload(sql: str, *actions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A ``TopicRulePayload``: the SQL, its actions, and any other field (errorAction...)."""
    return {"sql": sql, "actions": list(actions), **fields}


ROOM_RULE = rule_payload(
    "SELECT *, clientid() AS sender, timestamp() AS ts FROM 'chat/out' "
    "WHERE type = 'message' AND regexp_matches(room, '^[A-Za-z0-9_-]{1,64}$')",
    republish("chat/pub/${room}", qos=1),
    awsIotSqlVersion="2016-03-23",
)


def test_republish_rule_delivers_to_the_room_with_sender_and_timestamp(gateway, client):
    attach(gateway, ("RoomRule", ROOM_RULE))
    client.subscribe("chat/pub/lobby")
    message = {"type": "message", "id": str(uuid.uuid4()), "room": "lobby", "text": "hi"}
    client.publish("chat/out", message)
    wait_for(lambda: client.on("chat/pub/lobby"))
    [delivered] = client.on("chat/pub/lobby")
    body = json.loads(delivered.payload)
    assert body["text"] == "hi" and body["id"] == message["id"]
    assert body["sender"] == client.client_id
    assert isinstance(body["ts"], int) and body["ts"] > 1_600_000_000_000
    assert delivered.qos == 1


def test_where_clause_blocks_invalid_rooms(gateway, client):
    attach(gateway, ("RoomRule", ROOM_RULE))
    client.subscribe("chat/pub/#")
    client.publish("chat/out", {"type": "message", "room": "bad room!", "text": "x"})
    client.publish("chat/out", {"type": "message", "room": "good", "text": "after"})
    wait_for(lambda: client.on("chat/pub/good"))
    assert [m.topic for m in client.messages] == ["chat/pub/good"]


def test_failed_action_fires_error_action_with_aws_error_payload(gateway, client):
    rule = rule_payload(
        "SELECT * FROM 'in/+'",
        # The template renders a topic with a wildcard, which cannot be published.
        republish("out/${bad}"),
        republish("ok/${topic()}"),
        errorAction=republish("errors/BadRule"),
    )
    attach(gateway, ("BadRule", rule))
    client.subscribe("errors/BadRule")
    client.subscribe("ok/#")
    client.publish("in/x", {"bad": "a/#"})
    wait_for(lambda: client.on("errors/BadRule"))
    [error] = client.on("errors/BadRule")
    body = json.loads(error.payload)
    assert set(body) == {
        "ruleName",
        "topic",
        "cloudwatchTraceId",
        "clientId",
        "base64OriginalPayload",
        "failures",
    }
    assert body["ruleName"] == "BadRule"
    assert body["topic"] == "in/x"
    assert body["clientId"] == client.client_id
    assert json.loads(base64.b64decode(body["base64OriginalPayload"])) == {"bad": "a/#"}
    assert len(body["failures"]) == 1
    failure = body["failures"][0]
    assert failure["failedAction"] == "RepublishAction"
    assert failure["failedResource"] == "out/a/#"
    assert failure["errorMessage"]
    # The action that did not fail still ran.
    wait_for(lambda: client.on("ok/in/x"))


def test_dollar_dollar_republishes_to_a_reserved_topic(gateway, client):
    rule = rule_payload("SELECT * FROM 'shadowish/+'", republish("$$aws/rules_out/${topic(2)}"))
    attach(gateway, ("Escaped", rule))
    client.subscribe("$aws/rules_out/#")
    client.publish("shadowish/abc", {"v": 1})
    wait_for(lambda: client.on("$aws/rules_out/abc"))


def test_republish_loop_is_cut_off(gateway, client):
    rule = rule_payload("SELECT * FROM 'loop/#'", republish("loop/again"))
    engine = attach(gateway, ("Loop", rule))
    client.subscribe("loop/again")
    client.subscribe("after/loop")
    client.publish("loop/start", {"n": 1})
    wait_for(lambda: len(client.on("loop/again")) >= 8)
    # A later message through the same gateway: by then the cut-off loop has settled.
    client.publish("after/loop", {"ok": True})
    wait_for(lambda: client.on("after/loop"))
    assert len(client.on("loop/again")) == 8
    assert engine.stats["Loop"].matched == 8


def test_lifecycle_events_reach_rules(gateway, client):
    rule = rule_payload(
        "SELECT clientId, eventType FROM '$aws/events/presence/+/+'",
        republish("presence/${clientId}"),
    )
    attach(gateway, ("Presence", rule))
    client.subscribe("presence/#")
    other = admin_client(gateway)
    other.close()
    wait_for(lambda: len(client.on(f"presence/{other.client_id}")) == 2)
    kinds = [json.loads(m.payload)["eventType"] for m in client.on(f"presence/{other.client_id}")]
    assert kinds == ["connected", "disconnected"]


def test_internal_publish_reaches_rules_with_client_id_na(gateway, client):
    rule = rule_payload("SELECT clientid() AS who FROM 'http/in'", republish("http/out"))
    attach(gateway, ("Http", rule))
    client.subscribe("http/out")
    gateway.call(lambda: gateway.gateway.publish("http/in", b"{}"))
    wait_for(lambda: client.on("http/out"))
    assert json.loads(client.on("http/out")[0].payload) == {"who": "n/a"}


def test_basic_ingest_reaches_only_the_named_rule_without_the_prefix(gateway, client):
    rule = rule_payload("SELECT topic() AS t FROM 'ingest/+'", republish("ingested/${topic(2)}"))
    other = rule_payload("SELECT * FROM 'ingest/+'", republish("wrong/rule"))
    attach(gateway, ("Ingest", rule), ("Other", other))
    client.subscribe("ingested/#")
    client.subscribe("wrong/rule")
    client.subscribe("ingest/+")
    client.publish("$aws/rules/Ingest/ingest/dev1", {"v": 1})
    wait_for(lambda: client.on("ingested/dev1"))
    assert json.loads(client.on("ingested/dev1")[0].payload) == {"t": "ingest/dev1"}
    # Basic Ingest skips subscribers and every other rule.
    assert not client.on("wrong/rule") and not client.on("ingest/dev1")


def test_republish_sets_mqtt5_headers_from_templates(gateway, client):
    headers = {
        "contentType": "application/json",
        "payloadFormatIndicator": "UTF8_DATA",
        "responseTopic": "reply/${who}",
        "correlationData": "Y29ycmVsYXRpb24=",
        "messageExpiry": "60",
        "userProperties": [{"key": "room", "value": "${room}"}],
    }
    rule = rule_payload("SELECT * FROM 'hdr/in'", republish("hdr/out", qos=1, headers=headers))
    attach(gateway, ("Headers", rule))
    client.subscribe("hdr/out")
    client.publish("hdr/in", {"who": "bob", "room": "lobby"})
    wait_for(lambda: client.on("hdr/out"))
    props = client.on("hdr/out")[0].properties
    assert props.ContentType == "application/json"
    assert props.PayloadFormatIndicator == 1
    assert props.ResponseTopic == "reply/bob"
    assert props.CorrelationData == b"correlation"
    assert 0 < props.MessageExpiryInterval <= 60
    assert props.UserProperty == [("room", "lobby")]
