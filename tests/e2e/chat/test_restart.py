"""A room conversation on a stack of its own, then the stack is stopped and started again on
the same state directory: what people saw before, and what is still there after.

The conversation runs once (a module fixture, since a restart costs two stack starts); the
tests check what each person received then, and ask the restarted stack now.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.chat.conftest import (
    ChatClient,
    Message,
    People,
    room_topic,
    unique,
    wait_connection_recorded,
)
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


@dataclass
class Conversation:
    """What happened before the restart, as the people in it saw it."""

    room: str
    started: int  # epoch ms before the first message
    ada: str
    bob: str
    carol: tuple[str, dict[str, Any]]  # identity id and credentials, to come back with
    first: str  # Ada's message id
    second: str  # Bob's reply
    bob_saw: Message
    ada_saw_own: Message
    ada_saw: Message
    carol_joined: Message  # the history page Carol's join brought


def _sees(client: ChatClient, room: str, message_id: str) -> Message:
    return client.wait_for_message(
        room_topic(room), lambda m: m.get("id") == message_id, f"message {message_id}"
    )


def _converse(crowd: People) -> Conversation:
    room = unique("room")
    ada = crowd.connect("Ada")
    bob = crowd.connect("Bob", signed_in=True)
    for person in (ada, bob):
        assert person.subscribe(room_topic(room)) == [1]
        wait_connection_recorded(person)
        assert person.join(room)["messages"] == []
    started = int(time.time() * 1000)
    # A sender or time the client makes up is replaced by the backend's.
    first = ada.say(room, "hello Bob", name="Ada", sender="someone-else", ts=1)
    bob_saw = _sees(bob, room, first)
    ada_saw_own = _sees(ada, room, first)
    second = bob.say(room, "hi Ada", name="Bob")
    ada_saw = _sees(ada, room, second)
    # Storing runs beside the room delivery; once Bob's own scroll-back shows both messages,
    # they are stored.
    wait_for(lambda: len(bob.history("room", room)["messages"]) == 2, 10, 0.05)
    carol = crowd.connect("Carol")
    carol_joined = carol.join(room)
    return Conversation(
        room,
        started,
        ada.client_id,
        bob.client_id,
        (carol.client_id, carol.creds),
        first,
        second,
        bob_saw,
        ada_saw_own,
        ada_saw,
        carol_joined,
    )


@pytest.fixture(scope="module")
def restarted(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Conversation, InProcessStack]]:
    """The conversation, then the restarted stack. Ada and Bob are still connected when the
    stack stops (their connections end with it); Carol left before."""
    options = stack_options(tmp_path_factory.mktemp("restart") / "state")
    crowd: People | None = None
    try:
        with run_stack_in_thread(options) as stack:
            crowd = People(stack)
            talk = _converse(crowd)
            ada, _, carol = crowd.clients
            carol.disconnect()
            wait_for(lambda: ada.who(talk.room) == {talk.ada, talk.bob}, 10, 0.05)
    finally:
        if crowd is not None:
            crowd.close()
    with run_stack_in_thread(options) as stack:
        yield talk, stack


def test_two_people_chat_both_ways(restarted: tuple[Conversation, InProcessStack]) -> None:
    talk, _ = restarted
    assert talk.bob_saw["body"] == "hello Bob"
    assert "name" not in talk.bob_saw  # a claimed name is never passed on (profiles are)
    assert talk.bob_saw["sender"] == talk.ada
    assert talk.started <= talk.bob_saw["ts"] <= time.time() * 1000
    assert talk.ada_saw_own == talk.bob_saw  # the sender sees its message as everyone does
    assert (talk.ada_saw["sender"], talk.ada_saw["body"]) == (talk.bob, "hi Ada")
    assert talk.ada_saw["ts"] >= talk.bob_saw["ts"]


def test_a_late_joiner_gets_the_history_newest_first(
    restarted: tuple[Conversation, InProcessStack],
) -> None:
    talk, _ = restarted
    page = talk.carol_joined
    assert page["type"] == "history" and page["room"] == talk.room
    assert [m["id"] for m in page["messages"]] == [talk.second, talk.first]
    # As they were live, plus the senders' profiles history joins in.
    assert [{k: m[k] for k in talk.bob_saw} for m in page["messages"]] == [
        talk.ada_saw,
        talk.bob_saw,
    ]
    assert page["cursor"] is None


def test_the_history_survives_a_restart(restarted: tuple[Conversation, InProcessStack]) -> None:
    talk, stack = restarted
    crowd = People(stack)
    try:
        carol = crowd.connect("Carol", identity=talk.carol)  # her credentials are still good
        page = carol.history("room", talk.room)
        assert page["messages"] == talk.carol_joined["messages"]
        assert page["cursor"] is None
    finally:
        crowd.close()


def test_who_was_online_at_the_restart_is_not_listed_online_after_it(
    restarted: tuple[Conversation, InProcessStack],
) -> None:
    talk, stack = restarted
    crowd = People(stack)
    try:
        dave = crowd.connect("Dave")
        wait_connection_recorded(dave)
        dave.join(talk.room)  # who is for members
        # Ada and Bob have not come back. (Carol, a member, may have just been here in another
        # test: her offline update is processed asynchronously, hence the wait.)
        wait_for(lambda: dave.who(talk.room) == {dave.person}, 15, 0.2)
    finally:
        crowd.close()
