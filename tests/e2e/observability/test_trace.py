"""``iotchat trace --json`` as a developer runs it beside a live stack: what happened to a room
message, a command, an invalid message and a message whose store failed, one trace each."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.chat.conftest import People, room_topic, unique
from tests.support.stack import run_stack_in_thread, stack_options
from tests.support.up_command import ROOT
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


class TraceFollower:
    """``iotchat trace --json`` in its own process, its lines parsed as they come."""

    def __init__(self, state: Path, *args: str) -> None:
        command = ["trace", "--json", "--from-start", "--state-dir", str(state), *args]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *command],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.entries.append(json.loads(line))

    def traces(self) -> dict[str, list[dict[str, Any]]]:
        by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        with self._lock:
            for entry in self.entries:
                by_trace[entry["traceId"]].append(entry)
        return by_trace

    def trace_of(self, topic: str, marker: str) -> list[dict[str, Any]]:
        """The steps of the trace whose first message, on ``topic``, contains ``marker``."""
        for steps in self.traces().values():
            first = steps[0]
            if (
                first["eventType"] == "Publish-In"
                and first["topicName"] == topic
                and marker in first.get("payload", "")
            ):
                return steps
        return []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def steps_until(follower: TraceFollower, marker: str, done: Any) -> list[dict[str, Any]]:
    """The trace of the message containing ``marker`` once ``done(steps)`` holds."""

    def complete() -> list[dict[str, Any]] | None:
        steps = follower.trace_of("chat/out", marker)
        return steps if steps and done(steps) else None

    return wait_for(complete, 20, 0.05)


def executions(steps: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [
        (s["ruleName"], s["ruleAction"], next(iter(s["resources"].values())), s["status"])
        for s in steps
        if s["eventType"] == "RuleExecution" and not s.get("errorAction")
    ]


def test_trace_follows_each_message_through_rules_actions_and_lambdas(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with run_stack_in_thread(stack_options(state, lambda_retry_delays=(0.1, 0.1))) as stack:
        crowd = People(stack)
        follower = TraceFollower(state)
        try:
            ada = crowd.connect("Ada")
            room = unique("room")
            assert ada.subscribe(room_topic(room)) == [1]

            # A room message: the room rule republishes it, the store rule stores the copy.
            said = ada.say(room, "hello trace")
            steps = steps_until(
                follower,
                said,
                lambda s: (
                    ("chat_room_store", "DynamoDBv2Action")
                    in {(r, a) for r, a, _, _ in executions(s)}
                ),
            )
            assert len({s["traceId"] for s in steps}) == 1
            assert (steps[0]["clientId"], steps[0]["source"]) == (ada.client_id, "mqtt")
            matched = [s["ruleName"] for s in steps if s["eventType"] == "RuleMatch"]
            assert "chat_room_message" in matched and "chat_room_store" in matched
            assert "chat_invalid" not in matched and "chat_commands" not in matched
            assert executions(steps) == [
                ("chat_room_message", "RepublishAction", room_topic(room), "Success"),
                ("chat_room_store", "DynamoDBv2Action", "iotchat-messages", "Success"),
            ]
            published = [s["topicName"] for s in steps if s["eventType"] == "Publish-In"]
            assert published == ["chat/out", room_topic(room)]

            # A command: the commands Lambda runs under the same trace and answers the sender.
            marker = uuid.uuid4().hex
            ada.history("room", room, id=marker)
            inbox = f"chat/in/{ada.client_id}"

            def answered(s: list[dict[str, Any]]) -> bool:
                return any(e["eventType"] == "Publish-In" and e["topicName"] == inbox for e in s)

            def invoked(s: list[dict[str, Any]]) -> bool:
                return answered(s) and any(e["eventType"] == "FunctionExecution" for e in s)

            steps = steps_until(follower, marker, invoked)
            assert executions(steps)[0][:2] == ("chat_commands", "LambdaAction")
            (invocation,) = [s for s in steps if s["eventType"] == "FunctionExecution"]
            assert invocation["functionName"] == "iotchat-commands"
            assert invocation["status"] == "Success" and invocation["requestId"]
            assert [s["topicName"] for s in steps if s["eventType"] == "Publish-In"] == [
                "chat/out",
                inbox,
            ]

            # An invalid message: chat_invalid answers with an error, nothing else runs.
            bad = unique("bad")
            ada.publish({"type": "message", "id": bad, "room": "bad room", "body": "x"})
            steps = steps_until(follower, bad, lambda s: answered(s) and executions(s))
            assert [s["ruleName"] for s in steps if s["eventType"] == "RuleMatch"] == [
                "chat_invalid"
            ]
            assert executions(steps) == [("chat_invalid", "RepublishAction", inbox, "Success")]

            # A failing action: the store's table is gone; the failure and the errorAction show.
            info = json.loads((state / "stack.json").read_text())
            dynamodb = boto3.client(
                "dynamodb",
                endpoint_url=info["dynamodb"]["endpoint"],
                region_name=info["region"],
                aws_access_key_id=info["admin"]["accessKeyId"],
                aws_secret_access_key=info["admin"]["secretAccessKey"],
            )
            dynamodb.delete_table(TableName="iotchat-messages")
            wait_for(lambda: "iotchat-messages" not in dynamodb.list_tables()["TableNames"], 10)
            lost = ada.say(room, "cannot be stored")

            def error_handled(s: list[dict[str, Any]]) -> bool:
                return any(e.get("errorAction") for e in s) and any(
                    e["eventType"] == "FunctionExecution" for e in s
                )

            steps = steps_until(follower, lost, error_handled)
            (failed,) = [s for s in steps if s["status"] == "Failure"]
            assert (failed["ruleName"], failed["ruleAction"]) == (
                "chat_room_store",
                "DynamoDBv2Action",
            )
            assert "ResourceNotFoundException" in failed["details"]
            (error_action,) = [s for s in steps if s.get("errorAction")]
            assert error_action["ruleName"] == "chat_room_store"
            assert error_action["ruleAction"] == "LambdaAction"
            assert error_action["status"] == "Success"
            (handled,) = [s for s in steps if s["eventType"] == "FunctionExecution"]
            assert handled["functionName"] == "iotchat-rule-errors"
            assert len({s["traceId"] for s in steps}) == 1
        finally:
            follower.stop()
            crowd.close()
