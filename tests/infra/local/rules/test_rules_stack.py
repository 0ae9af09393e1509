"""Rules on a running local stack, with real MQTT clients, real Lambda workers and dynalite."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.lambda_runtime import failures_path
from policies.render import LOCAL_NAMES
from tests.infra.local.rules.recorder import Recorder
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.stack_files import (
    REPUBLISH_ROLE,
    keyed_table,
    republish,
    write_manifest,
    write_rules,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)

# Every rule acts as one of the project's roles (policies/iam/), as it would on AWS.
NAMES = LOCAL_NAMES
STACK = NAMES["stack"]
ACCOUNT = NAMES["account"]
# REPUBLISH_ROLE (tests.support.stack_files) may publish to chat/pub/*, chat/in/*.
STORE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-rule-dynamodb"  # PutItem on <stack>-messages
STREAM_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-rule-kinesis"  # PutRecord on <stack>-stream
# Item-level access to the stack's tables (the Lambdas' role), for get_dynamodb() and for a
# table it may use that this test stack does not create (<stack>-state).
TABLES_ROLE = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-backend-lambda"
FN = f"arn:aws:lambda:{NAMES['region']}:{ACCOUNT}:function:"
TABLE = f"{STACK}-messages"
MISSING_TABLE = f"{STACK}-state"  # the role may write it; the test stack has no such table
STREAM = f"{STACK}-stream"


def _errors(rule: str) -> dict[str, Any]:
    """The error action: republish to an inbox-like topic the republish role may publish to."""
    return republish(f"chat/in/errors/{rule}")


def _dynamodb_v1(**fields: str) -> dict[str, Any]:
    """A dynamoDB (v1) action on the messages table, keyed by room and ts, as the store role."""
    return {
        "dynamoDB": {
            "roleArn": STORE_ROLE,
            "tableName": TABLE,
            "hashKeyField": "room",
            "hashKeyValue": "${room}",
            "rangeKeyField": "ts",
            "rangeKeyValue": "${ts}",
            "rangeKeyType": "NUMBER",
            **fields,
        }
    }


RULES: dict[str, dict[str, Any]] = {
    "RoomRepublish": {
        "sql": "SELECT *, clientid() AS sender FROM 'chat/out' WHERE type = 'message'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [republish("chat/pub/${room}")],
        "errorAction": _errors("RoomRepublish"),
    },
    "RepublishOutsideRole": {
        "sql": "SELECT * FROM 'republish/outside'",
        "actions": [republish("elsewhere/out")],
        "errorAction": _errors("RepublishOutsideRole"),
    },
    "ToLambda": {
        "sql": "SELECT *, topic() AS t FROM 'lambda/in'",
        "actions": [{"lambda": {"functionArn": FN + f"{STACK}-record"}}],
        "errorAction": _errors("ToLambda"),
    },
    "ToFailingLambda": {
        "sql": "SELECT * FROM 'lambda/fail'",
        "actions": [{"lambda": {"functionArn": FN + f"{STACK}-fail"}}],
    },
    "MissingFunction": {
        "sql": "SELECT * FROM 'lambda/missing'",
        "actions": [{"lambda": {"functionArn": FN + f"{STACK}-nobody"}}],
        "errorAction": _errors("MissingFunction"),
    },
    "LambdaWithoutGrant": {
        "sql": "SELECT * FROM 'lambda/ungranted'",
        "actions": [{"lambda": {"functionArn": FN + "another-stack-record"}}],
        "errorAction": _errors("LambdaWithoutGrant"),
    },
    "Store": {
        "sql": "SELECT room, ts, text, clientid() AS sender FROM 'store/in'",
        "actions": [{"dynamoDBv2": {"roleArn": STORE_ROLE, "putItem": {"tableName": TABLE}}}],
        "errorAction": _errors("Store"),
    },
    "StoreWithoutPermission": {
        "sql": "SELECT room, ts, text FROM 'store/refused'",
        "actions": [{"dynamoDBv2": {"roleArn": REPUBLISH_ROLE, "putItem": {"tableName": TABLE}}}],
        "errorAction": _errors("StoreWithoutPermission"),
    },
    "Enrich": {
        "sql": "SELECT aws_lambda('" + FN + f"{STACK}-echo', {{'n': n}}).n AS echoed, "
        f"get_dynamodb('{TABLE}', 'room', room, 'ts', ts, '{TABLES_ROLE}').text AS stored "
        "FROM 'enrich/in'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [republish("chat/in/enrich/out")],
    },
    "StoreV1": {
        "sql": "SELECT text, clientid() AS sender FROM 'store/v1'",
        "actions": [_dynamodb_v1(payloadField="message")],
        "errorAction": _errors("StoreV1"),
    },
    "DeleteV1WithoutPermission": {
        "sql": "SELECT * FROM 'store/v1-delete'",
        "actions": [_dynamodb_v1(operation="DELETE")],
        "errorAction": _errors("DeleteV1WithoutPermission"),
    },
    "MissingTable": {
        "sql": "SELECT * FROM 'store/missing'",
        "actions": [
            {"dynamoDBv2": {"roleArn": TABLES_ROLE, "putItem": {"tableName": MISSING_TABLE}}}
        ],
        "errorAction": _errors("MissingTable"),
    },
    "UnknownRole": {
        "sql": "SELECT * FROM 'republish/unknown-role'",
        "actions": [
            {
                "republish": {
                    "roleArn": f"arn:aws:iam::{ACCOUNT}:role/no-such-role",
                    "topic": "chat/pub/unknown-role",
                }
            }
        ],
        "errorAction": _errors("UnknownRole"),
    },
    "Stream": {
        "sql": "SELECT * FROM 'stream/in'",
        "actions": [
            {"kinesis": {"roleArn": STREAM_ROLE, "streamName": STREAM, "partitionKey": "${id}"}}
        ],
        "errorAction": _errors("Stream"),
    },
    "StreamWithoutPermission": {
        "sql": "SELECT * FROM 'stream/refused'",
        "actions": [{"kinesis": {"roleArn": STORE_ROLE, "streamName": STREAM}}],
        "errorAction": _errors("StreamWithoutPermission"),
    },
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("rules-stack")
    records = root / "records"
    records.mkdir()
    manifest = {
        "functions": [
            {
                "name": f"{STACK}-record",
                "handler": "tests.infra.local.rules.handlers.record_event",
                "environment": {"RECORD_FILE": str(records / "record.jsonl")},
            },
            {"name": f"{STACK}-echo", "handler": "tests.infra.local.rules.handlers.echo"},
            {
                "name": f"{STACK}-fail",
                "handler": "tests.infra.local.rules.handlers.always_fail",
                "environment": {"RECORD_FILE": str(records / "fail.jsonl")},
            },
        ],
        "tables": [keyed_table(TABLE, ("room", "S"), ("ts", "N"))],
        "streams": [{"StreamName": STREAM, "ShardCount": 1}],
    }
    options = stack_options(
        root / "state",
        rules_dir=write_rules(root, RULES),
        manifest=write_manifest(root, manifest),
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
    path = failures_path(local.stack.state_dir, f"{STACK}-fail")

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
    client.subscribe("chat/in/errors/MissingFunction")
    client.publish("lambda/missing", {"n": 1})
    wait_for(lambda: client.json_on("chat/in/errors/MissingFunction"), 10)
    [error] = client.json_on("chat/in/errors/MissingFunction")
    assert error["ruleName"] == "MissingFunction"
    assert error["clientId"] == client.client_id
    [failure] = error["failures"]
    assert failure["failedAction"] == "LambdaAction"
    assert failure["failedResource"] == FN + f"{STACK}-nobody"


def test_dynamodbv2_action_writes_the_row(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    client.publish("store/in", {"room": room, "ts": 1700000000123, "text": "stored"})
    dynamodb = local.client("dynamodb")

    def stored() -> list[dict[str, Any]]:
        return dynamodb.query(
            TableName=TABLE,
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
    client.subscribe("chat/in/errors/MissingTable")
    client.publish("store/missing", {"room": "x"})
    wait_for(lambda: client.json_on("chat/in/errors/MissingTable"), 10)
    [error] = client.json_on("chat/in/errors/MissingTable")
    [failure] = error["failures"]
    assert failure["failedAction"] == "DynamoDBv2Action"
    assert failure["failedResource"] == MISSING_TABLE
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
        TableName=TABLE,
        Item={"room": {"S": room}, "ts": {"N": "5"}, "text": {"S": "from the table"}},
    )
    client.subscribe("chat/in/enrich/out")
    client.publish("enrich/in", {"n": 41, "room": room, "ts": 5})
    wait_for(lambda: client.json_on("chat/in/enrich/out"), 15)
    assert client.json_on("chat/in/enrich/out") == [{"echoed": 41, "stored": "from the table"}]


def test_dynamodb_v1_action_writes_keys_and_payload_column(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    client.publish("store/v1", {"room": room, "ts": 42, "text": "v1"})
    dynamodb = local.client("dynamodb")

    def stored() -> dict[str, Any] | None:
        key = {"room": {"S": room}, "ts": {"N": "42"}}
        return dynamodb.get_item(TableName=TABLE, Key=key).get("Item")

    item = wait_for(stored, 10)
    assert item["message"] == {"M": {"text": {"S": "v1"}, "sender": {"S": client.client_id}}}


# ---------------------------------------------------------------- each action acts as its role


def _only_failure(client: Recorder, rule: str) -> dict[str, Any]:
    """The one failure the rule's error action reported (waits for it)."""
    topic = f"chat/in/errors/{rule}"
    wait_for(lambda: client.json_on(topic), 10)
    [error] = client.json_on(topic)
    assert error["ruleName"] == rule
    assert error["clientId"] == client.client_id
    [failure] = error["failures"]
    return failure


def _denied(role: str, rule: str, action: str, resource: str) -> str:
    return (
        f"AccessDeniedException: User: arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-{role}/"
        f"{rule} is not authorized to perform: {action} on resource: {resource} because no "
        f"identity-based policy allows the {action} action"
    )


def test_republish_outside_its_role_fires_the_error_action_instead(local, client):
    client.subscribe("elsewhere/out")
    client.subscribe("chat/in/errors/RepublishOutsideRole")
    client.publish("republish/outside", {"n": 1})
    failure = _only_failure(client, "RepublishOutsideRole")
    assert failure == {
        "failedAction": "RepublishAction",
        "failedResource": "elsewhere/out",
        "errorMessage": _denied(
            "rule-republish",
            "RepublishOutsideRole",
            "iot:Publish",
            f"arn:aws:iot:{NAMES['region']}:{ACCOUNT}:topic/elsewhere/out",
        ),
    }
    assert client.on("elsewhere/out") == []
    # Beside it, the room rule's role allows its topic (test_republish_rule_delivers_...).


def test_unknown_role_fails_the_action(local, client):
    client.subscribe("chat/pub/unknown-role")
    client.subscribe("chat/in/errors/UnknownRole")
    client.publish("republish/unknown-role", {"n": 1})
    failure = _only_failure(client, "UnknownRole")
    assert failure["failedAction"] == "RepublishAction"
    assert "no-such-role" in failure["errorMessage"]
    assert client.on("chat/pub/unknown-role") == []


def test_store_without_put_item_fires_the_error_action_and_stores_nothing(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    client.subscribe("chat/in/errors/StoreWithoutPermission")
    client.publish("store/refused", {"room": room, "ts": 7, "text": "refused"})
    failure = _only_failure(client, "StoreWithoutPermission")
    table_arn = f"arn:aws:dynamodb:{NAMES['region']}:{ACCOUNT}:table/{TABLE}"
    assert failure == {
        "failedAction": "DynamoDBv2Action",
        "failedResource": TABLE,
        "errorMessage": _denied(
            "rule-republish", "StoreWithoutPermission", "dynamodb:PutItem", table_arn
        ),
    }
    key = {"room": {"S": room}, "ts": {"N": "7"}}
    assert "Item" not in local.client("dynamodb").get_item(TableName=TABLE, Key=key)
    # Beside it, the store rule's role writes the same table (test_dynamodbv2_action_writes...).


def test_dynamodb_v1_delete_needs_delete_item(local, client):
    room = f"room-{uuid.uuid4().hex[:6]}"
    key = {"room": {"S": room}, "ts": {"N": "9"}}
    dynamodb = local.client("dynamodb")
    dynamodb.put_item(TableName=TABLE, Item={**key, "text": {"S": "kept"}})
    client.subscribe("chat/in/errors/DeleteV1WithoutPermission")
    client.publish("store/v1-delete", {"room": room, "ts": 9})
    failure = _only_failure(client, "DeleteV1WithoutPermission")
    assert failure["failedAction"] == "DynamoDBAction"
    assert "is not authorized to perform: dynamodb:DeleteItem" in failure["errorMessage"]
    assert dynamodb.get_item(TableName=TABLE, Key=key)["Item"]["text"] == {"S": "kept"}


def test_lambda_without_the_functions_grant_fires_the_error_action(local, client):
    client.subscribe("chat/in/errors/LambdaWithoutGrant")
    client.publish("lambda/ungranted", {"n": 1})
    failure = _only_failure(client, "LambdaWithoutGrant")
    assert failure == {
        "failedAction": "LambdaAction",
        "failedResource": FN + "another-stack-record",
        "errorMessage": "AccessDeniedException: User: iot.amazonaws.com is not authorized to "
        f"perform: lambda:InvokeFunction on resource: {FN}another-stack-record because no "
        "resource-based policy allows the lambda:InvokeFunction action",
    }


def _stream_records(local: InProcessStack) -> list[dict[str, Any]]:
    kinesis = local.client("kinesis")
    shard = kinesis.describe_stream(StreamName=STREAM)["StreamDescription"]["Shards"][0]
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return kinesis.get_records(ShardIterator=iterator)["Records"]


def test_kinesis_action_puts_as_its_role_and_a_role_without_put_record_is_refused(local, client):
    marker = str(uuid.uuid4())
    client.subscribe("chat/in/errors/StreamWithoutPermission")
    client.publish("stream/refused", {"id": "refused", "marker": marker})
    client.publish("stream/in", {"id": "k1", "marker": marker})

    def put() -> list[dict[str, Any]]:
        return [r for r in _stream_records(local) if marker.encode() in r["Data"]]

    [record] = wait_for(put, 10)
    assert record["PartitionKey"] == "k1"
    failure = _only_failure(client, "StreamWithoutPermission")
    assert failure["failedAction"] == "KinesisAction"
    assert failure["failedResource"] == STREAM
    assert failure["errorMessage"].startswith("AccessDeniedException: User: ")
    assert "is not authorized to perform: kinesis:PutRecord" in failure["errorMessage"]
    assert [r["PartitionKey"] for r in put()] == ["k1"]
