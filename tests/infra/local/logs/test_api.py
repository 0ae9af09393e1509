"""CloudWatch Logs' answers over a log file: paging GetLogEvents forward and back, paging
FilterLogEvents, a time window, unknown groups and streams, and what IAM is asked for."""

from __future__ import annotations

import pytest

from infra.local.api.signed import Call, ServiceError
from infra.local.identity import Principal
from infra.local.logs.api import LogsAPI, required_access
from infra.local.logs.service import LocalLogs

ADMIN = Principal("admin", "test")
GROUP = "/aws/lambda/f"


def _call(operation: str, **params: object) -> Call:
    return Call(ADMIN, operation, dict(params))


@pytest.fixture
def api(tmp_path) -> LogsAPI:
    (tmp_path / "logs").mkdir()
    lines = [f"[INFO]\t2024-01-31T12:00:0{n}.000Z\tr\tline {n}\n" for n in range(5)]
    (tmp_path / "logs" / "f.log").write_text("".join(lines))
    return LogsAPI(LocalLogs(tmp_path, ["f"]), "us-east-1", "000000000000")


def test_get_log_events_pages_forward_and_back(api):
    stream = api.describe_log_streams(_call("DescribeLogStreams", logGroupName=GROUP))
    name = stream["logStreams"][0]["logStreamName"]
    first = api.get_log_events(
        _call("GetLogEvents", logGroupName=GROUP, logStreamName=name, startFromHead=True, limit=2)
    )
    assert [e["message"][-6:] for e in first["events"]] == ["line 0", "line 1"]
    second = api.get_log_events(
        _call(
            "GetLogEvents",
            logGroupName=GROUP,
            logStreamName=name,
            nextToken=first["nextForwardToken"],
            limit=2,
        )
    )
    assert [e["message"][-6:] for e in second["events"]] == ["line 2", "line 3"]
    back = api.get_log_events(
        _call(
            "GetLogEvents",
            logGroupName=GROUP,
            logStreamName=name,
            nextToken=second["nextBackwardToken"],
        )
    )
    assert [e["message"][-6:] for e in back["events"]] == ["line 0", "line 1"]
    newest = api.get_log_events(_call("GetLogEvents", logGroupName=GROUP, logStreamName=name))
    assert newest["events"][-1]["message"].endswith("line 4")


def test_filter_log_events_pages_and_keeps_to_its_window(api):
    start = 1_706_702_401_000  # 12:00:01
    page = api.filter_log_events(
        _call("FilterLogEvents", logGroupName=GROUP, startTime=start, limit=2)
    )
    assert [e["message"][-6:] for e in page["events"]] == ["line 1", "line 2"]
    rest = api.filter_log_events(
        _call("FilterLogEvents", logGroupName=GROUP, startTime=start, nextToken=page["nextToken"])
    )
    assert [e["message"][-6:] for e in rest["events"]] == ["line 3", "line 4"]
    assert "nextToken" not in rest
    assert len({e["eventId"] for e in page["events"] + rest["events"]}) == 4
    found = api.filter_log_events(
        _call("FilterLogEvents", logGroupName=GROUP, filterPattern='"line 3"')
    )
    assert [e["message"][-6:] for e in found["events"]] == ["line 3"]


def test_unknown_groups_streams_and_tokens_are_refused(api):
    with pytest.raises(ServiceError) as group:
        api.describe_log_streams(_call("DescribeLogStreams", logGroupName="/aws/lambda/nope"))
    assert group.value.code == "ResourceNotFoundException"
    with pytest.raises(ServiceError) as stream:
        api.get_log_events(_call("GetLogEvents", logGroupName=GROUP, logStreamName="nope"))
    assert stream.value.code == "ResourceNotFoundException"
    with pytest.raises(ServiceError) as token:
        api.filter_log_events(_call("FilterLogEvents", logGroupName=GROUP, nextToken="x"))
    assert token.value.code == "InvalidParameterException"


def test_iam_is_asked_for_the_group_and_the_stream():
    access = required_access("us-east-1", "000000000000")
    arn = "arn:aws:logs:us-east-1:000000000000:log-group:"
    assert list(access("DescribeLogGroups", {})) == [("logs:DescribeLogGroups", arn + "*")]
    assert list(access("FilterLogEvents", {"logGroupName": GROUP})) == [
        ("logs:FilterLogEvents", f"{arn}{GROUP}:*")
    ]
    assert list(access("GetLogEvents", {"logGroupName": GROUP, "logStreamName": "s"})) == [
        ("logs:GetLogEvents", f"{arn}{GROUP}:log-stream:s")
    ]
