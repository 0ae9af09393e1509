"""Rule actions act as their roleArn: IAM decisions for each action's role session, unit level.

Each refusal sits beside the action the same role may do. The stack-level scenarios (real
clients, the error action's message) are in ``test_rules_stack.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from infra.local.iam import AccessDenied, IamAuthorizer, Roles, RoleSessions
from infra.local.iam.sessions import Renewal
from infra.local.identity import Credential
from infra.local.rules.access import FunctionAccessDenied, RuleAccess, UnknownRole
from infra.local.rules.actions import (
    ActionFailed,
    DynamoDBAction,
    DynamoDBv2Action,
    LambdaAction,
    RepublishAction,
    RuleServices,
    build_action,
)
from iot_rules.sql import Result, SqlMessage
from tests.support.clock import Clock

REGION, ACCOUNT, STACK = "us-east-1", "000000000000", "iotchat"
REPUBLISH = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-rule-republish"
STORE = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-rule-dynamodb"
MESSAGES = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-messages"
STATE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-state"
FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issued() -> list[Credential]:
    return []


@pytest.fixture
def access(clock: Clock, issued: list[Credential]) -> RuleAccess:
    roles = Roles(region=REGION, account=ACCOUNT, stack=STACK)
    sessions = RoleSessions(issued.append, lifetime=3600, clock=clock)
    return RuleAccess(roles, IamAuthorizer(roles), sessions, renewal=Renewal(300, clock))


def topic(name: str) -> str:
    return f"arn:aws:iot:{REGION}:{ACCOUNT}:topic/{name}"


def test_republish_role_publishes_to_rooms_but_not_elsewhere(access):
    access.check(REPUBLISH, "room_rule", "iot:Publish", topic("chat/pub/lobby"))
    with pytest.raises(AccessDenied) as refused:
        access.check(REPUBLISH, "room_rule", "iot:Publish", topic("chat/out"))
    assert str(refused.value) == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-rule-republish/room_rule is not "
        f"authorized to perform: iot:Publish on resource: {topic('chat/out')} because no "
        "identity-based policy allows the iot:Publish action"
    )


def test_store_role_puts_into_messages_only(access):
    access.check(STORE, "store", "dynamodb:PutItem", MESSAGES)
    with pytest.raises(AccessDenied):
        access.check(STORE, "store", "dynamodb:PutItem", STATE)
    with pytest.raises(AccessDenied):
        access.check(STORE, "store", "dynamodb:DeleteItem", MESSAGES)


def test_an_unknown_role_cannot_be_assumed(access):
    with pytest.raises(UnknownRole):
        access.check(f"arn:aws:iam::{ACCOUNT}:role/nobody", "r", "iot:Publish", topic("x"))


def test_decisions_are_remembered_until_the_policies_change(access):
    evaluator = access.iam.evaluator
    access.check(STORE, "store", "dynamodb:PutItem", MESSAGES)
    asked = evaluator.hits + evaluator.misses
    for _ in range(100):
        access.check(STORE, "store", "dynamodb:PutItem", MESSAGES)
    assert evaluator.hits + evaluator.misses == asked  # the authorizer was not asked again
    access.iam.invalidate()
    access.check(STORE, "store", "dynamodb:PutItem", MESSAGES)
    assert evaluator.hits + evaluator.misses == asked + 1


def test_lambda_grant_covers_the_stacks_functions_only(access):
    access.check_invoke(FUNCTION + f"{STACK}-commands", "chat_commands")
    with pytest.raises(FunctionAccessDenied, match="no resource-based policy allows"):
        access.check_invoke(FUNCTION + "someone-elses-function", "chat_commands")


def test_role_session_credentials_are_reused_then_renewed_before_expiry(access, clock, issued):
    first = access.credentials(STORE, "store")
    assert first.principal.identifier == STORE
    assert first.access_key_id.startswith("ASIA") and first.session_token
    assert access.credentials(STORE, "store") is first
    assert access.credentials(STORE, "other") is not first  # a session per rule
    clock.now += 3600 - 299  # inside the renewal margin
    renewed = access.credentials(STORE, "store")
    assert renewed.access_key_id != first.access_key_id
    assert issued == [first, issued[1], renewed]  # every session is registered
    with pytest.raises(UnknownRole):
        access.credentials(f"arn:aws:iam::{ACCOUNT}:role/nobody", "store")


# ---------------------------------------------------------------- actions


class Calls:
    def __init__(self) -> None:
        self.published: list[str] = []
        self.json: list[tuple[str, str, dict[str, Any]]] = []

    def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.published.append(topic)

    async def aws_json(self, service: str, operation: str, body: dict[str, Any]) -> dict:
        self.json.append((service, operation, body))
        return {}


def services(access: RuleAccess, calls: Calls) -> RuleServices:
    return RuleServices(publish=calls.publish, aws_json=calls.aws_json, access=access)


RESULT = Result(value={"conv": "room#lobby", "text": "hi"}, raw=None)
MSG = SqlMessage(topic="chat/pub/lobby", payload=b"{}")


def test_republish_action_refused_publishes_nothing(access):
    calls = Calls()
    allowed = build_action({"republish": {"roleArn": REPUBLISH, "topic": "chat/pub/x"}}, None, "r")
    refused = build_action({"republish": {"roleArn": STORE, "topic": "chat/pub/x"}}, None, "r")
    assert isinstance(allowed, RepublishAction) and isinstance(refused, RepublishAction)
    allowed.publish_now(RESULT, MSG, services(access, calls))
    with pytest.raises(ActionFailed) as failed:
        refused.publish_now(RESULT, MSG, services(access, calls))
    assert calls.published == ["chat/pub/x"]
    assert failed.value.action == "RepublishAction"
    assert failed.value.resource == "chat/pub/x"
    assert failed.value.message.startswith(
        f"AccessDeniedException: User: arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-rule-dynamodb/r"
    )


def test_dynamodbv2_action_refused_never_reaches_the_table(access):
    calls = Calls()

    def action(role: str, table: str) -> DynamoDBv2Action:
        spec = {"dynamoDBv2": {"roleArn": role, "putItem": {"tableName": table}}}
        built = build_action(spec, None, "store")
        assert isinstance(built, DynamoDBv2Action)
        return built

    asyncio.run(action(STORE, f"{STACK}-messages").run(RESULT, MSG, services(access, calls)))
    with pytest.raises(ActionFailed) as failed:
        asyncio.run(action(STORE, f"{STACK}-state").run(RESULT, MSG, services(access, calls)))
    assert [(op, body["TableName"]) for _, op, body in calls.json] == [
        ("PutItem", f"{STACK}-messages")
    ]
    assert failed.value.resource == f"{STACK}-state"
    assert f"dynamodb:PutItem on resource: {STATE}" in failed.value.message


def test_dynamodb_v1_delete_needs_delete_item_and_insert_put_item(access):
    calls = Calls()

    def action(operation: str) -> DynamoDBAction:
        spec = {
            "dynamoDB": {
                "roleArn": STORE,
                "tableName": f"{STACK}-messages",
                "hashKeyField": "conv",
                "hashKeyValue": "${conv}",
                "operation": operation,
            }
        }
        built = build_action(spec, "2016-03-23", "v1")
        assert isinstance(built, DynamoDBAction)
        return built

    asyncio.run(action("INSERT").run(RESULT, MSG, services(access, calls)))
    with pytest.raises(ActionFailed, match="dynamodb:DeleteItem"):
        asyncio.run(action("DELETE").run(RESULT, MSG, services(access, calls)))
    assert [op for _, op, _ in calls.json] == ["PutItem"]


def test_lambda_action_refused_without_the_functions_grant(access):
    invoked: list[str] = []

    def invoke_async(arn: str, event: Any) -> str:
        invoked.append(arn)
        return "request-id"

    svc = RuleServices(publish=lambda *a, **k: None, invoke_async=invoke_async, access=access)
    granted = LambdaAction({"functionArn": FUNCTION + f"{STACK}-commands"}, None)
    granted.bind({}, "chat_commands")
    asyncio.run(granted.run(RESULT, MSG, svc))
    other = LambdaAction({"functionArn": FUNCTION + "elsewhere"}, None)
    other.bind({}, "chat_commands")
    with pytest.raises(ActionFailed, match="lambda:InvokeFunction"):
        asyncio.run(other.run(RESULT, MSG, svc))
    assert invoked == [FUNCTION + f"{STACK}-commands"]
