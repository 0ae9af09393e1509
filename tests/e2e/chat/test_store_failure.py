"""When a room message cannot be stored, the sender hears about it and the operator can read
why: the store rule's errorAction, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from infra.local.lambda_runtime import log_path
from tests.e2e.chat.conftest import People, room_topic, unique
from tests.support.stack import run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)


def test_a_failed_store_is_reported_to_the_sender_and_logged(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with run_stack_in_thread(stack_options(state)) as stack:
        crowd = People(stack)
        try:
            ada = crowd.connect("Ada")
            room = unique("room")
            assert ada.subscribe(room_topic(room)) == [1]
            stored = ada.say(room, "this one is kept")
            ada.wait_for_message(room_topic(room), lambda m: m.get("id") == stored, "a message")
            wait_for(lambda: ada.history("room", room)["messages"], 10, 0.05)  # stored

            # The operator (admin key from the stack file) deletes the messages table.
            info = json.loads((state / "stack.json").read_text())
            dynamodb = boto3.client(
                "dynamodb",
                endpoint_url=info["dynamodb"]["endpoint"],
                region_name=info["region"],
                aws_access_key_id=info["admin"]["accessKeyId"],
                aws_secret_access_key=info["admin"]["secretAccessKey"],
            )
            table = f"{info['stackName']}-messages"
            dynamodb.delete_table(TableName=table)
            wait_for(lambda: table not in dynamodb.list_tables()["TableNames"], 10, 0.05)

            lost = ada.say(room, "this one cannot be stored")
            # The room still hears it (republish does not depend on the store)...
            ada.wait_for_message(room_topic(room), lambda m: m.get("id") == lost, "the message")
            # ...and the sender is told that it was not stored, naming the message.
            error = ada.wait_error("STORE_FAILED", ref=lost)
            assert error["v"] == 1 and error["message"]
            assert [(e["code"], e.get("ref")) for e in ada.errors()] == [("STORE_FAILED", lost)]

            log = log_path(state, f"{info['stackName']}-rule-errors")

            def logged() -> str | None:
                text = log.read_text() if log.exists() else ""
                return text if lost in text else None

            text = wait_for(logged, 10, 0.05)
            line = next(line for line in text.splitlines() if lost in line)
            record = json.loads(line.split("rule action failed: ", 1)[1])
            assert record["ruleName"] == "chat_room_store"
            assert (record["ref"], record["sender"]) == (lost, ada.client_id)
            assert record["topic"] == room_topic(room)
            (failure,) = record["failures"]
            assert (failure["failedAction"], failure["failedResource"]) == (
                "DynamoDBv2Action",
                table,
            )
            assert "cannot be stored" not in text  # the message text stays out of the log
        finally:
            crowd.close()
