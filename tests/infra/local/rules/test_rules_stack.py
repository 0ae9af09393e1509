"""Rules on a running local stack, with real MQTT clients, real Lambda workers and dynalite."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.lambda_runtime import failures_path
from tests.infra.local.rules.recorder import Recorder
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

ROLE = "arn:aws:iam::000000000000:role/iotchat-rules"
FN = "arn:aws:lambda:us-east-1:000000000000:function:"


def _republish(topic: str) -> dict[str, Any]:
    return {"republish": {"roleArn": ROLE, "topic": topic, "qos": 1}}


RULES: dict[str, dict[str, Any]] = {
    "RoomRepublish": {
        "sql": "SELECT *, clientid() AS sender FROM 'chat/out' WHERE type = 'message'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [_republish("chat/pub/${room}")],
        "errorAction": _republish("errors/RoomRepublish"),
    },
    "ToLambda": {
        "sql": "SELECT *, topic() AS t FROM 'lambda/in'",
        "actions": [{"lambda": {"functionArn": FN + "record"}}],
        "errorAction": _republish("errors/ToLambda"),
    },
    "ToFailingLambda": {
        "sql": "SELECT * FROM 'lambda/fail'",
        "actions": [{"lambda": {"functionArn": FN + "fail"}}],
    },
    "MissingFunction": {
        "sql": "SELECT * FROM 'lambda/missing'",
        "actions": [{"lambda": {"functionArn": FN + "nobody"}}],
        "errorAction": _republish("errors/MissingFunction"),
    },
    "Store": {
        "sql": "SELECT room, ts, text, clientid() AS sender FROM 'store/in'",
        "actions": [{"dynamoDBv2": {"roleArn": ROLE, "putItem": {"tableName": "Messages"}}}],
        "errorAction": _republish("errors/Store"),
    },
    "Enrich": {
        "sql": "SELECT aws_lambda('" + FN + "echo', {'n': n}).n AS echoed, "
        "get_dynamodb('Messages', 'room', room, 'ts', ts, '" + ROLE + "').text AS stored "
        "FROM 'enrich/in'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [_republish("enrich/out")],
    },
    "StoreV1": {
        "sql": "SELECT text, clientid() AS sender FROM 'store/v1'",
        "actions": [
            {
                "dynamoDB": {
                    "roleArn": ROLE,
                    "tableName": "Messages",
                    "hashKeyField": "room",
                    "hashKeyValue": "${room}",
                    "rangeKeyField": "ts",
                    "rangeKeyValue": "${ts}",
                    "rangeKeyType": "NUMBER",
                    "payloadField": "message",
                }
            }
        ],
        "errorAction": _republish("errors/StoreV1"),
    },
    "MissingTable": {
        "sql": "SELECT * FROM 'store/missing'",
        "actions": [{"dynamoDBv2": {"roleArn": ROLE, "putItem": {"tableName": "NoSuchTable"}}}],
        "errorAction": _republish("errors/MissingTable"),
    },
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("rules-stack")
    rules_dir = root / "rules"
    rules_dir.mkdir()
    for name, rule in RULES.items():
        (rules_dir / f"{name}.json").write_text(json.dumps(rule))
    records = root / "records"
    records.mkdir()
    manifest = {
        "functions": [
            {
                "name": "record",
                "handler": "tests.infra.local.rules.handlers.record_event",
                "environment": {"RECORD_FILE": str(records / "record.jsonl")},
            },
            {"name": "echo", "handler": "tests.infra.local.rules.handlers.echo"},
            {
                "name": "fail",
                "handler": "tests.infra.local.rules.handlers.always_fail",
                "environment": {"RECORD_FILE": str(records / "fail.jsonl")},
            },
        ],
        "tables": [
            {
                "TableName": "Messages",
                "KeySchema": [
                    {"AttributeName": "room", "KeyType": "HASH"},
                    {"AttributeName": "ts", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "room", "AttributeType": "S"},
                    {"AttributeName": "ts", "AttributeType": "N"},
                ],
            },
        ],
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    options = stack_options(
        root / "state",
        rules_dir=rules_dir,
        manifest=root / "manifest.json",
        lambda_retry_delays=(0.1, 0.1),
    )
    with run_stack_in_thread(options) as handle:
        handle.records = records  # type: ignore[attr-defined]
        yield handle


@pytest.fixture
def client(local: InProcessStack) -> Iterator[Recorder]:
    c = Recorder(local.info["iot"]["host"], local.info["iot"]["mqttPort"], "user")
    yield c
    c.close()


def _records(local: InProcessStack, name: str) -> list[Any]:
    path: Path = local.records / f"{name}.jsonl"  # type: ignore[attr-defined]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_republish_rule_delivers_to_room_subscribers(local, client):
    client.subscribe("chat/pub/lobby")
    message = {"type": "message", "id": str(uuid.uuid4()), "room": "lobby", "text": "hello"}
    client.publish("chat/out", message)
    wait_for(lambda: client.json_on("chat/pub/lobby"))
    assert client.json_on("chat/pub/lobby") == [{**message, "sender": client.client_id}]


def test_lambda_action_invokes_asynchronously_with_the_select_result(local, client):
    marker = str(uuid.uuid4())
    client.publish("lambda/in", {"marker": marker})
    wait_for(lambda: [r for r in _records(local, "record") if r.get("marker") == marker], 15)
    [event] = [r for r in _records(local, "record") if r.get("marker") == marker]
    assert event == {"marker": marker, "t": "lambda/in"}


def test_failing_lambda_is_retried_twice_then_recorded(local, client):
    marker = str(uuid.uuid4())
    client.publish("lambda/fail", {"marker": marker})
    path = failures_path(local.stack.state_dir, "fail")

    def failure_record() -> dict[str, Any] | None:
        if not path.exists():
            return None
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["requestPayload"].get("marker") == marker:
                return record
        return None

    record = wait_for(failure_record, 20)
    attempts = [r for r in _records(local, "fail") if r.get("marker") == marker]
    assert len(attempts) == 3  # the first try and two retries
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorMessage"] == "this handler always fails"


def test_missing_function_fires_the_error_action(local, client):
    client.subscribe("errors/MissingFunction")
    client.publish("lambda/missing", {"n": 1})
    wait_for(lambda: client.json_on("errors/MissingFunction"), 10)
    [error] = client.json_on("errors/MissingFunction")
    assert error["ruleName"] == "MissingFunction"
    assert error["clientId"] == client.client_id
    [failure] = error["failures"]
    assert failure["failedAction"] == "LambdaAction"
    assert failure["failedResource"] == FN + "nobody"


def test_dynamodbv2_action_writes_the_row(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    client.publish("store/in", {"room": room, "ts": 1700000000123, "text": "stored"})
    dynamodb = local.client("dynamodb")

    def stored() -> list[dict[str, Any]]:
        return dynamodb.query(
            TableName="Messages",
            KeyConditionExpression="room = :r",
            ExpressionAttributeValues={":r": {"S": room}},
        )["Items"]

    [item] = wait_for(stored, 10)
    assert item == {
        "room": {"S": room},
        "ts": {"N": "1700000000123"},
        "text": {"S": "stored"},
        "sender": {"S": client.client_id},
    }


def test_missing_table_fires_the_error_action(local, client):
    client.subscribe("errors/MissingTable")
    client.publish("store/missing", {"room": "x"})
    wait_for(lambda: client.json_on("errors/MissingTable"), 10)
    [error] = client.json_on("errors/MissingTable")
    [failure] = error["failures"]
    assert failure["failedAction"] == "DynamoDBv2Action"
    assert failure["failedResource"] == "NoSuchTable"
    assert "ResourceNotFoundException" in failure["errorMessage"]


def test_iot_data_publish_reaches_rules_with_client_id_na(local, client):
    client.subscribe("chat/pub/http")
    local.iot_data().publish(
        topic="chat/out",
        qos=1,
        payload=json.dumps({"type": "message", "room": "http", "text": "via http"}),
    )
    wait_for(lambda: client.json_on("chat/pub/http"))
    assert client.json_on("chat/pub/http")[0]["sender"] == "n/a"


def test_aws_lambda_and_get_dynamodb_reach_the_local_stack(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    local.client("dynamodb").put_item(
        TableName="Messages",
        Item={"room": {"S": room}, "ts": {"N": "5"}, "text": {"S": "from the table"}},
    )
    client.subscribe("enrich/out")
    client.publish("enrich/in", {"n": 41, "room": room, "ts": 5})
    wait_for(lambda: client.json_on("enrich/out"), 15)
    assert client.json_on("enrich/out") == [{"echoed": 41, "stored": "from the table"}]


def test_dynamodb_v1_action_writes_keys_and_payload_column(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    client.publish("store/v1", {"room": room, "ts": 42, "text": "v1"})
    dynamodb = local.client("dynamodb")

    def stored() -> dict[str, Any] | None:
        key = {"room": {"S": room}, "ts": {"N": "42"}}
        return dynamodb.get_item(TableName="Messages", Key=key).get("Item")

    item = wait_for(stored, 10)
    assert item["message"] == {"M": {"text": {"S": "v1"}, "sender": {"S": client.client_id}}}
