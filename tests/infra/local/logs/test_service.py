"""Log files read as CloudWatch log groups: what each event's time is, what a half-written line
waits for, what a truncated file does, and which events a filter pattern keeps."""

from __future__ import annotations

import json

from infra.local.logs.service import KEEP_EVENTS, LocalLogs, LogGroup, matches


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lines_become_events_stamped_by_their_own_time_or_when_read(tmp_path):
    clock = Clock()
    path = tmp_path / "f.log"
    group = LogGroup("/aws/lambda/f", path, clock=clock)
    assert group.read() == []  # no file yet: an empty group
    path.write_text("START RequestId: r1\n[INFO]\t2024-01-31T12:00:00.500Z\tr1\thello\nEND Req")
    events = group.read()
    assert [e.message for e in events] == [
        "START RequestId: r1",
        "[INFO]\t2024-01-31T12:00:00.500Z\tr1\thello",
    ]
    assert events[0].timestamp == 1_700_000_000_000  # when read
    assert events[1].timestamp == 1_706_702_400_500  # its own time
    clock.now += 5
    with path.open("a") as log:
        log.write("uestId: r1\n")
    assert group.read()[-1].message == "END RequestId: r1"  # the half line waited for its end
    path.write_text("again\n")  # truncated and rewritten: read from the start
    assert group.read()[-1].message == "again"


def test_rules_engine_entries_take_their_timestamp(tmp_path):
    path = tmp_path / "rules-engine.jsonl"
    entry = {
        "timestamp": "2017-08-10 15:37:23.476",
        "eventType": "RuleExecution",
        "status": "Success",
    }
    path.write_text(json.dumps(entry) + "\nnot json\n")
    group = LogGroup("AWSIotLogsV2", path, json_lines=True, clock=Clock())
    first, second = group.read()
    assert first.timestamp == 1_502_379_443_476
    assert json.loads(first.message)["eventType"] == "RuleExecution"
    assert second.message == "not json" and second.timestamp == 1_700_000_000_000


def test_memory_is_bounded(tmp_path):
    path = tmp_path / "big.log"
    path.write_text("".join(f"line {n}\n" for n in range(KEEP_EVENTS + 50)))
    events = LogGroup("g", path).read()
    assert len(events) == KEEP_EVENTS and events[-1].message == f"line {KEEP_EVENTS + 49}"


def test_groups_are_the_functions_and_the_rules_engine(tmp_path):
    logs = LocalLogs(tmp_path, ["a", "b"])
    assert [g.name for g in logs.describe_log_groups(None)] == [
        "/aws/lambda/a",
        "/aws/lambda/b",
        "AWSIotLogsV2",
    ]
    assert [g.name for g in logs.describe_log_groups("/aws/lambda/b")] == ["/aws/lambda/b"]


def test_filter_patterns_are_terms_and_quoted_phrases():
    line = "REPORT RequestId: r1\tDuration: 3 ms"
    assert matches(None, line) and matches("", line)
    assert matches("REPORT r1", line)
    assert matches('"Duration: 3"', line)
    assert not matches("REPORT r2", line)
    assert not matches("report", line)  # case-sensitive, as CloudWatch
