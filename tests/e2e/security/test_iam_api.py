"""IAM on the API endpoint: DynamoDB and Kinesis with a guest's, a user's, a made-up or a
mis-signed key, as an attacker with boto3 would try them, each refused as AWS refuses it.

| caller (param id)  | every DynamoDB / Kinesis operation below       |
|--------------------|------------------------------------------------|
| guest              | AccessDeniedException, AWS's "User: ... is not authorized" message |
| signed-in          | AccessDeniedException, the same message with the user role |
| unknown-key        | UnrecognizedClientException                    |
| bad-signature      | InvalidSignatureException (the admin key, a wrong secret) |
| admin (test/test)  | allowed: the same operations on a scratch table and stream |

Beside them: a Lambda role session reads the chat's stream (GetShardIterator, GetRecords with
each NextShardIterator) and publishes with iot-data where its role allows it, and is refused
elsewhere; an expired role session gets ExpiredTokenException; a body other than the signed one
(or declared ``UNSIGNED-PAYLOAD``) is InvalidSignatureException and an unsigned request
MissingAuthenticationTokenException. Every refused call aims at the chat's own table and
stream, and none of them changes anything there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.local.identity import Credential
from tests.support.cognito import guest_credentials, signed_in_credentials
from tests.support.stack import InProcessStack, post_json, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

SHARD = "shardId-000000000000"
KEY = {"pk": {"S": "k"}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    with run_stack_in_thread(stack_options(tmp_path_factory.mktemp("iam-api") / "s")) as s:
        yield s


def _names(stack: InProcessStack) -> tuple[str, str]:
    """The chat's own messages table and stream."""
    name = stack.info["stackName"]
    return f"{name}-messages", f"{name}-stream"


@pytest.fixture(scope="module")
def leaked_iterator(stack: InProcessStack) -> str:
    """A shard iterator of the chat's stream, as if it had leaked from the backend."""
    _, stream = _names(stack)
    kinesis = stack.client("kinesis")
    answer = kinesis.get_shard_iterator(
        StreamName=stream, ShardId=SHARD, ShardIteratorType="TRIM_HORIZON"
    )
    return str(answer["ShardIterator"])


# What each operation is called with: (client, table or stream, iterator) -> call.
Call = Callable[[Any, str, str], Any]

DYNAMODB: dict[str, Call] = {
    "ListTables": lambda c, t, i: c.list_tables(),
    "Scan": lambda c, t, i: c.scan(TableName=t),
    "Query": lambda c, t, i: c.query(
        TableName=t,
        KeyConditionExpression="pk = :k",
        ExpressionAttributeValues={":k": {"S": "k"}},
    ),
    "GetItem": lambda c, t, i: c.get_item(TableName=t, Key=KEY),
    "PutItem": lambda c, t, i: c.put_item(TableName=t, Item={**KEY, "v": {"S": "forged"}}),
    "UpdateItem": lambda c, t, i: c.update_item(
        TableName=t,
        Key=KEY,
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "forged"}},
    ),
    "DeleteItem": lambda c, t, i: c.delete_item(TableName=t, Key=KEY),
    "DeleteTable": lambda c, t, i: c.delete_table(TableName=t),
    "CreateTable": lambda c, t, i: c.create_table(
        TableName=t,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    ),
}
KINESIS: dict[str, Call] = {
    "ListStreams": lambda c, s, i: c.list_streams(),
    "GetShardIterator": lambda c, s, i: c.get_shard_iterator(
        StreamName=s, ShardId=SHARD, ShardIteratorType="TRIM_HORIZON"
    ),
    "GetRecords": lambda c, s, i: c.get_records(ShardIterator=i),
    "PutRecord": lambda c, s, i: c.put_record(StreamName=s, Data=b"forged", PartitionKey="p"),
    "DeleteStream": lambda c, s, i: c.delete_stream(StreamName=s),
}
OPERATIONS = [("dynamodb", op) for op in DYNAMODB] + [("kinesis", op) for op in KINESIS]
UNSCOPED = {"ListTables", "ListStreams"}


def _resource(stack: InProcessStack, service: str, operation: str, name: str) -> str:
    if operation in UNSCOPED:
        return "*"
    region, account = stack.info["region"], stack.info["accountId"]
    kind = "table" if service == "dynamodb" else "stream"
    return f"arn:aws:{service}:{region}:{account}:{kind}/{name}"


def _call(
    stack: InProcessStack, service: str, operation: str, client: Any, iterator: str
) -> tuple[str, Any]:
    """Call ``operation`` on the chat's table or stream (CreateTable: a new name); return the
    name it aimed at and the answer."""
    table, stream = _names(stack)
    if operation == "CreateTable":
        table = f"attacker-{uuid.uuid4().hex[:8]}"
    name = table if service == "dynamodb" else stream
    calls = DYNAMODB if service == "dynamodb" else KINESIS
    return name, calls[operation](client, name, iterator)


def _refusal(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        call()
    response = refused.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"]["Message"],
    )


def _no_retries(client: Any) -> Any:
    client.meta.config.retries = {"max_attempts": 1}
    return client


@pytest.fixture(scope="module")
def identities(stack: InProcessStack) -> dict[str, dict[str, Any]]:
    """One guest's and one signed-in user's Cognito credentials."""
    return {"guest": guest_credentials(stack)[1], "signed-in": signed_in_credentials(stack)[1]}


ROLE_FILES = {"guest": "guest-role", "signed-in": "user-role"}


@pytest.mark.parametrize("who", ["guest", "signed-in"])
@pytest.mark.parametrize(("service", "operation"), OPERATIONS)
def test_cognito_identities_are_denied_with_awss_message(
    stack: InProcessStack,
    identities: dict[str, dict[str, Any]],
    leaked_iterator: str,
    who: str,
    service: str,
    operation: str,
) -> None:
    creds = identities[who]
    client = stack.client(service, creds["AccessKeyId"], creds["SecretKey"], creds["SessionToken"])
    aimed: list[str] = []

    def attempt() -> None:
        name, _ = _call(stack, service, operation, client, leaked_iterator)
        aimed.append(name)

    status, code, message = _refusal(attempt)
    role = f"{stack.info['stackName']}-{ROLE_FILES[who]}"
    caller = (
        f"arn:aws:sts::{stack.info['accountId']}:assumed-role/{role}/CognitoIdentityCredentials"
    )
    action = f"{service}:{operation}"
    assert (status, code) == (400, "AccessDeniedException")
    assert message.startswith(f"User: {caller} is not authorized to perform: {action} on ")
    if operation != "CreateTable":  # the attacker's new table name is made up inside _call
        table, stream = _names(stack)
        resource = _resource(stack, service, operation, table if service == "dynamodb" else stream)
        assert f"on resource: {resource} because no identity-based policy" in message


@pytest.mark.parametrize(
    ("who", "code"),
    [
        ("unknown-key", "UnrecognizedClientException"),
        ("bad-signature", "InvalidSignatureException"),
    ],
)
@pytest.mark.parametrize(("service", "operation"), OPERATIONS)
def test_unknown_keys_and_bad_signatures_are_refused(
    stack: InProcessStack, leaked_iterator: str, who: str, code: str, service: str, operation: str
) -> None:
    key, secret = ("AKIAUNKNOWN000000000", "made-up") if who == "unknown-key" else ("test", "x")
    client = _no_retries(stack.client(service, key, secret))
    status, got, _ = _refusal(lambda: _call(stack, service, operation, client, leaked_iterator))
    assert (status, got) == (400, code)


def test_the_admin_may_do_all_of_it_on_a_scratch_table_and_stream(stack: InProcessStack) -> None:
    dynamodb = stack.client("dynamodb")
    table = f"scratch-{uuid.uuid4().hex[:8]}"
    DYNAMODB["CreateTable"](dynamodb, table, "")
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.1})
    DYNAMODB["PutItem"](dynamodb, table, "")
    assert DYNAMODB["GetItem"](dynamodb, table, "")["Item"]["v"] == {"S": "forged"}
    DYNAMODB["UpdateItem"](dynamodb, table, "")
    assert DYNAMODB["Query"](dynamodb, table, "")["Count"] == 1
    assert DYNAMODB["Scan"](dynamodb, table, "")["Count"] == 1
    DYNAMODB["DeleteItem"](dynamodb, table, "")
    assert table in DYNAMODB["ListTables"](dynamodb, table, "")["TableNames"]
    DYNAMODB["DeleteTable"](dynamodb, table, "")

    kinesis = stack.client("kinesis")
    stream = f"scratch-{uuid.uuid4().hex[:8]}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.1})
    KINESIS["PutRecord"](kinesis, stream, "")
    iterator = KINESIS["GetShardIterator"](kinesis, stream, "")["ShardIterator"]
    records = KINESIS["GetRecords"](kinesis, stream, iterator)["Records"]
    assert [r["Data"] for r in records] == [b"forged"]
    assert stream in KINESIS["ListStreams"](kinesis, stream, "")["StreamNames"]
    KINESIS["DeleteStream"](kinesis, stream, "")
    # The chat's own table and stream are still there after every refused attempt.
    chat_table, chat_stream = _names(stack)
    assert chat_table in dynamodb.list_tables()["TableNames"]
    assert chat_stream in kinesis.list_streams()["StreamNames"]


# ---------------------------------------------------------------------- a Lambda's role


def _role_session(stack: InProcessStack, role_file: str, lifetime: float | None = None) -> Any:
    local = stack.stack
    role = local.roles.by_file(role_file)
    return stack.call(lambda: local.role_sessions.issue(role, "iam-api-test", lifetime))


def _client_for(stack: InProcessStack, service: str, credential: Credential) -> Any:
    return _no_retries(
        stack.client(
            service,
            credential.access_key_id,
            credential.secret_access_key,
            credential.session_token,
        )
    )


def test_a_lambda_role_reads_the_chats_stream_by_its_iterators_and_nothing_more(
    stack: InProcessStack,
) -> None:
    table, stream = _names(stack)
    session = _role_session(stack, "backend-lambda")
    kinesis = _client_for(stack, "kinesis", session)
    stack.client("kinesis").put_record(StreamName=stream, Data=b"typing", PartitionKey="p")
    iterator = KINESIS["GetShardIterator"](kinesis, stream, "")["ShardIterator"]
    seen: list[bytes] = []
    for _ in range(3):  # each NextShardIterator is known to belong to the chat's stream
        answer = kinesis.get_records(ShardIterator=iterator)
        seen += [record["Data"] for record in answer["Records"]]
        iterator = answer["NextShardIterator"]
    assert b"typing" in seen
    status, code, message = _refusal(
        lambda: kinesis.put_record(StreamName=stream, Data=b"x", PartitionKey="p")
    )
    assert (status, code) == (400, "AccessDeniedException")
    assert "assumed-role/" in message and "/iam-api-test is not authorized" in message
    assert _refusal(lambda: kinesis.delete_stream(StreamName=stream))[1] == "AccessDeniedException"

    dynamodb = _client_for(stack, "dynamodb", session)
    key = {"conv": {"S": f"room#{uuid.uuid4().hex[:6]}"}, "mid": {"S": "m"}}
    assert "Item" not in dynamodb.get_item(TableName=table, Key=key)  # its role allows this
    assert _refusal(lambda: dynamodb.scan(TableName=table))[1] == "AccessDeniedException"
    assert _refusal(lambda: dynamodb.delete_table(TableName=table))[1] == "AccessDeniedException"


def test_a_lambda_role_publishes_with_iot_data_where_its_role_allows(
    stack: InProcessStack,
) -> None:
    session = _role_session(stack, "backend-lambda")
    iot_data = _client_for(stack, "iot-data", session)
    inbox = f"chat/in/{uuid.uuid4().hex[:8]}"
    iot_data.publish(topic=inbox, qos=0, payload=b"{}")
    wait_for(lambda: stack.taps_on(inbox))
    room = f"chat/pub/{uuid.uuid4().hex[:8]}"
    status, code, _ = _refusal(lambda: iot_data.publish(topic=room, qos=0, payload=b"{}"))
    assert (status, code) == (403, "ForbiddenException")
    assert not stack.taps_on(room)


def test_an_expired_role_session_gets_expired_token(stack: InProcessStack) -> None:
    _, stream = _names(stack)
    live = _client_for(stack, "kinesis", _role_session(stack, "backend-lambda"))
    expiring = _client_for(stack, "kinesis", _role_session(stack, "backend-lambda", 0.5))
    live.describe_stream_summary(StreamName=stream)  # a live session is still served

    def expired() -> bool:
        try:
            expiring.describe_stream_summary(StreamName=stream)
        except botocore.exceptions.ClientError as exc:
            assert exc.response["Error"]["Code"] == "ExpiredTokenException"
            return True
        return False

    wait_for(expired, timeout=10, interval=0.1)
    live.describe_stream_summary(StreamName=stream)


# ---------------------------------------------------------------------- what the signature covers


def _signed_headers(stack: InProcessStack, body: bytes, extra: dict[str, str]) -> dict[str, str]:
    headers = {
        "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Content-Type": "application/x-amz-json-1.0",
        **extra,
    }
    request = AWSRequest("POST", stack.endpoint + "/", data=body, headers=headers)
    SigV4Auth(Credentials("test", "test"), "dynamodb", stack.info["region"]).add_auth(request)
    prepared = dict(request.prepare().headers)
    prepared.pop("Content-Length", None)  # urllib sets the length of the body actually sent
    return prepared


def test_the_body_that_reaches_dynamodb_is_the_one_signed(stack: InProcessStack) -> None:
    table, _ = _names(stack)
    key = {"conv": {"S": f"room#{uuid.uuid4().hex[:6]}"}, "mid": {"S": "m"}}
    signed = json.dumps({"TableName": table, "Key": key}).encode()
    assert post_json(stack, signed, _signed_headers(stack, signed, {})) == (200, {})
    swapped = json.dumps({"TableName": "another-table", "Key": key}).encode()
    status, answer = post_json(stack, swapped, _signed_headers(stack, signed, {}))
    assert (status, answer["__type"]) == (
        400,
        "com.amazon.coral.service#InvalidSignatureException",
    )
    unsigned_payload = _signed_headers(stack, signed, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    status, answer = post_json(stack, swapped, unsigned_payload)
    assert (status, answer["__type"]) == (
        400,
        "com.amazon.coral.service#InvalidSignatureException",
    )
    status, answer = post_json(
        stack, signed, {"X-Amz-Target": "DynamoDB_20120810.GetItem", "Content-Type": "x"}
    )
    assert (status, answer["__type"]) == (
        400,
        "com.amazon.coral.service#MissingAuthenticationTokenException",
    )
