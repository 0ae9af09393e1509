"""Rule actions act as their roleArn (the issue's acceptance item 3), on a real stack.

A guest chats over a SigV4 WebSocket (awsiotsdk) on a stack whose test rules act as the
project's roles (``policies/iam/rule-*.json``). Each rule the role allows does its work; each
rule whose role lacks the permission does nothing and fires its errorAction instead, with
AWS's error message (https://docs.aws.amazon.com/iot/latest/developerguide/rule-error-handling.html),
which the errorAction republishes to the sender's inbox:

- republish needs ``iot:Publish`` on the target topic: ``rule-republish`` may publish to
  ``chat/pub/<room>``; ``rule-dynamodb`` may not;
- dynamoDBv2 needs ``dynamodb:PutItem`` on the table: ``rule-dynamodb`` may write
  ``<stack>-messages``, not ``<stack>-state``.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import awscrt.mqtt
import pytest

from lambdas.manifest import MANIFEST_PATH
from policies.render import LOCAL_NAMES
from tests.support.cognito import guest_credentials, wss_connection
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.stack_files import republish, write_manifest, write_rules
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 10.0

REGION, ACCOUNT, STACK = LOCAL_NAMES["region"], LOCAL_NAMES["account"], LOCAL_NAMES["stack"]
REPUBLISH_ROLE = "arn:aws:iam::{account}:role/{stack}-rule-republish"
STORE_ROLE = "arn:aws:iam::{account}:role/{stack}-rule-dynamodb"
MESSAGE = "FROM 'chat/out' WHERE type = 'message'"
# Every rule reports its failures to the sender's inbox, as the republish role may.
TO_INBOX = {"republish": {"roleArn": REPUBLISH_ROLE, "topic": "chat/in/${clientid()}"}}


def _rule(sql: str, action: dict[str, Any]) -> dict[str, Any]:
    return {
        "sql": sql,
        "awsIotSqlVersion": "2016-03-23",
        "actions": [action],
        "errorAction": TO_INBOX,
    }


RULES = {
    # Allowed: the room republish, as the chat's own rule does it.
    "room_republish": _rule(
        f"SELECT *, clientid() AS sender {MESSAGE}",
        republish("chat/pub/${room}", role=REPUBLISH_ROLE),
    ),
    # Refused: the store rule's role may not publish anywhere.
    "room_copy_as_store_role": _rule(
        f"SELECT *, clientid() AS sender {MESSAGE}",
        republish("chat/pub/${room}-copy", role=STORE_ROLE),
    ),
    # Allowed: the messages table, as the chat's chat_room_store does it.
    "store_message": _rule(
        "SELECT concat('room#', room) AS conv, concat(clientid(), '|', id) AS mid, body " + MESSAGE,
        {"dynamoDBv2": {"roleArn": STORE_ROLE, "putItem": {"tableName": "{stack}-messages"}}},
    ),
    # Refused: the same role may not write the state table.
    "store_state": _rule(
        f"SELECT concat('test#', room) AS pk, id AS sk, body {MESSAGE}",
        {"dynamoDBv2": {"roleArn": STORE_ROLE, "putItem": {"tableName": "{stack}-state"}}},
    ),
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("rule-roles")
    # The chat's own tables, and no functions: nothing but the rules acts.
    tables = json.loads(MANIFEST_PATH.read_text())["tables"]
    manifest = write_manifest(root, {"functions": [], "tables": tables})
    options = stack_options(root / "state", rules_dir=write_rules(root, RULES), manifest=manifest)
    with run_stack_in_thread(options) as s:
        yield s


class Guest:
    """A guest on a SigV4 WebSocket that keeps what arrives, by topic."""

    def __init__(self, stack: InProcessStack) -> None:
        self.client_id, creds = guest_credentials(stack)
        self.connection = wss_connection(stack, self.client_id, creds, endpoint="localhost")
        self.connection.connect().result(TIMEOUT)
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict[str, Any]]] = []

    def _on_message(self, topic: str, payload: bytes, **_: Any) -> None:
        with self.lock:
            self.received.append((topic, json.loads(payload)))

    def subscribe(self, topic: str) -> None:
        future, _ = self.connection.subscribe(
            topic, awscrt.mqtt.QoS.AT_LEAST_ONCE, self._on_message
        )
        assert future.result(TIMEOUT)["qos"] == awscrt.mqtt.QoS.AT_LEAST_ONCE

    def say(self, room: str, text: str) -> dict[str, Any]:
        message = {"type": "message", "id": str(uuid.uuid4()), "room": room, "body": text}
        future, _ = self.connection.publish(
            "chat/out", json.dumps(message), awscrt.mqtt.QoS.AT_LEAST_ONCE
        )
        future.result(TIMEOUT)
        return message

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for t, body in self.received if t == topic]

    def error_of(self, rule: str) -> dict[str, Any] | None:
        """The error action's message from ``rule`` on the inbox, if it came."""
        for body in self.on(f"chat/in/{self.client_id}"):
            if body.get("ruleName") == rule:
                return body
        return None

    def close(self) -> None:
        self.connection.disconnect().result(TIMEOUT)


@pytest.fixture
def guest(stack: InProcessStack) -> Iterator[Guest]:
    g = Guest(stack)
    g.subscribe(f"chat/in/{g.client_id}")
    yield g
    g.close()


def _denied(role: str, rule: str, action: str, resource: str) -> str:
    return (
        f"AccessDeniedException: User: arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-{role}/"
        f"{rule} is not authorized to perform: {action} on resource: {resource} because no "
        f"identity-based policy allows the {action} action"
    )


def test_republish_without_iot_publish_fires_the_error_action_instead(guest):
    room = f"roles-{uuid.uuid4().hex[:8]}"
    guest.subscribe(f"chat/pub/{room}")
    guest.subscribe(f"chat/pub/{room}-copy")
    message = guest.say(room, "hello")

    # The rule whose role allows the topic publishes.
    wait_for(lambda: guest.on(f"chat/pub/{room}"), TIMEOUT)
    assert guest.on(f"chat/pub/{room}") == [{**message, "sender": guest.client_id}]
    # The one whose role does not fires its error action, with AWS's payload.
    error = wait_for(lambda: guest.error_of("room_copy_as_store_role"), TIMEOUT)
    assert error["topic"] == "chat/out"
    assert error["clientId"] == guest.client_id
    assert json.loads(base64.b64decode(error["base64OriginalPayload"])) == message
    assert error["failures"] == [
        {
            "failedAction": "RepublishAction",
            "failedResource": f"chat/pub/{room}-copy",
            "errorMessage": _denied(
                "rule-dynamodb",
                "room_copy_as_store_role",
                "iot:Publish",
                f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/chat/pub/{room}-copy",
            ),
        }
    ]
    assert guest.on(f"chat/pub/{room}-copy") == []
    # The allowed rule reported nothing.
    assert guest.error_of("room_republish") is None


def test_dynamodbv2_without_put_item_fires_the_error_action_and_stores_nothing(stack, guest):
    room = f"roles-{uuid.uuid4().hex[:8]}"
    message = guest.say(room, "keep me")
    dynamodb = stack.client("dynamodb")

    # The rule whose role may write the messages table stores the message.
    key = {"conv": {"S": f"room#{room}"}, "mid": {"S": f"{guest.client_id}|{message['id']}"}}

    def stored() -> dict[str, Any] | None:
        return dynamodb.get_item(TableName=f"{STACK}-messages", Key=key).get("Item")

    assert wait_for(stored, TIMEOUT)["body"] == {"S": "keep me"}
    # The one writing the state table with the same role is refused and reports it.
    error = wait_for(lambda: guest.error_of("store_state"), TIMEOUT)
    assert error["failures"] == [
        {
            "failedAction": "DynamoDBv2Action",
            "failedResource": f"{STACK}-state",
            "errorMessage": _denied(
                "rule-dynamodb",
                "store_state",
                "dynamodb:PutItem",
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-state",
            ),
        }
    ]
    state_key = {"pk": {"S": f"test#{room}"}, "sk": {"S": message["id"]}}
    assert "Item" not in dynamodb.get_item(TableName=f"{STACK}-state", Key=state_key)
    assert guest.error_of("store_message") is None
