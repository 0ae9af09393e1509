"""Room messages re-sent under one id (unit level, moto): the store rule keeps each distinct
text as its own copy; history shows only the first, edits and deletions gather the copies into
one item and leave no older text behind (tests/e2e/chat/test_resend.py does it end to end)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from lambdas.chat import keys
from lambdas.chat.commands import Commands
from lambdas.chat.doors import PRIVATE, SignedIn
from lambdas.chat.edits import revised
from lambdas.chat.publisher import RecordingPublisher
from lambdas.chat.store import ChatStore, to_item

ADA = "us-east-1:00000000-0000-4000-8000-00000000000a"
BOB = "us-east-1:00000000-0000-4000-8000-00000000000b"
CONV = keys.room_conv("lobby")


@pytest.fixture
def commands(store: ChatStore, published: RecordingPublisher) -> Commands:
    SignedIn(store.db, store.state_table).note(ADA, 0)
    return Commands(store, published)


def send(commands: Commands, sender: str, ts: int, **request: Any) -> None:
    payload = base64.b64encode(json.dumps(request).encode()).decode()
    commands.handle({"payload": payload, "sender": sender, "ts": ts, "door": PRIVATE})


def rule_store(store: ChatStore, sender: str, message_id: str, text: str, ts: int) -> str:
    """What chat_room_store's dynamoDBv2 PutItem writes (tests/iot_rules checks the keys)."""
    item_mid = keys.copy_mid(keys.mid(sender, message_id), text)
    values = {"conv": CONV, "mid": item_mid, "tsid": keys.tsid(ts, item_mid), "id": message_id}
    values.update(room="lobby", body=text, sender=sender, ts=ts, expiresAt=ts // 1000 + 1)
    store.db.put_item(TableName=store.messages_table, Item=to_item(values))
    return item_mid


def old_store(store: ChatStore, sender: str, message_id: str, text: str, ts: int) -> None:
    """An item as earlier versions' rule wrote it: keyed without a digest, the message under
    the attribute ``text`` (the protocol's name for it before ``body``, docs/data-model.md)."""
    item_mid = keys.mid(sender, message_id)
    values = {"conv": CONV, "mid": item_mid, "tsid": keys.tsid(ts, item_mid), "id": message_id}
    values.update(room="lobby", text=text, sender=sender, ts=ts, name="Claimed")
    store.db.put_item(TableName=store.messages_table, Item=to_item(values))


def shown(store: ChatStore, limit: int = 50) -> list[tuple[str, str | None]]:
    """Every page of the room's history, as (id, text) newest first, revisions applied."""
    out: list[tuple[str, str | None]] = []
    cursor = None
    while True:
        page = store.history_page(CONV, limit, cursor)
        out += [(m["id"], m.get("body")) for m in revised(store, CONV, page.messages)]
        if page.cursor is None:
            return out
        cursor = page.cursor


def table_text(store: ChatStore) -> str:
    return str(store.db.scan(TableName=store.messages_table)["Items"])


def test_an_identical_resend_is_one_item_and_another_text_shows_as_first(
    store: ChatStore,
) -> None:
    first = rule_store(store, ADA, "m1", "hello", 1000)
    assert rule_store(store, ADA, "m1", "hello", 1001) == first
    rule_store(store, ADA, "m1", "rewritten", 1002)
    rule_store(store, ADA, "m10", "a neighbour id", 1003)
    copies = store.message_copies(CONV, keys.mid(ADA, "m1"))
    assert sorted(c["body"] for c in copies) == ["hello", "rewritten"]
    assert shown(store) == [("m10", "a neighbour id"), ("m1", "hello")]


def test_a_later_copy_on_an_earlier_page_is_not_shown_there(store: ChatStore) -> None:
    rule_store(store, ADA, "m1", "first", 1000)
    for i in range(5):
        rule_store(store, BOB, f"b{i}", f"filler {i}", 2000 + i)
    rule_store(store, ADA, "m1", "second", 3000)
    for limit in (1, 2, 3, 50):
        assert shown(store, limit) == [(f"b{i}", f"filler {i}") for i in range(4, -1, -1)] + [
            ("m1", "first")
        ]


def test_a_page_of_only_later_copies_still_leads_on(store: ChatStore) -> None:
    rule_store(store, ADA, "m1", "first", 1000)
    rule_store(store, ADA, "m1", "second", 2000)
    rule_store(store, ADA, "m1", "third", 3000)
    page = store.history_page(CONV, 1)
    assert [m["body"] for m in page.messages] == ["first"] and page.cursor is None


def test_an_old_item_without_digest_stays_first_over_a_later_copy(store: ChatStore) -> None:
    old_store(store, ADA, "m1", "from before", 1000)
    rule_store(store, ADA, "m1", "from before, again", 2000)
    assert shown(store) == [("m1", "from before")]


def test_edit_then_delete_leave_no_copy_of_any_text(
    commands: Commands, published: RecordingPublisher, store: ChatStore
) -> None:
    old_store(store, ADA, "m1", "original", 1000)
    rule_store(store, ADA, "m1", "original", 1001)
    rule_store(store, ADA, "m1", "resent otherwise", 1002)
    send(commands, ADA, 2000, type="edit", id="m1", room="lobby", body="edited once")
    assert shown(store) == [("m1", "edited once")]
    (item,) = store.message_copies(CONV, keys.mid(ADA, "m1"))
    assert item["mid"] == keys.mid(ADA, "m1") and item["ts"] == 1000 and "name" not in item
    assert "original" not in table_text(store) and "resent" not in table_text(store)

    # A late copy after the edit: history keeps the edit; the delete takes the copy too.
    rule_store(store, ADA, "m1", "original", 3000)
    assert shown(store) == [("m1", "edited once")]
    send(commands, ADA, 4000, type="delete", id="m1", room="lobby")
    assert shown(store) == [("m1", None)]
    text = table_text(store)
    assert "original" not in text and "edited once" not in text
    assert keys.copy_mid(keys.mid(ADA, "m1"), "original") not in text
    send(commands, ADA, 5000, type="edit", id="m1", room="lobby", body="back")
    assert published.to(f"chat/in/{ADA}")[-1]["code"] == "NOT_FOUND"


def test_items_stored_before_the_rename_show_under_the_new_names(
    commands: Commands, published: RecordingPublisher, store: ChatStore
) -> None:
    old_store(store, ADA, "m0", "stored as text", 1000)
    rule_store(store, ADA, "m1", "stored as body", 1001)
    page = store.history_page(CONV, 50, None)
    assert [(m["id"], m["body"]) for m in page.messages] == [
        ("m1", "stored as body"),
        ("m0", "stored as text"),
    ]
    assert all("text" not in m for m in page.messages)

    # A direct message stored with `to` shows with `recipient`; an edit rewrites it as `body`.
    conv = keys.direct_conv(ADA, BOB)
    item_mid = keys.mid(ADA, "d1")
    old = {"conv": conv, "mid": item_mid, "tsid": keys.tsid(1002, item_mid), "id": "d1"}
    old.update(to=BOB, text="psst", sender=ADA, ts=1002)
    store.db.put_item(TableName=store.messages_table, Item=to_item(old))
    (direct,) = store.history_page(conv, 50, None).messages
    assert (direct["recipient"], direct["body"]) == (BOB, "psst") and "to" not in direct
    send(commands, ADA, 2000, type="edit", id="m0", room="lobby", body="edited")
    (item,) = store.message_copies(CONV, keys.mid(ADA, "m0"))
    assert item["body"] == "edited" and "text" not in item
    assert shown(store) == [("m1", "stored as body"), ("m0", "edited")]
