"""Rule actions whose AWS service has no local counterpart yet, against moto (unit level)."""

from __future__ import annotations

import asyncio
import base64

import boto3
import pytest
from moto import mock_aws

from infra.local.rules.actions import ActionFailed, KinesisAction, RuleServices
from iot_rules.sql import Result, SqlMessage


@pytest.fixture
def kinesis():
    with mock_aws():
        client = boto3.client("kinesis", region_name="us-east-1")
        client.create_stream(StreamName="chat-stream", ShardCount=1)
        yield client


def _services(kinesis) -> RuleServices:
    return RuleServices(
        publish=lambda *a, **k: None, aws_client=lambda service, role, session: kinesis
    )


def test_kinesis_action_puts_the_select_result_with_the_templated_partition_key(kinesis):
    action = KinesisAction(
        {
            "streamName": "chat-stream",
            "partitionKey": "${room}",
            "roleArn": "arn:aws:iam::000000000000:role/r",
        },
        "2016-03-23",
    )
    msg = SqlMessage(topic="chat/stream", payload=b'{"room": "lobby", "typing": true}')
    result = Result(value={"room": "lobby", "typing": True}, raw=None)
    asyncio.run(action.run(result, msg, _services(kinesis)))
    shard = kinesis.describe_stream(StreamName="chat-stream")["StreamDescription"]["Shards"][0]
    iterator = kinesis.get_shard_iterator(
        StreamName="chat-stream", ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    [record] = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert record["PartitionKey"] == "lobby"
    assert record["Data"] == b'{"room":"lobby","typing":true}'


def test_kinesis_action_to_a_missing_stream_fails_with_aws_error(kinesis):
    action = KinesisAction({"streamName": "nope", "roleArn": "arn:aws:iam::0:role/r"}, None)
    msg = SqlMessage(topic="t", payload=base64.b64encode(b"x"))
    with pytest.raises(ActionFailed) as info:
        asyncio.run(action.run(Result(value={"a": 1}, raw=None), msg, _services(kinesis)))
    assert info.value.action == "KinesisAction"
    assert info.value.resource == "nope"
    assert "ResourceNotFoundException" in info.value.message
