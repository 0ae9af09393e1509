"""The trace log's pieces: the id in X-Ray's form and back, the file (private, rotated), the
in-memory tail, and which traces a topic or client filter selects."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from infra.local import trace
from infra.local.trace import TraceFilter, TraceLog, from_xray_header, new_trace_id, xray_header


def test_a_trace_id_survives_the_x_ray_header_and_junk_is_no_trace() -> None:
    ids = {new_trace_id() for _ in range(1000)}
    assert len(ids) == 1000
    for trace_id in list(ids)[:10]:
        assert from_xray_header(xray_header(trace_id)) == trace_id
        assert from_xray_header(f"Self=1-abc;{xray_header(trace_id)}") == trace_id
    for junk in (None, "", "Root=1-xyz", "Root=2-4f4d22fd-b72049d3991f00000000c351", "a" * 5000):
        assert from_xray_header(junk) is None


def test_entries_go_to_a_private_json_lines_file_with_aws_attributes(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "rules-engine.jsonl"
    log = TraceLog(path, "000000000000")
    log.emit("Publish-In", "t-1", clientId="c", topicName="chat/out", bytes=3)
    log.emit("RuleExecution", "t-1", ok=False, ruleName="r", details="boom", errorAction=None)
    assert not path.exists()  # buffered until flushed
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["eventType"] == "Publish-In" and first["status"] == "Success"
    assert first["accountId"] == "000000000000" and first["logLevel"] == "INFO"
    assert second["status"] == "Failure" and second["logLevel"] == "ERROR"
    assert "errorAction" not in second  # None attributes are left out
    assert [e["seq"] for e in log.since(0)] == [1, 2] and log.since(1) == [log.recent[-1]]


def test_the_file_is_rotated_and_memory_stays_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace, "MAX_FILE_BYTES", 2000)
    path = tmp_path / "rules-engine.jsonl"
    log = TraceLog(path, "000000000000", keep=10)
    for n in range(100):
        log.emit("Publish-In", f"t-{n}", topicName="chat/out", payload="x" * 50)
        log.flush()
    log.close()
    assert path.with_name("rules-engine.jsonl.1").exists()
    assert path.stat().st_size <= 2000 + 400
    assert len(log.recent) == 10 and log.recent[-1]["traceId"] == "t-99"


def test_a_filter_selects_whole_traces_from_their_first_matching_message() -> None:
    def entry(trace_id: str, kind: str, topic: str = "", client: str = "a") -> dict[str, str]:
        return {"traceId": trace_id, "eventType": kind, "topicName": topic, "clientId": client}

    steps = [
        entry("1", "Publish-In", "chat/out"),
        entry("1", "RuleMatch", "chat/out"),
        entry("1", "Publish-In", "chat/pub/lobby", "n/a"),
        entry("1", "RuleExecution", "chat/pub/lobby"),
        entry("2", "Publish-In", "chat/out", "b"),
        entry("2", "RuleMatch", "chat/out", "b"),
    ]
    by_topic = TraceFilter(topic="chat/pub/+")
    assert [(s["traceId"], s["eventType"]) for s in steps if by_topic.wants(s)] == [
        ("1", "Publish-In"),
        ("1", "RuleExecution"),
    ]
    by_client = TraceFilter(client="b")
    assert [s["traceId"] for s in steps if by_client.wants(s)] == ["2", "2"]
    everything = TraceFilter()
    assert all(everything.wants(s) for s in steps)
