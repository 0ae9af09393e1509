"""Edits and deletions are explicit and the sender's alone: everyone connected sees them at
once, history shows the edited text or a placeholder (also after a restart), the old text does
not come back with a late copy of the message, and nobody else can change a message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.chat.accounts import account, fresh_handle, hello
from tests.e2e.chat.conftest import (
    ChatClient,
    People,
    inbox,
    room_topic,
    unique,
    wait_connection_recorded,
)
from tests.support.stack import run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(150)


def in_history(client: ChatClient, room: str, message_id: str) -> dict[str, Any] | None:
    page = client.history("room", room)
    return next((m for m in page["messages"] if m["id"] == message_id), None)


def stored(client: ChatClient, room: str, message_id: str) -> dict[str, Any]:
    """The message as history shows it, once the store rule has written it."""
    found = wait_for(lambda: in_history(client, room, message_id), 10, 0.05)
    assert found is not None
    return found


def test_edit_and_delete_in_a_room_live_in_history_and_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    room = unique("room")
    handle = fresh_handle("ada")
    with run_stack_in_thread(stack_options(state)) as stack:
        crowd = People(stack)
        try:
            ada_id, ada_creds, token = account(stack, handle)
            ada = crowd.connect(identity=(ada_id, ada_creds))
            assert hello(ada, token=token)["handle"] == handle
            bob = crowd.connect()
            for person in (ada, bob):
                assert person.subscribe(room_topic(room)) == [1]
                wait_connection_recorded(person)
                person.join(room)

            kept = ada.say(room, "tpyo here")
            gone = ada.say(room, "something I regret")
            stored(bob, room, kept)
            stored(bob, room, gone)

            ada.send("edit", id=kept, room=room, body="typo here")
            edit = bob.wait_for_message(
                room_topic(room), lambda m: m.get("type") == "edit", "the edit"
            )
            assert (edit["id"], edit["sender"], edit["body"]) == (kept, ada_id, "typo here")
            assert edit["edited"] > 0
            ada.send("delete", id=gone, room=room)
            deletion = bob.wait_for_message(
                room_topic(room), lambda m: m.get("type") == "delete", "the deletion"
            )
            assert (deletion["id"], deletion["sender"]) == (gone, ada_id)
            assert "body" not in deletion

            # Bob cannot change Ada's message: not by naming her, nor as if it were his.
            bob.send("edit", id=kept, room=room, body="Bob was here", sender=ada_id)
            assert bob.wait_error("NOT_OWNER", ref=kept)["message"]
            bob.send("delete", id=kept, room=room)
            assert bob.wait_error("NOT_FOUND", ref=kept)["message"]

            # The deleted text is gone from the table itself, not only from what is shown.
            table = f"{stack.info['stackName']}-messages"
            items = stack.client("dynamodb").scan(TableName=table)["Items"]
            assert "something I regret" not in str(items) and "tpyo" not in str(items)

            # A late copy of the deleted message (same id, its old text) changes nothing shown.
            ada.say(room, "something I regret", message_id=gone)
            bob.wait_count(room_topic(room), lambda m: m.get("id") == gone, 2)
            shown = stored(bob, room, kept)
            assert (shown["body"], shown["edited"]) == ("typo here", edit["edited"])
            placeholder = in_history(bob, room, gone)
            assert placeholder is not None and "body" not in placeholder
            assert placeholder["deleted"] == deletion["deleted"]
            # Deleted is deleted: no edit brings it back.
            ada.send("edit", id=gone, room=room, body="back again")
            assert ada.wait_error("NOT_FOUND", ref=gone)["message"]
        finally:
            crowd.close()

    with run_stack_in_thread(stack_options(state)) as stack:
        crowd = People(stack)
        try:
            carol = crowd.connect()
            page = carol.join(room)
            by_id = {m["id"]: m for m in page["messages"]}
            assert by_id[kept]["body"] == "typo here" and by_id[kept]["edited"]
            assert "body" not in by_id[gone] and by_id[gone]["deleted"]
            assert by_id[kept]["handle"] == handle
        finally:
            crowd.close()


def test_direct_messages_keep_the_first_copy_and_edits_reach_both(people: People) -> None:
    ada_id, ada_creds, ada_token = account(people.stack, fresh_handle("ada"))
    bob_handle = fresh_handle("bob")
    bob_id, bob_creds, bob_token = account(people.stack, bob_handle)
    ada = people.connect(identity=(ada_id, ada_creds))
    bob = people.connect(identity=(bob_id, bob_creds))
    hello(ada, token=ada_token)
    hello(bob, token=bob_token)

    dm = unique("dm")
    ada.send_private("message", id=dm, recipient=bob_handle, body="see you at 5")
    bob.wait_for_message(inbox(bob_id), lambda m: m.get("id") == dm, "the DM")
    # Re-sending the id with other text is not an edit: the first copy stays.
    ada.send_private("message", id=dm, recipient=bob_handle, body="see you at 6")
    bob.wait_count(inbox(bob_id), lambda m: m.get("id") == dm and m["type"] == "message", 2)

    def page(client: ChatClient, other: str) -> list[dict[str, Any]]:
        topic = inbox(client.client_id)
        before = len(client.on(topic))
        client.send_private("history", **{"with": other})
        return client.wait_for_message(
            topic, lambda m: m.get("type") == "history", "history", after=before
        )["messages"]

    assert [m["body"] for m in page(bob, ada_id)] == ["see you at 5"]

    # Ada's phone, another session of hers, sees her edit too (on her person's inbox).
    phone = people.connect(identity=(ada_id, ada_creds), session="phone-0123456789")
    ada.send_private("edit", id=dm, body="see you at 7", **{"with": bob_handle})
    for client, topic in ((ada, inbox(ada_id)), (phone, inbox(ada_id)), (bob, inbox(bob_id))):
        change = client.wait_for_message(topic, lambda m: m.get("type") == "edit", "the edit")
        assert (change["id"], change["body"], change["recipient"]) == (dm, "see you at 7", bob_id)
    (shown,) = page(bob, ada_id)
    assert shown["body"] == "see you at 7" and shown["edited"]
    bob.send_private("delete", id=dm, sender=ada_id, **{"with": ada_id})
    assert bob.wait_error("NOT_OWNER", ref=dm)["message"]
    ada.send_private("delete", id=dm, **{"with": bob_handle})
    bob.wait_for_message(inbox(bob_id), lambda m: m.get("type") == "delete", "the deletion")
    (placeholder,) = page(ada, bob_id)
    assert "body" not in placeholder and placeholder["deleted"]
