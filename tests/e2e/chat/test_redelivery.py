"""A room message redelivered by QoS 1 (the same id published again) is stored once."""

from __future__ import annotations

import pytest

from tests.e2e.chat.conftest import ChatClient, People, room_topic, unique
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)


def _sees(client: ChatClient, room: str, message_id: str) -> dict:
    return client.wait_for_message(
        room_topic(room), lambda m: m.get("id") == message_id, f"message {message_id}"
    )


def test_a_redelivered_message_is_stored_once(people: People, room: str) -> None:
    ada = people.connect()
    bob = people.connect()
    assert bob.subscribe(room_topic(room)) == [1]
    message_id = unique("dup")
    # A QoS 1 redelivery is the same message with the same id, published again.
    for _ in range(2):
        ada.say(room, "only once, please", message_id=message_id)
    bob.wait_count(room_topic(room), lambda m: m.get("id") == message_id, 2)
    after = ada.say(room, "next")
    _sees(bob, room, after)

    def stored() -> dict | None:
        page = bob.history("room", room)
        return page if any(m["id"] == after for m in page["messages"]) else None

    page = wait_for(stored, 10.0, interval=0.05)
    assert [m["id"] for m in page["messages"]] == [after, message_id]
    assert page["messages"][1]["sender"] == ada.client_id
