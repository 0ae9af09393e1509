"""The queries Lambda (lambdas/chat/queries.py) answers who and whois with the commands
Lambda's own checks and nothing else, the rule chat_queries routes exactly those to it, and
its concurrency is sized like the others'; against moto's DynamoDB. End to end, with a flood
on the commands function: tests/e2e/security/test_people.py."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from iot_rules.loader import load_rules
from lambdas.chat.commands import Commands
from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.queries import QUERY_TYPES, queries
from lambdas.chat.store import ChatStore
from lambdas.manifest import Manifest

ADA = "us-east-1:00000000-0000-4000-8000-00000000000a"
BOB = "us-east-1:00000000-0000-4000-8000-00000000000b"
ADA_TAB = f"{ADA}_web-tab00001"
BOB_TAB = f"{BOB}_web-tab00002"
RULES = {rule.name: rule for rule in load_rules()}


def send(handler: Commands, session: str, ts: int, **request: Any) -> None:
    payload = base64.b64encode(json.dumps(request).encode()).decode()
    handler.handle({"payload": payload, "sender": session, "ts": ts})


def test_who_answers_a_member_and_refuses_anyone_else(store: ChatStore) -> None:
    published = RecordingPublisher()
    send(Commands(store, published), ADA_TAB, 1, type="join", room="lobby")
    handler = queries(store, published)
    send(handler, ADA_TAB, 2, type="who", room="lobby", id="w1")
    assert [m["room"] for m in published.to(f"chat/in/{ADA_TAB}") if m["type"] == "who"] == [
        "lobby"
    ]
    send(handler, BOB_TAB, 3, type="who", room="lobby", id="w2")
    refused = published.to(f"chat/in/{BOB_TAB}")
    assert [(m["type"], m["code"], m["ref"]) for m in refused] == [("error", "NOT_A_MEMBER", "w2")]


def test_whois_answers_and_commands_are_refused_without_a_trace(store: ChatStore) -> None:
    published = RecordingPublisher()
    handler = queries(store, published)
    send(handler, ADA_TAB, 1, type="whois", people=[ADA])
    assert [m["type"] for m in published.to(f"chat/in/{ADA_TAB}")] == ["people"]
    # Anything else reaching this function is refused, and nothing of it is done.
    send(handler, BOB_TAB, 2, type="join", room="lobby", id="j1")
    send(handler, BOB_TAB, 3, type="history", room="lobby", id="h1")
    answers = published.to(f"chat/in/{BOB_TAB}")
    assert [(m["code"], m["ref"]) for m in answers] == [
        ("UNKNOWN_TYPE", "j1"),
        ("UNKNOWN_TYPE", "h1"),
    ]
    assert store.room_member("lobby", BOB) is None


def test_the_rule_routes_exactly_the_query_types_to_the_queries_function() -> None:
    rule = RULES["chat_queries"]
    assert set(re.findall(r"WHEN '(\w+)' THEN true", rule.sql)) == QUERY_TYPES
    commands = set(re.findall(r"WHEN '(\w+)' THEN true", RULES["chat_commands"].sql))
    assert not commands & QUERY_TYPES
    arns = [action["lambda"]["functionArn"] for action in rule.actions]
    assert [arn.rsplit(":", 1)[-1] for arn in arns] == ["iotchat-queries"]
    spec = Manifest.load().get("iotchat-queries")
    assert spec is not None and spec.handler == "lambdas.handlers.queries"


# As in tests/lambdas/test_manifest.py: the busiest minute holds 1% of a day's sessions, and a
# function copes with bursts four times that minute's average.
PEAK_MINUTE_SHARE = 0.01
HEADROOM = 4


def test_queries_concurrency_is_sized_from_the_cost_models_largest_workload() -> None:
    """Little's law on docs/cost.md's 100,000-user workload, counting one who per session at
    a commands invocation's duration (a who is three small reads; whois fewer)."""
    from infra.aws.cost import COMMANDS_MS, Workload

    workload = Workload(users=100_000, messages_per_user_per_day=20)
    sessions_per_second = (
        workload.users * workload.sessions_per_user_per_day * PEAK_MINUTE_SHARE / 60
    )
    busy = sessions_per_second * COMMANDS_MS / 1000
    spec = Manifest.load().get("iotchat-queries")
    assert spec is not None and spec.reserved_concurrency is not None
    assert spec.reserved_concurrency >= math.ceil(round(busy * HEADROOM, 6))
