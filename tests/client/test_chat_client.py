"""The Python chat client against a local stack: real awsiotsdk MQTT over SigV4 WebSocket with
Cognito guest credentials, the chat's real rules and Lambdas."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from client import events
from client.chat_client import ChatClient


def room() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("protocol", ["mqtt5", "mqtt311"])
def test_two_clients_chat_and_a_late_joiner_gets_history(
    new_client: Callable[..., ChatClient], protocol: str
) -> None:
    lobby = room()
    alice = new_client(protocol, name="Alice")
    bob = new_client(protocol, name="Bob", name_wait=2.0)  # names even before presence
    alice.join(lobby)
    bob.join(lobby)
    for client in (alice, bob):
        assert client.wait_for(lambda e: isinstance(e, events.History) and e.target == lobby)
    sent = alice.say(lobby, "hello <b>bob</b>", name="Admin")  # a claimed name is not shown
    got = bob.wait_for(lambda e: isinstance(e, events.Message) and e.id == sent)
    assert isinstance(got, events.Message)
    assert got.sender == alice.person and got.text == "hello <b>bob</b>"
    assert got.name == "Alice" and got.handle and got.handle.startswith("guest-") and got.guest
    reply = bob.say(lobby, "hi alice")
    assert alice.wait_for(lambda e: isinstance(e, events.Message) and e.id == reply)
    carol = new_client(protocol)
    carol.join(lobby)
    page = carol.wait_for(lambda e: isinstance(e, events.History) and e.target == lobby)
    assert isinstance(page, events.History)
    assert [m.id for m in page.messages] == [reply, sent]


def test_errors_come_back_typed(new_client: Callable[..., ChatClient]) -> None:
    alice = new_client()
    alice.join("ok-room")
    bad = alice.say("not a room", "x")
    error = alice.wait_for(lambda e: isinstance(e, events.ChatError))
    assert isinstance(error, events.ChatError)
    assert error.code == "INVALID_ROOM" and error.ref == bad


@pytest.mark.parametrize("protocol", ["mqtt5", "mqtt311"])
def test_a_dropped_client_reconnects_resubscribes_and_fills_the_gap(
    new_client: Callable[..., ChatClient], chat_stack, protocol: str
) -> None:
    lobby = room()
    alice = new_client()
    bob = new_client(protocol, min_backoff=1.0, max_backoff=2.0)
    for client in (alice, bob):
        client.join(lobby)
        assert client.wait_for(lambda e: isinstance(e, events.History) and e.target == lobby)
    broker = chat_stack.stack.gateway.broker
    chat_stack.call(lambda: broker.close(broker.connections[bob.client_id], "CONNECTION_LOST"))
    assert bob.wait_for(lambda e: isinstance(e, events.Disconnected))
    said = alice.say(lobby, "while you were away")
    back = bob.wait_for(lambda e: isinstance(e, events.Connected) and e.resumed, timeout=15)
    assert back is not None
    missed = bob.wait_for(lambda e: isinstance(e, events.Message) and e.id == said)
    assert isinstance(missed, events.Message)
    # Seen live (it raced the reconnect) or filled in from history: either way exactly once.
    later = alice.say(lobby, "and now live")
    assert bob.wait_for(lambda e: isinstance(e, events.Message) and e.id == later)
    assert bob.wait_for(lambda e: isinstance(e, events.Message) and e.id == said, timeout=1) is None


def test_typing_goes_through_the_stream_and_comes_back_as_room_activity(
    new_client: Callable[..., ChatClient],
) -> None:
    lobby = room()
    alice, bob = new_client(), new_client()
    for client in (alice, bob):
        client.join(lobby)
        assert client.wait_for(lambda e: isinstance(e, events.History) and e.target == lobby)
    alice.typing(lobby)
    alice.telemetry(lobby, {"cpuTemp": 51.5})
    alice.typing(lobby)
    # chat/stream -> rule -> Kinesis -> mapping (batching window 1 s) -> stream Lambda ->
    # chat/events -> rule -> the room: one compact update for the batch.
    update = bob.wait_for(
        lambda e: isinstance(e, events.Activity) and e.room == lobby and bool(e.typing),
        timeout=20,
    )
    assert isinstance(update, events.Activity)
    assert update.typing == [alice.person]
    assert update.telemetry in ({}, {alice.person: {"cpuTemp": 51.5}})
    bad = alice.wait_for(lambda e: isinstance(e, events.ChatError), timeout=0.5)
    assert bad is None
    alice.telemetry(lobby, {"blob": "x" * 3000})  # over 2 KiB: refused with an error
    error = alice.wait_for(lambda e: isinstance(e, events.ChatError), timeout=10)
    assert isinstance(error, events.ChatError) and error.code == "INVALID_REQUEST"
