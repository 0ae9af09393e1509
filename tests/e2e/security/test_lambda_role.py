"""Lambdas run as their execution role, not as the admin (the issue's acceptance item 2).

A test manifest on a real stack: ``iotchat-probe`` reports the key in its environment and calls
DynamoDB and Kinesis with boto3 through ``AWS_ENDPOINT_URL``, as a handler on AWS would; the
API endpoint holds it to ``policies/iam/backend-lambda.json``. ``iotchat-reader`` is mapped to a
stream, which the mapping reads with the same role. A mapping whose role may not read its
stream cannot be created, as on AWS.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.identity import Credential
from infra.local.lambda_runtime.event_sources import StreamAccessError
from tests.support import stack_files
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

ACCOUNT = "000000000000"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/iotchat-backend-lambda"
PROBE = "tests.infra.local.lambda_runtime.handlers.fixtures.role_probe"
READER = "tests.infra.local.lambda_runtime.stream_handlers.record_batch"
TABLE = "iotchat-probe"
STREAM = "iotchat-probe"
STREAM_ARN = "arn:aws:kinesis:{region}:{account}:stream/"


def write_manifest(root: Path, stream: str) -> dict[str, Any]:
    """Stack options for a manifest of the probe, a table, a stream and a mapped reader."""
    manifest = {
        "functions": [
            {"name": "iotchat-probe", "handler": PROBE, "timeout": 30},
            {
                "name": "iotchat-reader",
                "handler": READER,
                "environment": {"RECORD_FILE": str(root / "reader.jsonl")},
            },
        ],
        "tables": [
            stack_files.keyed_table(TABLE, ("pk", "S"), ("sk", "S"), BillingMode="PAY_PER_REQUEST"),
        ],
        "streams": [{"StreamName": stream, "ShardCount": 1}],
        "eventSourceMappings": [
            {
                "FunctionName": "iotchat-reader",
                "EventSourceArn": STREAM_ARN + stream,
                "StartingPosition": "TRIM_HORIZON",
            }
        ],
    }
    # No rules: nothing but the test's own calls.
    rules = stack_files.write_rules(root, {})
    return {"rules_dir": rules, "manifest": stack_files.write_manifest(root, manifest)}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("lambda-role")
    options = stack_options(
        root / "state", **write_manifest(root, STREAM), event_source_poll_interval=0.2
    )
    with run_stack_in_thread(options) as handle:
        handle.root = root  # type: ignore[attr-defined]
        yield handle


def held(local: InProcessStack, access_key_id: str) -> Credential:
    """The stack's record of a key: whose it is and until when."""
    credential = local.stack.static_credentials.credentials.get(access_key_id)
    assert credential is not None, f"{access_key_id} is not a key the stack issued"
    return credential


def probe(local: InProcessStack) -> dict[str, Any]:
    assert local.stack.lambdas is not None
    runtime = local.stack.lambdas
    result = local.call(
        lambda: runtime.invoke("iotchat-probe", {"table": TABLE, "stream": STREAM}), timeout=60
    )
    assert result.ok, result.error
    report: dict[str, Any] = result.payload
    return report


def test_a_handler_holds_its_own_role_session_not_the_admin_keys(local: InProcessStack) -> None:
    report = probe(local)
    key = report["accessKeyId"]
    assert key != "test" and key.startswith("ASIA") and report["hasSessionToken"]
    credential = held(local, key)
    assert credential.principal.kind == "role"
    assert credential.principal.identifier == ROLE_ARN  # the template's execution role
    assert credential.principal.attribute("session") == "iotchat-probe"
    assert credential.expires_at is not None


def test_a_handler_may_do_what_its_role_allows_and_nothing_else(local: InProcessStack) -> None:
    calls = probe(local)["calls"]
    # Inside backend-lambda.json: these work.
    assert calls["dynamodb:GetItem"] == "ok"
    assert calls["kinesis:ListShards"] == "ok"
    # Outside it: refused as AWS refuses them, naming the role session.
    for action in ("dynamodb:Scan", "dynamodb:DeleteTable", "kinesis:PutRecord"):
        assert calls[action].startswith("AccessDeniedException: "), (action, calls[action])
    table_arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{TABLE}"
    assert calls["dynamodb:Scan"] == (
        "AccessDeniedException: User: "
        f"arn:aws:sts::{ACCOUNT}:assumed-role/iotchat-backend-lambda/iotchat-probe "
        f"is not authorized to perform: dynamodb:Scan on resource: {table_arn} "
        "because no identity-based policy allows the dynamodb:Scan action"
    )
    # The refused DeleteTable left the table in place; the admin still may do anything.
    admin = local.client("dynamodb")
    assert admin.describe_table(TableName=TABLE)["Table"]["TableStatus"] == "ACTIVE"
    assert admin.scan(TableName=TABLE)["Count"] >= 0


def test_concurrent_workers_hold_distinct_sessions(local: InProcessStack) -> None:
    assert local.stack.lambdas is not None
    runtime = local.stack.lambdas

    async def two_at_once() -> list[Any]:
        import asyncio

        event = {"table": TABLE, "stream": STREAM}
        pool = runtime.pool("iotchat-probe")
        before = pool.worker_count
        results = await asyncio.gather(
            *(runtime.invoke("iotchat-probe", event) for _ in range(before + 2))
        )
        return [result.payload["accessKeyId"] for result in results if result.cold]

    cold_keys = local.call(two_at_once, timeout=60)
    assert len(cold_keys) >= 2 and len(set(cold_keys)) == len(cold_keys)


def test_the_mapping_reads_the_stream_as_the_function_role(local: InProcessStack) -> None:
    record_id = uuid.uuid4().hex
    local.client("kinesis").put_record(
        StreamName=STREAM, Data=json.dumps({"id": record_id}).encode(), PartitionKey=record_id
    )
    path: Path = local.root / "reader.jsonl"  # type: ignore[attr-defined]

    def delivered() -> list[dict[str, Any]]:
        lines = path.read_text().splitlines() if path.exists() else []
        return [b for b in map(json.loads, lines) if {"id": record_id} in b["payloads"]]

    [batch] = wait_for(delivered, timeout=15)
    assert batch["event"]["Records"][0]["invokeIdentityArn"] == ROLE_ARN
    assert local.stack.event_sources is not None
    session = local.stack.event_sources.clients["iotchat-reader"].credentials
    assert session is not None and session.access_key_id.startswith("ASIA")
    credential = held(local, session.access_key_id)
    assert (credential.principal.identifier, credential.principal.attribute("session")) == (
        ROLE_ARN,
        "iotchat-reader",
    )


def test_a_mapping_whose_role_cannot_read_its_stream_is_refused(tmp_path: Path) -> None:
    """``backend-lambda`` reads the stack's streams (``iotchat-*``) only: mapping another
    stream fails as CreateEventSourceMapping fails on AWS, and the stack does not start."""
    options = stack_options(tmp_path / "state", **write_manifest(tmp_path, "elsewhere"))
    with (
        pytest.raises(StreamAccessError, match="cannot access stream") as refused,
        run_stack_in_thread(options),
    ):
        pass
    assert "AccessDeniedException" in str(refused.value)
    assert "kinesis:ListShards" in str(refused.value)
