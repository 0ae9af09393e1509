"""hello's answer lists the rooms and groups a person belongs to, on the asking session's
replies (docs/protocol.md, "Names and handles"): a new session learns what another session
joined and accepted; a guest gets its rooms and never groups."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.chat.accounts import account, fresh_handle, hello, signed_in
from tests.e2e.chat.conftest import People, inbox, unique

pytestmark = pytest.mark.timeout(120)


def test_a_second_session_learns_the_rooms_and_accepted_groups_from_hello(
    people: People,
) -> None:
    identity_id, creds, token = account(people.stack, fresh_handle("ada"))
    laptop = people.connect(identity=(identity_id, creds), session=f"web-{uuid.uuid4().hex[:12]}")
    assert hello(laptop, token=token)["rooms"] == []
    kept, left = unique("kept"), unique("left")
    for room in (kept, left):
        laptop.join(room)
    laptop.send("leave", room=left)

    bob, _ = signed_in(people, "bob")
    groups = {}
    for name in ("accepted", "pending"):
        bob.send_private("create", id=unique("c"), name=name, members=[laptop.person])
        groups[name] = laptop.wait_for_message(
            inbox(laptop.person),
            lambda m, name=name: m.get("type") == "invitation" and m.get("name") == name,
            f"the invitation to {name}",
        )["groupId"]
    laptop.send_private("accept", groupId=groups["accepted"])
    laptop.wait_for_message(
        inbox(laptop.person),
        lambda m: m.get("type") == "group" and m.get("groupId") == groups["accepted"],
        "the accepted group",
    )

    phone = people.connect(identity=(identity_id, creds), session=f"web-{uuid.uuid4().hex[:12]}")
    phone.send_private("hello", token=token)
    answer = phone.wait_for_message(
        f"chat/in/{phone.client_id}",
        lambda m: m.get("type") == "profile" and m.get("rooms") == [kept],
        "hello's answer with the kept room only (the left one is gone)",
    )
    assert answer["groups"] == [
        {"groupId": groups["accepted"], "name": "accepted", "owner": bob.person}
    ]  # the pending one is an invitation, sent again after the answer
    phone.wait_for_message(
        f"chat/in/{phone.client_id}",
        lambda m: m.get("type") == "invitation" and m.get("groupId") == groups["pending"],
        "the pending invitation",
    )
    # The answer went to the asking session only.
    assert not [m for m in laptop.on(f"chat/in/{laptop.client_id}") if m.get("rooms") == [kept]]


def test_a_guest_gets_its_rooms_and_no_groups(people: People) -> None:
    guest = people.connect()
    room = unique("public")
    guest.join(room)
    answer = hello(guest)
    assert answer["rooms"] == [room]
    assert answer["guest"] is True and "groups" not in answer
