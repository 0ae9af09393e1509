"""DynamoDB on the local stack: dynalite behind the edge API, data kept across restarts.

``iotchat up`` runs as a subprocess, exactly as a user starts it; boto3 talks to the edge API
endpoint from the stack file with the admin credentials, as the chat's Lambdas will.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from infra.local.dynamodb import DynamoDBLocal, DynamoDBStartError
from tests.infra.local.stack_process import is_alive, live_children, running_stack
from tests.support.waiting import wait_for

TABLE = "chat-history"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0


def _admin(info: dict[str, Any]) -> dict[str, str]:
    """boto3's keyword arguments for the stack file's edge endpoint and admin key."""
    return {
        "endpoint_url": info["api"]["endpoint"],
        "region_name": info["region"],
        "aws_access_key_id": info["admin"]["accessKeyId"],
        "aws_secret_access_key": info["admin"]["secretAccessKey"],
    }


def _client(info: dict[str, Any], service: str = "dynamodb") -> Any:
    return boto3.client(service, **_admin(info))


def _table(info: dict[str, Any]) -> Any:
    return boto3.resource("dynamodb", **_admin(info)).Table(TABLE)


def _create_history_table(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "room", "KeyType": "HASH"},
            {"AttributeName": "ts", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "room", "AttributeType": "S"},
            {"AttributeName": "ts", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(
        TableName=TABLE, WaiterConfig={"Delay": 1, "MaxAttempts": 10}
    )


def _room_texts(info: dict[str, Any], room: str) -> list[str]:
    """Newest first, as the chat's history pages are read."""
    items = _table(info).query(KeyConditionExpression=Key("room").eq(room), ScanIndexForward=False)
    return [item["text"] for item in items["Items"]]


def test_items_survive_a_restart_and_dynalite_stops_with_the_stack(tmp_path: Path):
    state_dir = tmp_path / "state"
    with running_stack(state_dir) as (proc, info):
        assert info["dynamodb"]["endpoint"] == info["api"]["endpoint"]
        (dynalite,) = live_children(proc.pid, "node_modules/dynalite")
        client = _client(info)
        _create_history_table(client)
        for ts, room, text in [(1, "lobby", "hi"), (2, "lobby", "hello"), (3, "dev", "ship it")]:
            client.put_item(
                TableName=TABLE,
                Item={"room": {"S": room}, "ts": {"N": str(ts)}, "text": {"S": text}},
            )
        assert _room_texts(info, "lobby") == ["hello", "hi"]
        _stop(proc)
        assert not is_alive(dynalite)

    with running_stack(state_dir) as (proc, info):
        assert TABLE in _client(info).list_tables()["TableNames"]
        assert _room_texts(info, "lobby") == ["hello", "hi"]
        assert _room_texts(info, "dev") == ["ship it"]
        _stop(proc)


def test_dynalite_does_not_outlive_a_killed_stack(tmp_path: Path):
    with running_stack(tmp_path / "state") as (proc, _):
        (dynalite,) = live_children(proc.pid, "node_modules/dynalite")
        proc.kill()  # no chance to stop its children: the kernel tells dynalite instead
        proc.wait(10)
        wait_for(lambda: not is_alive(dynalite), timeout=10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_stack(tmp_path_factory.mktemp("ddb") / "state") as (_, info):
        _create_history_table(_client(info))
        yield info


def test_health_reports_dynamodb(stack):
    with urllib.request.urlopen(stack["api"]["endpoint"] + "/_iotchat/health", timeout=5) as resp:
        body = json.loads(resp.read())
    assert resp.status == 200
    assert body["components"]["dynamodb"] == "ok"
    assert set(body["components"].values()) == {"ok"}


def test_dynamodb_errors_reach_boto3_as_aws_errors(stack):
    client = _client(stack)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_item(TableName="no-such-table", Key={"room": {"S": "x"}})
    item = {"room": {"S": "errors"}, "ts": {"N": "1"}, "text": {"S": "first"}}
    client.put_item(TableName=TABLE, Item=item)
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=TABLE, Item=item, ConditionExpression="attribute_not_exists(room)"
        )
    with pytest.raises(client.exceptions.ClientError) as exc:
        client.put_item(TableName=TABLE, Item={"room": {"S": "no sort key"}})
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_batch_writes_and_numbers_keep_their_precision(stack):
    client = _client(stack)
    requests = [
        {
            "PutRequest": {
                "Item": {
                    "room": {"S": "batch"},
                    "ts": {"N": str(ts)},
                    "text": {"S": f"m{ts}"},
                    "price": {"N": "0.10000000000000000000000000000000000001"},
                }
            }
        }
        for ts in range(25)
    ]
    assert client.batch_write_item(RequestItems={TABLE: requests})["UnprocessedItems"] == {}
    page = _table(stack).query(KeyConditionExpression=Key("room").eq("batch"), Limit=10)
    assert len(page["Items"]) == 10 and "LastEvaluatedKey" in page
    assert page["Items"][0]["price"] == Decimal("0.10000000000000000000000000000000000001")


def test_aws_endpoint_url_and_admin_keys_reach_the_stack(stack, monkeypatch):
    """How a Lambda reaches the stack: only environment variables, no endpoint_url."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack["api"]["endpoint"])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    session = boto3.session.Session()
    assert TABLE in session.client("dynamodb").list_tables()["TableNames"]
    response = session.client("iot-data").publish(topic="chat/in/someone", payload=b"{}")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_a_missing_dynalite_install_is_a_clear_error(tmp_path: Path):
    import asyncio

    local = DynamoDBLocal(tmp_path / "data", tmp_path / "dynamodb.log", root=tmp_path)
    with pytest.raises(DynamoDBStartError, match="scripts/setup"):
        asyncio.run(local.start())
    assert not local.running
