"""A room message's id re-sent: with the same text it is stored once, with another text it
never rewrites what history shows (live readers keep the first copy, and so does history, also
after a restart); an edit and then a deletion leave neither text in the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chat.conftest import (
    ChatClient,
    People,
    room_topic,
    unique,
    wait_connection_recorded,
)
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(150)


def items_of(stack: InProcessStack, room: str, message_id: str) -> list[dict[str, Any]]:
    """Every item of the messages table that holds this message, read as the admin."""
    table = f"{stack.info['stackName']}-messages"
    found = stack.client("dynamodb").query(
        TableName=table,
        KeyConditionExpression="conv = :c",
        ExpressionAttributeValues={":c": {"S": f"room#{room}"}},
        ConsistentRead=True,
    )["Items"]
    return [item for item in found if item.get("id", {}).get("S") == message_id]


def table_text(stack: InProcessStack) -> str:
    return str(stack.client("dynamodb").scan(TableName=f"{stack.info['stackName']}-messages"))


def copies_of(client: ChatClient, room: str, message_id: str, count: int) -> list[dict[str, Any]]:
    """The deliveries of one message id on the room topic, once ``count`` have come."""
    return client.wait_count(room_topic(room), lambda m: m.get("id") == message_id, count)


def shown(client: ChatClient, room: str, message_id: str) -> list[dict[str, Any]]:
    """What one history page shows of the message."""
    page = client.history("room", room)
    return [m for m in page["messages"] if m["id"] == message_id]


def test_a_resend_with_other_text_never_rewrites_history(tmp_path: Path) -> None:
    state = tmp_path / "state"
    room = unique("room")
    with run_stack_in_thread(stack_options(state)) as stack:
        crowd = People(stack)
        try:
            ada = crowd.connect()
            bob = crowd.connect()
            for person in (ada, bob):
                assert person.subscribe(room_topic(room)) == [1]
                wait_connection_recorded(person)
            bob.join(room)

            said = ada.say(room, "meet at noon")
            # The identical resend (a QoS 1 redelivery, an outbox resend) is the same item.
            ada.say(room, "meet at noon", message_id=said)
            again = copies_of(bob, room, said, 2)[1]
            ada.say(room, "meet at midnight", message_id=said)
            # Readers keep the first copy of an id (docs/protocol.md): the first text.
            first, _, other = copies_of(bob, room, said, 3)
            assert (first["body"], other["body"]) == ("meet at noon", "meet at midnight")

            def settled() -> dict[str, int] | None:
                """Each text's item with its time, once the three writes have landed."""
                texts = {i["body"]["S"]: int(i["ts"]["N"]) for i in items_of(stack, room, said)}
                return texts if set(texts.values()) == {again["ts"], other["ts"]} else None

            wait_for(settled, 10, 0.05)
            # One item per text: the identical resend is the first text's item, rewritten.
            items = items_of(stack, room, said)
            assert sorted(item["body"]["S"] for item in items) == [
                "meet at midnight",
                "meet at noon",
            ]
            (once,) = shown(bob, room, said)
            assert once["body"] == "meet at noon"
        finally:
            crowd.close()

    with run_stack_in_thread(stack_options(state)) as stack:
        crowd = People(stack)
        try:
            carol = crowd.connect()
            page = carol.join(room)
            assert [(m["id"], m["body"]) for m in page["messages"]] == [(said, "meet at noon")]
        finally:
            crowd.close()


def test_edit_then_delete_leave_no_copy_of_either_text(people: People, room: str) -> None:
    ada = people.connect()
    bob = people.connect()
    for person in (ada, bob):
        assert person.subscribe(room_topic(room)) == [1]
    bob.join(room)
    said = ada.say(room, "the code is 1234")
    ada.say(room, "the code is 9876", message_id=said)
    copies_of(bob, room, said, 2)
    wait_for(lambda: len(items_of(people.stack, room, said)) == 2, 10, 0.05)

    ada.send("edit", id=said, room=room, body="no code here")
    bob.wait_for_message(room_topic(room), lambda m: m.get("type") == "edit", "the edit")
    (edited,) = shown(bob, room, said)
    assert edited["body"] == "no code here" and edited["edited"]
    text = table_text(people.stack)
    assert "1234" not in text and "9876" not in text
    assert len(items_of(people.stack, room, said)) == 1

    ada.send("delete", id=said, room=room)
    bob.wait_for_message(room_topic(room), lambda m: m.get("type") == "delete", "the deletion")
    (placeholder,) = shown(bob, room, said)
    assert "body" not in placeholder and placeholder["deleted"]
    text = table_text(people.stack)
    assert "1234" not in text and "9876" not in text and "no code here" not in text

    # A message another person re-sends is still theirs alone to change.
    bob.send("delete", id=said, room=room, sender=ada.client_id)
    assert bob.wait_error("NOT_OWNER", ref=said)["message"]
