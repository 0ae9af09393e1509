"""Kinesis on the local stack: kinesalite behind the edge API, reached with boto3 as on AWS."""

from __future__ import annotations

import asyncio
import json
import stat
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from infra.local.kinesis import KinesisLocal, KinesisStartError, ensure_streams
from tests.infra.local.stack_process import is_alive, live_children, running_stack
from tests.support.sockets import listening_tcp, listening_unix
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

STREAM = "iotchat-stream"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("kinesis")
    manifest = {"functions": [], "streams": [{"StreamName": STREAM, "ShardCount": 2}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    options = stack_options(root / "state", manifest=root / "manifest.json")
    with run_stack_in_thread(options) as handle:
        yield handle


def test_manifest_streams_are_created_active_and_reported(local):
    kinesis = local.client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName=STREAM)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["StreamARN"] == f"arn:aws:kinesis:us-east-1:000000000000:stream/{STREAM}"
    assert summary["OpenShardCount"] == 2
    shards = kinesis.list_shards(StreamName=STREAM)["Shards"]
    assert [s["ShardId"] for s in shards] == ["shardId-000000000000", "shardId-000000000001"]
    assert local.info["kinesis"] == {"endpoint": local.endpoint}
    with urllib.request.urlopen(local.endpoint + "/_iotchat/health", timeout=5) as resp:
        assert json.loads(resp.read())["components"]["kinesis"] == "ok"


def test_records_put_through_the_edge_come_back_in_order(local):
    kinesis = local.client("kinesis")
    put = [
        kinesis.put_record(StreamName=STREAM, Data=f"m{i}".encode(), PartitionKey="room-1")
        for i in range(3)
    ]
    shard = put[0]["ShardId"]
    assert {p["ShardId"] for p in put} == {shard}  # one partition key, one shard
    iterator = kinesis.get_shard_iterator(
        StreamName=STREAM,
        ShardId=shard,
        ShardIteratorType="AT_SEQUENCE_NUMBER",
        StartingSequenceNumber=put[0]["SequenceNumber"],
    )["ShardIterator"]
    records = kinesis.get_records(ShardIterator=iterator)["Records"]
    assert [r["Data"] for r in records] == [b"m0", b"m1", b"m2"]
    assert [r["SequenceNumber"] for r in records] == [p["SequenceNumber"] for p in put]
    assert all(r["PartitionKey"] == "room-1" for r in records)


def test_kinesis_errors_reach_boto3_as_aws_errors(local):
    kinesis = local.client("kinesis")
    with pytest.raises(ClientError) as info:
        kinesis.put_record(StreamName="no-such-stream", Data=b"x", PartitionKey="k")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bad_signatures_are_refused_before_kinesalite(local):
    with pytest.raises(ClientError) as info:
        local.client("kinesis", key="test", secret="wrong").list_streams()
    assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    with pytest.raises(ClientError) as info:
        local.client("kinesis", key="AKIANOBODY", secret="x").list_streams()
    assert info.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_ensure_streams_leaves_existing_streams_alone(local):
    kinesis = local.client("kinesis")
    requests = [{"StreamName": STREAM, "ShardCount": 2}, {"StreamName": "extra", "ShardCount": 1}]
    assert ensure_streams(kinesis, requests) == ["extra"]
    assert ensure_streams(kinesis, requests) == []
    assert sorted(kinesis.list_streams()["StreamNames"]) == ["extra", STREAM]


def test_records_survive_a_restart(tmp_path: Path):
    options = stack_options(tmp_path / "state")
    with run_stack_in_thread(options) as first:
        kinesis = first.client("kinesis")
        kinesis.create_stream(StreamName="kept", ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(
            StreamName="kept", WaiterConfig={"Delay": 1, "MaxAttempts": 10}
        )
        kinesis.put_record(StreamName="kept", Data=b"before", PartitionKey="k")
        kinesalite = first.stack.kinesis
        assert kinesalite.data_dir == tmp_path / "state" / "kinesis"
    assert not kinesalite.running
    with run_stack_in_thread(options) as second:
        kinesis = second.client("kinesis")
        iterator = kinesis.get_shard_iterator(
            StreamName="kept", ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        assert [r["Data"] for r in kinesis.get_records(ShardIterator=iterator)["Records"]] == [
            b"before"
        ]


def test_kinesalite_listens_on_its_private_socket_only(local):
    kinesalite = local.stack.kinesis
    assert kinesalite.socket_path == local.stack.state_dir / "kinesis.sock"
    assert stat.S_IMODE(kinesalite.socket_path.stat().st_mode) == 0o600
    assert listening_unix(kinesalite.pid) == [str(kinesalite.socket_path)]
    assert listening_tcp(kinesalite.pid) == []


def test_a_missing_kinesalite_install_is_a_clear_error(tmp_path: Path):
    local = KinesisLocal(tmp_path / "data", tmp_path / "kinesis.log", root=tmp_path)
    with pytest.raises(KinesisStartError, match="scripts/setup"):
        asyncio.run(local.start())
    assert not local.running


def test_kinesalite_does_not_outlive_a_killed_stack(tmp_path: Path):
    with running_stack(tmp_path / "state", subprocess.DEVNULL) as (proc, _):
        (kinesalite,) = live_children(proc.pid, "node_modules/kinesalite")
        proc.kill()  # no chance to stop its children: the kernel tells kinesalite instead
        proc.wait(10)
        wait_for(lambda: not is_alive(kinesalite), timeout=10)
