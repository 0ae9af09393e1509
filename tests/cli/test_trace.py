"""``iotchat trace`` as a developer runs it, over a trace log the stack's TraceLog wrote."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

from infra.local.trace import TRACE_FILE, TraceLog
from tests.support.up_command import ROOT
from tests.support.waiting import wait_for

ROOM = "7f3a1b2c-0000-4000-8000-000000000001"
BROKEN = "9e2c1a0b-0000-4000-8000-000000000002"


def write_history(state: Path) -> TraceLog:
    log = TraceLog(state / TRACE_FILE, "000000000000")
    log.emit("Publish-In", ROOM, clientId="ada", topicName="chat/out", bytes=61, source="mqtt")
    log.emit("RuleMatch", ROOM, clientId="ada", topicName="chat/out", ruleName="chat_room_message")
    log.emit(
        "RuleExecution",
        ROOM,
        clientId="ada",
        topicName="chat/out",
        ruleName="chat_room_message",
        ruleAction="RepublishAction",
        resources={"RepublishTopic": "chat/pub/lobby"},
        durationMs=0.3,
    )
    log.emit("Publish-In", BROKEN, clientId="bob", topicName="chat/pub/x", bytes=9, source="rule")
    log.emit(
        "RuleExecution",
        BROKEN,
        ok=False,
        ruleName="chat_room_store",
        ruleAction="DynamoDBv2Action",
        resources={"TableName": "iotchat-messages"},
        durationMs=2.0,
        details="ResourceNotFoundException: Requested resource not found",
    )
    log.emit(
        "RuleExecution",
        BROKEN,
        ruleName="chat_room_store",
        ruleAction="LambdaAction",
        resources={"FunctionArn": "arn:aws:lambda:us-east-1:000000000000:function:errors"},
        durationMs=0.1,
        errorAction=True,
    )
    log.emit(
        "FunctionExecution", BROKEN, functionName="errors", requestId="abcdef123456", durationMs=14
    )
    log.flush()
    return log


def iotchat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "trace", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_trace_id_prints_one_line_per_step_of_that_trace(tmp_path: Path) -> None:
    write_history(tmp_path)
    result = iotchat("--id", BROKEN[:4], "--state-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = [line.split(" ", 2)[2] for line in result.stdout.splitlines()]
    assert lines == [
        "publish chat/pub/x from bob (9 B, rule)",
        "  chat_room_store -> dynamoDBv2 iotchat-messages FAILED (2.0 ms): "
        "ResourceNotFoundException: Requested resource not found",
        "  chat_room_store -> errorAction lambda "
        "arn:aws:lambda:us-east-1:000000000000:function:errors ok (0.1 ms)",
        "  -> errors (request abcdef12) ok 14 ms",
    ]
    assert all(line.split()[1] == BROKEN[:8] for line in result.stdout.splitlines())


def test_trace_id_json_and_an_unknown_id(tmp_path: Path) -> None:
    write_history(tmp_path)
    result = iotchat("--id", ROOM, "--json", "--state-dir", str(tmp_path))
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["eventType"] for s in steps] == ["Publish-In", "RuleMatch", "RuleExecution"]
    assert {s["traceId"] for s in steps} == {ROOM}
    missing = iotchat("--id", "ffff", "--state-dir", str(tmp_path))
    assert missing.returncode == 1 and "no steps of trace 'ffff'" in missing.stderr


def test_following_with_a_topic_filter_shows_only_matching_traces(tmp_path: Path) -> None:
    log = TraceLog(tmp_path / TRACE_FILE, "000000000000")
    log.emit("Publish-In", "old", topicName="chat/pub/lobby", clientId="n/a", source="rule")
    log.flush()  # already there when trace starts: not shown without --from-start
    command = ["trace", "--json", "--topic", "chat/pub/+", "--state-dir", str(tmp_path)]
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *command],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen: list[dict[str, str]] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(
        target=lambda: seen.extend(json.loads(line) for line in iter(stdout.readline, "")),
        daemon=True,
    )
    reader.start()
    try:

        def shown() -> bool:
            log.emit("Publish-In", "other", topicName="chat/out", clientId="ada")
            log.emit("Publish-In", "room", topicName="chat/pub/lobby", clientId="n/a")
            log.emit("RuleMatch", "room", topicName="chat/pub/lobby", ruleName="chat_room_store")
            log.flush()
            return any(s["eventType"] == "RuleMatch" for s in seen)

        wait_for(shown, 30, 0.2)
    finally:
        process.terminate()
        process.wait(10)
        reader.join(10)
    assert {s["traceId"] for s in seen} == {"room"}
