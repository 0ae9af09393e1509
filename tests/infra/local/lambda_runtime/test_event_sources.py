"""Kinesis event source mappings on a running stack: PutRecord -> stream -> mapping -> a
handler that records every batch it is given.

Each scenario has its own stream, mapping and function, so the tests share one stack. The
streams are named ``iotchat-<scenario>``: a mapping reads as its function's execution role
(``iotchat-backend-lambda``), which may read the stack's streams, ``iotchat-*``, only.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.lambda_runtime import failures_path
from infra.local.lambda_runtime.event_sources import checkpoint_path
from lambdas.manifest import Manifest, ManifestError
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

HANDLER = "tests.infra.local.lambda_runtime.stream_handlers.record_batch"
STREAM_ARN = "arn:aws:kinesis:{region}:{account}:stream/"
# Idle shards are polled this often; records put through the edge API wake pollers sooner.
POLL_INTERVAL = 0.5

# name: the mapping's settings. Each name is a function and, prefixed, its stream.
MAPPINGS: dict[str, dict[str, Any]] = {
    "size": {"BatchSize": 3, "MaximumBatchingWindowInSeconds": 300},
    "window": {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 1},
    "retry": {"BatchSize": 10, "MaximumRetryAttempts": 5},
    "poison": {"BatchSize": 10, "MaximumRetryAttempts": 1},
    "bisect": {
        "BatchSize": 4,
        "MaximumBatchingWindowInSeconds": 300,
        "MaximumRetryAttempts": 0,
        "BisectBatchOnFunctionError": True,
    },
    "latency0": {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 0},
    "latency1": {"BatchSize": 100, "MaximumBatchingWindowInSeconds": 1},
}


def stream(name: str) -> str:
    """The scenario's stream: one of the stack's (``iotchat-*``), as the role allows."""
    return f"iotchat-{name}"


def write_setup(root: Path, mappings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A manifest of streams, functions and mappings, and no rules."""
    rules_dir = root / "rules"
    rules_dir.mkdir()
    records = root / "records"
    records.mkdir()
    manifest: dict[str, Any] = {"functions": [], "streams": [], "eventSourceMappings": []}
    for name, settings in mappings.items():
        manifest["functions"].append(
            {
                "name": name,
                "handler": HANDLER,
                "environment": {"RECORD_FILE": str(records / f"{name}.jsonl")},
            }
        )
        manifest["streams"].append({"StreamName": stream(name), "ShardCount": 1})
        manifest["eventSourceMappings"].append(
            {
                "FunctionName": name,
                "EventSourceArn": STREAM_ARN + stream(name),
                "StartingPosition": "LATEST",
                **settings,
            }
        )
    (root / "manifest.json").write_text(json.dumps(manifest))
    return {"rules_dir": rules_dir, "manifest": root / "manifest.json"}


def test_options(root: Path, mappings: dict[str, dict[str, Any]]) -> Any:
    return stack_options(
        root / "state",
        **write_setup(root, mappings),
        event_source_poll_interval=POLL_INTERVAL,
        event_source_retry_delay=0.05,
    )


test_options.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    root = tmp_path_factory.mktemp("event-sources")
    with run_stack_in_thread(test_options(root, MAPPINGS)) as handle:
        handle.records = root / "records"  # type: ignore[attr-defined]
        yield handle


def put(local: InProcessStack, name: str, **fields: Any) -> str:
    """PutRecord (as the admin) of ``{"id": <new id>, **fields}`` to scenario ``name``'s
    stream, partitioned by the id; returns the id."""
    record_id = uuid.uuid4().hex
    payload = json.dumps({"id": record_id, **fields}).encode()
    local.client("kinesis").put_record(
        StreamName=stream(name), Data=payload, PartitionKey=record_id
    )
    return record_id


def batches(records: Path, name: str) -> list[dict[str, Any]]:
    """Every invocation of the function ``name``, in order."""
    path = records / f"{name}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def ids(batch: dict[str, Any]) -> list[str]:
    return [payload["id"] for payload in batch["payloads"]]


def in_stream(local: InProcessStack, name: str) -> int:
    """How many records the stream holds (read from its start by the test itself)."""
    kinesis = local.client("kinesis")
    iterator = kinesis.get_shard_iterator(
        StreamName=stream(name), ShardId="shardId-000000000000", ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return len(kinesis.get_records(ShardIterator=iterator)["Records"])


def test_a_full_batch_is_sent_without_waiting_for_the_window(local):
    sent = [put(local, "size", n=n) for n in range(7)]
    records = local.records
    # The window is 300 s: only BatchSize can have sent these two batches.
    wait_for(lambda: len(batches(records, "size")) >= 2, timeout=15)
    delivered = [ids(b) for b in batches(records, "size")]
    assert [len(batch) for batch in delivered] == [3, 3]
    assert len(set(delivered[0] + delivered[1]) & set(sent)) == 6
    assert in_stream(local, "size") == 7  # the seventh waits for two more or the window


def test_records_wait_for_the_batching_window(local):
    start = time.time()
    sent = [put(local, "window", n=n) for n in range(3)]
    wait_for(lambda: batches(local.records, "window"), timeout=15)
    [batch] = batches(local.records, "window")
    assert sorted(ids(batch)) == sorted(sent)  # three records, one invocation
    # Sent when the window closed, 1 s after the first record arrived; not before.
    assert batch["at"] - start >= 0.9


def test_the_event_has_the_aws_kinesis_shape(local):
    record_id = put(local, "window", text="hello")
    wait_for(lambda: [b for b in batches(local.records, "window") if record_id in ids(b)], 15)
    [batch] = [b for b in batches(local.records, "window") if record_id in ids(b)]
    [record] = batch["event"]["Records"]
    kinesis = record.pop("kinesis")
    assert json.loads(base64.b64decode(kinesis.pop("data"))) == {"id": record_id, "text": "hello"}
    assert kinesis.pop("partitionKey") == record_id
    sequence = kinesis.pop("sequenceNumber")
    assert abs(kinesis.pop("approximateArrivalTimestamp") - time.time()) < 30
    assert kinesis == {"kinesisSchemaVersion": "1.0"}
    assert record == {
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        # The mapping's function's execution role.
        "invokeIdentityArn": "arn:aws:iam::000000000000:role/iotchat-backend-lambda",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/iotchat-window",
    }


def test_a_failed_batch_is_retried_until_it_succeeds(local):
    flaky = put(local, "retry", failTimes=2)
    spec = next(s for s in local.stack.event_sources.specs if s.function_name == "retry")
    checkpoint = checkpoint_path(local.stack.state_dir, spec)

    def done() -> bool:
        return checkpoint.exists() and "sequenceNumber" in checkpoint.read_text()

    wait_for(done, timeout=15)
    # The same batch three times: two failures, then the success that moved the checkpoint.
    assert [ids(b) for b in batches(local.records, "retry")] == [[flaky]] * 3
    [event] = {json.dumps(b["event"]) for b in batches(local.records, "retry")}
    sequence = json.loads(event)["Records"][0]["kinesis"]["sequenceNumber"]
    saved = json.loads(checkpoint.read_text())["shards"]["shardId-000000000000"]
    assert saved == {"sequenceNumber": sequence}
    assert not failures_path(local.stack.state_dir, "retry").exists()


def test_retries_exhausted_writes_an_on_failure_record_and_moves_on(local):
    poison = put(local, "poison", fail=True)
    path = failures_path(local.stack.state_dir, "poison")
    record = json.loads(wait_for(path.exists, timeout=15) and path.read_text().splitlines()[0])
    tried = [ids(b) for b in batches(local.records, "poison")]
    assert tried == [[poison], [poison]]  # the first try and MaximumRetryAttempts = 1
    info = record.pop("KinesisBatchInfo")
    assert info["batchSize"] == 1
    assert info["shardId"] == "shardId-000000000000"
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert info["streamArn"] == "arn:aws:kinesis:us-east-1:000000000000:stream/iotchat-poison"
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestContext"]["functionArn"].endswith(":function:poison")
    assert record["responseContext"]["functionError"] == "Unhandled"
    # The shard is not blocked: the next record is processed.
    good = put(local, "poison")
    wait_for(lambda: [good] in [ids(b) for b in batches(local.records, "poison")], timeout=15)


def test_bisect_isolates_the_failing_record(local):
    sent = [put(local, "bisect", n=0), put(local, "bisect", n=1)]
    sent += [put(local, "bisect", fail=True), put(local, "bisect", n=3)]
    path = failures_path(local.stack.state_dir, "bisect")
    wait_for(lambda: len(batches(local.records, "bisect")) >= 5 and path.exists(), timeout=15)
    tried = [ids(b) for b in batches(local.records, "bisect")]
    # [0 1 X 3] fails -> [0 1] succeeds, [X 3] fails -> [X] fails (recorded), [3] succeeds.
    assert tried == [sent, sent[:2], sent[2:], [sent[2]], [sent[3]]]
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["KinesisBatchInfo"]["batchSize"] == 1


def test_a_restarted_stack_continues_after_the_last_batch(tmp_path: Path):
    """No finished batch is sent twice and no record is skipped across restarts, including
    records put before the mapping ever sent a batch."""
    mappings = {"resume": {"BatchSize": 2, "MaximumBatchingWindowInSeconds": 300}}
    options = test_options(tmp_path, mappings)
    records = tmp_path / "records"
    sent: list[str] = []
    for round_no in range(3):
        with run_stack_in_thread(options) as stack:
            if round_no == 0:  # a record, then a stop before any batch is complete
                sent.append(put(stack, "resume", n=1))
            elif round_no == 1:  # completes the pending batch; one more waits
                sent.append(put(stack, "resume", n=2))
                wait_for(lambda: len(batches(records, "resume")) == 1, timeout=15)
                sent.append(put(stack, "resume", n=3))
            else:
                sent.append(put(stack, "resume", n=4))
                wait_for(lambda: len(batches(records, "resume")) == 2, timeout=15)
            wait_for(lambda: in_stream(stack, "resume") == len(sent), timeout=15)
    assert [ids(b) for b in batches(records, "resume")] == [sent[0:2], sent[2:4]]


def test_measure_put_record_to_handler_latency(local):
    """Figures for the docs (printed with -s). A put through the edge API wakes the shard's
    poller, so with no window a record is handled well within the idle poll interval."""
    kinesis = local.client("kinesis")
    report = {}
    for name, runs in (("latency0", 20), ("latency1", 3)):
        delays = []
        for n in range(runs):
            payload = json.dumps({"id": f"{name}-{n}"}).encode()
            start = time.time()
            kinesis.put_record(StreamName=stream(name), Data=payload, PartitionKey="k")
            wait_for(lambda: len(batches(local.records, name)) > n, timeout=15)  # noqa: B023
            delays.append(batches(local.records, name)[n]["at"] - start)
        report[name] = (statistics.median(delays), max(delays))
    assert report["latency0"][0] < POLL_INTERVAL / 2
    assert report["latency1"][0] >= 0.9
    print(
        "\nPutRecord -> handler, BatchSize 100: "
        f"window 0: p50 {report['latency0'][0] * 1000:.0f} ms, max "
        f"{report['latency0'][1] * 1000:.0f} ms; window 1 s: p50 "
        f"{report['latency1'][0] * 1000:.0f} ms, max {report['latency1'][1] * 1000:.0f} ms"
    )


# -- the manifest ---------------------------------------------------------------------------


def manifest(**changes: Any) -> dict[str, Any]:
    mapping = {
        "FunctionName": "{stack}-stream",
        "EventSourceArn": "arn:aws:kinesis:{region}:{account}:stream/{stack}-stream",
        "StartingPosition": "LATEST",
    }
    data: dict[str, Any] = {
        "functions": [{"name": "{stack}-stream", "handler": "lambdas.stream.handler"}],
        "streams": [{"StreamName": "{stack}-stream", "ShardCount": 1}],
        "eventSourceMappings": [mapping],
    }
    for key, value in changes.items():
        if key in data:
            data[key] = value
        elif value is None:
            mapping.pop(key)
        else:
            mapping[key] = value
    return data


def load(tmp_path: Path, data: dict[str, Any]) -> Manifest:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    return Manifest.load(path, stack="chat", region="eu-west-1", account="123456789012")


def test_manifest_mappings_get_aws_defaults_and_filled_placeholders(tmp_path: Path):
    loaded = load(tmp_path, manifest())
    assert loaded.stream_names == ["chat-stream"]
    [spec] = loaded.event_source_mappings
    assert spec.function_name == "chat-stream"
    assert spec.stream_arn == "arn:aws:kinesis:eu-west-1:123456789012:stream/chat-stream"
    assert (spec.batch_size, spec.batching_window, spec.maximum_retry_attempts) == (100, 0, -1)
    assert (spec.bisect_on_error, spec.enabled) == (False, True)
    by_arn = manifest(FunctionName="arn:aws:lambda:{region}:{account}:function:{stack}-stream")
    assert load(tmp_path, by_arn).event_source_mappings[0].function_name == "chat-stream"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"FunctionName": "nobody"}, "function 'nobody' is not declared in \"functions\""),
        (
            {"EventSourceArn": "arn:aws:kinesis:{region}:{account}:stream/other"},
            "stream 'other' is not declared in \"streams\"",
        ),
        (
            {"EventSourceArn": "arn:aws:kinesis:us-east-1:{account}:stream/{stack}-stream"},
            "names region 'us-east-1', but the stack's region is 'eu-west-1'",
        ),
        ({"EventSourceArn": "arn:aws:sqs:{region}:{account}:q"}, "Kinesis stream ARN"),
        ({"StartingPosition": None}, "StartingPosition is required"),
        ({"StartingPosition": "EARLIEST"}, "StartingPosition"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPositionTimestamp goes with"),
        ({"BatchSize": 0}, "BatchSize"),
        ({"BatchSize": 10001}, "BatchSize must be an integer from 1 to 10000"),
        ({"MaximumBatchingWindowInSeconds": 301}, "MaximumBatchingWindowInSeconds"),
        ({"MaximumRetryAttempts": -2}, "MaximumRetryAttempts"),
        ({"BisectBatchOnFunctionError": "yes"}, "BisectBatchOnFunctionError"),
        ({"ParallelizationFactor": 2}, "ParallelizationFactor not supported locally"),
        ({"Batchsize": 10}, "Batchsize"),
        ({"streams": [{"StreamName": "{stack}-stream"}]}, "ShardCount must be an integer"),
        (
            {"streams": [{"StreamName": "{stack}-stream", "ShardCount": 1, "Tags": {}}]},
            "Tags not supported locally",
        ),
        ({"streams": [{"StreamName": "bad name!", "ShardCount": 1}]}, "StreamName must be"),
        ({"streams": [{"ShardCount": 1}]}, "StreamName"),
        ({"streams": {}}, '"streams" must be a list'),
    ],
)
def test_bad_manifest_entries_are_refused_with_the_reason(tmp_path, changes, message):
    with pytest.raises(ManifestError) as info:
        load(tmp_path, manifest(**changes))
    assert message in str(info.value)


def test_a_stream_mapped_twice_to_one_function_is_refused(tmp_path: Path):
    data = manifest()
    data["eventSourceMappings"] *= 2
    with pytest.raises(ManifestError, match="mapped to the same function twice"):
        load(tmp_path, data)
