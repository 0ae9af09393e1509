"""Lone surrogates on a running stack: ``"body": "hi \\ud800"`` is valid JSON (a UTF-16 unit
with no pair), but no character. It used to make the rules engine's ``length()`` raise, so a
room message vanished with no answer, and made the commands Lambda crash (and be retried twice)
on a direct message. Now both answer the sender once with ``INVALID_TEXT``, never silence,
and the message is neither shown nor stored; beside each, a normal message still works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.lambda_runtime.runtime import failures_path, log_path
from tests.e2e.chat.conftest import ChatClient, People, inbox, people_on, room_topic, unique
from tests.support.stack import (
    InProcessStack,
    call_in_loop,
    fresh_stack,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

COMMANDS = "iotchat-commands"
LONE = "hi \ud800"  # json.dumps writes it as the escape "hi \\ud800", as a client would


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    # Short retry delays: a crashing invocation would be retried within a second, not minutes.
    with fresh_stack(tmp_path_factory, "surrogates", lambda_retry_delays=(0.1, 0.2)) as s:
        yield s


@pytest.fixture
def people(stack: InProcessStack) -> Iterator[People]:
    yield from people_on(stack)


def reports(stack: InProcessStack, function: str) -> int:
    """How many invocations of ``function`` have finished (REPORT lines in its log)."""
    path = log_path(stack.stack.state_dir, function)
    if not path.exists():
        return 0
    return path.read_text(errors="replace").count("REPORT RequestId:")


def drain_lambdas(stack: InProcessStack) -> None:
    """Wait until every asynchronous invocation, retries included, has finished."""
    lambdas = stack.stack.lambdas
    assert lambdas is not None
    call_in_loop(stack.loop, lambda: lambdas.drain(timeout=10), timeout=15)


def errors_about(client: ChatClient, ref: str) -> list[str]:
    return [m["code"] for m in client.errors() if m.get("ref") == ref]


def test_a_room_message_with_a_lone_surrogate_gets_an_error_and_is_neither_shown_nor_stored(
    people: People,
) -> None:
    ada, bob = people.connect("Ada"), people.connect("Bob")
    room = unique("room")
    for someone in (ada, bob):
        assert someone.subscribe(room_topic(room)) == [1]
        someone.join(room)

    bad = ada.say(room, LONE)
    answer = ada.wait_error("INVALID_TEXT", ref=bad)
    assert "surrogate" in answer["message"]

    # Beside it, a normal message (an emoji, a surrogate pair on the wire) reaches the room.
    good = ada.say(room, "hi \U0001f600")
    shown = bob.wait_for_message(room_topic(room), lambda m: m.get("id") == good, "the good one")
    assert shown["body"] == "hi \U0001f600"
    # The bad one was answered before the good one was sent: had it been republished, it
    # would be on the room topic before the good one (one publisher, in order).
    assert [m.get("id") for m in bob.on(room_topic(room)) if m.get("type") == "message"] == [good]
    assert errors_about(ada, bad) == ["INVALID_TEXT"]  # exactly one answer

    # Stored: the good one only (a newcomer's history).
    carol = people.connect("Carol")

    def page_with_good() -> list[str] | None:
        ids = [m["id"] for m in carol.history("room", room)["messages"]]
        return ids if good in ids else None

    assert wait_for(page_with_good, timeout=10) == [good]


def test_a_direct_message_with_a_lone_surrogate_gets_one_error_and_one_invocation(
    stack: InProcessStack, people: People
) -> None:
    ada = people.connect("Ada", signed_in=True)
    bob = people.connect("Bob", signed_in=True)  # direct messages are for signed-in people
    drain_lambdas(stack)
    before = reports(stack, COMMANDS)

    bad = unique("dm")
    ada.send_private("message", id=bad, recipient=bob.client_id, body=LONE)
    ada.wait_error("INVALID_TEXT", ref=bad)
    drain_lambdas(stack)  # a retry, had there been one, would have finished by now
    assert reports(stack, COMMANDS) == before + 1, "the commands Lambda ran more than once"
    assert errors_about(ada, bad) == ["INVALID_TEXT"]  # no INTERNAL, no second answer
    assert not failures_path(stack.stack.state_dir, COMMANDS).exists()

    # Beside it, a normal direct message is delivered (and the bad one never was).
    good = unique("dm")
    ada.send_private("message", id=good, recipient=bob.client_id, body="hi \U0001f600")
    got = bob.wait_for_message(inbox(bob.client_id), lambda m: m.get("id") == good, "the DM")
    assert got["body"] == "hi \U0001f600" and got["sender"] == ada.client_id
    assert [m.get("id") for m in bob.of_type(inbox(bob.client_id), "message")] == [good]
    history = ada.history("with", bob.client_id)
    assert [m["id"] for m in history["messages"]] == [good]


def test_a_name_with_a_lone_surrogate_is_refused_in_rooms_and_commands(people: People) -> None:
    ada = people.connect()
    room = unique("room")
    assert ada.subscribe(room_topic(room)) == [1]
    bad = ada.say(room, "hello", name="Ada\udbff")
    ada.wait_error("INVALID_NAME", ref=bad)
    ok = ada.say(room, "hello", name="Ada")
    ada.wait_for_message(room_topic(room), lambda m: m.get("id") == ok, "the named message")


def test_the_failure_records_stay_empty(stack: InProcessStack) -> None:
    """No function's events went to the on-failure sink during these scenarios."""
    drain_lambdas(stack)
    lambda_dir = Path(stack.stack.state_dir) / "lambda"
    records = [
        json.loads(line)
        for path in lambda_dir.glob("*/failures.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert records == []
