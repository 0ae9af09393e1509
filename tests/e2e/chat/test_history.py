"""A busy room's whole history pages back through cursors: in order, nothing twice, nothing
missing, and messages that arrived in the same millisecond all kept."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chat.conftest import People, room_topic
from tests.support.messages_table import count_items, room_conv
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)

SENDERS = 10
PER_SENDER = 100  # one burst each: AWS lets a connection publish 100 messages a second
PAGE = 100


def _stored(stack: InProcessStack, room: str) -> int:
    """How many messages the room has in the table (read with the stack's admin key)."""
    table = f"{stack.info['stackName']}-messages"
    return count_items(stack.client("dynamodb"), table, room_conv(room), consistent=False)


def test_a_thousand_messages_page_back_completely(
    chat_stack: InProcessStack, people: People, room: str
) -> None:
    reader = people.connect("Reader")
    assert reader.subscribe(room_topic(room)) == [1]
    senders = [people.connect(f"sender {n}") for n in range(SENDERS)]
    sent: dict[str, list[str]] = {}
    for sender in senders:
        # Zero-padded ids: their text order is the order they were sent in.
        ids = [f"n{i:03d}" for i in range(PER_SENDER)]
        sent[sender.client_id] = ids
        sender.publish_many(
            [{"type": "message", "id": i, "room": room, "body": f"message {i}"} for i in ids]
        )
    total = SENDERS * PER_SENDER
    live = reader.wait_count(room_topic(room), lambda m: m.get("type") == "message", total, 60)
    wait_for(lambda: _stored(chat_stack, room) >= total, 30, interval=0.2)

    history: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        fields: dict[str, Any] = {"limit": PAGE}
        if cursor is not None:
            fields["cursor"] = cursor
        page = reader.history("room", room, **fields)
        pages += 1
        assert 0 < len(page["messages"]) <= PAGE
        history.extend(page["messages"])
        cursor = page["cursor"]
        if cursor is None:
            break
        assert pages < total, "the cursor never ends"
    assert pages == total // PAGE

    keys = [(m["sender"], m["id"]) for m in history]
    assert len(keys) == len(set(keys)), "a message appears twice in history"
    assert set(keys) == {(s, i) for s, ids in sent.items() for i in ids}, "history has gaps"
    stamps = [m["ts"] for m in history]
    assert stamps == sorted(stamps, reverse=True), "history is not newest first"
    for sender_id, ids in sent.items():
        mine = [m["id"] for m in history if m["sender"] == sender_id]
        assert mine == ids[::-1], "one sender's messages are out of order"
    # The burst put several messages into one millisecond, and each of them is kept.
    assert len(set(stamps)) < total
    # History and the room topic agree on every message.
    assert {(m["sender"], m["id"], m["ts"]) for m in live} == {
        (m["sender"], m["id"], m["ts"]) for m in history
    }
