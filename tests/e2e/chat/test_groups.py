"""Private groups: members hear each other on their inboxes; someone outside the group can
neither read nor post, and never receives the group's messages. Groups are for signed-in
people, through chat/private; joining one takes an accepted invitation (test_groups_consent.py
covers the invitations themselves)."""

from __future__ import annotations

import pytest

from tests.e2e.chat.conftest import ChatClient, People, inbox, unique

pytestmark = pytest.mark.timeout(60)


def _group_update(client: ChatClient, members: set[str]) -> dict:
    """The ``group`` message announcing exactly ``members``."""
    return client.wait_for_message(
        inbox(client.client_id),
        lambda m: m.get("type") == "group" and {p["person"] for p in m["members"]} == members,
        f"a group update with {len(members)} members",
    )


def _group_message(client: ChatClient, group: str, message_id: str) -> dict:
    return client.wait_for_message(
        inbox(client.client_id),
        lambda m: m.get("type") == "message" and m.get("id") == message_id,
        f"group message {message_id}",
    )


def _accept(client: ChatClient, group: str) -> None:
    """Accept the invitation to ``group`` once it has arrived."""
    client.wait_for_message(
        inbox(client.client_id),
        lambda m: m.get("type") == "invitation" and m.get("groupId") == group,
        "the invitation",
    )
    client.send_private("accept", id=unique("accept"), groupId=group)


def test_a_private_group_is_for_its_members_only(people: People) -> None:
    ada = people.connect("Ada", signed_in=True)
    bob = people.connect("Bob", signed_in=True)
    carol = people.connect("Carol", signed_in=True)
    mallory = people.connect("Mallory", signed_in=True)

    ada.send_private("create", id=unique("create"), name="ops", members=[bob.client_id])
    created = _group_update(ada, {ada.client_id})
    group = created["groupId"]
    assert created["name"] == "ops"
    assert created["owner"] == ada.client_id
    _accept(bob, group)
    founders = {ada.client_id, bob.client_id}
    _group_update(bob, founders)

    ada.send_private("invite", id=unique("invite"), groupId=group, member=carol.client_id)
    _accept(carol, group)
    everyone = founders | {carol.client_id}
    for member in (ada, bob, carol):
        update = _group_update(member, everyone)
        assert (update["groupId"], update["name"], update["owner"]) == (group, "ops", ada.client_id)

    hello = unique("g")
    ada.send_private("message", id=hello, groupId=group, body="welcome, Carol")
    for member in (ada, bob, carol):
        got = _group_message(member, group, hello)
        assert (got["groupId"], got["sender"], got["body"]) == (
            group,
            ada.client_id,
            "welcome, Carol",
        )
    thanks = unique("g")
    carol.send_private("message", id=thanks, groupId=group, body="thanks")
    for member in (ada, bob, carol):
        assert _group_message(member, group, thanks)["sender"] == carol.client_id

    page = bob.history("groupId", group)
    assert [m["id"] for m in page["messages"]] == [thanks, hello]
    assert all(m["groupId"] == group for m in page["messages"])

    # Mallory knows the group id, but is not a member.
    peek, post, sneak = unique("peek"), unique("post"), unique("sneak")
    mallory.send_private("history", id=peek, groupId=group)
    mallory.wait_error("NOT_A_MEMBER", ref=peek)
    mallory.send_private("message", id=post, groupId=group, body="let me in")
    mallory.wait_error("NOT_A_MEMBER", ref=post)
    mallory.send_private("invite", id=sneak, groupId=group, member=mallory.client_id)
    mallory.wait_error("NOT_A_MEMBER", ref=sneak)

    later = unique("g")
    bob.send_private("message", id=later, groupId=group, body="after Mallory tried")
    for member in (ada, bob, carol):
        _group_message(member, group, later)
    # Her refused post was neither delivered nor stored.
    assert [m["id"] for m in bob.history("groupId", group)["messages"]] == [later, thanks, hello]
    # A reply to her own request means every earlier delivery has been made.
    assert mallory.history("room", unique("room"))["messages"] == []
    assert [m["type"] for m in mallory.inbox] == ["profile", "error", "error", "error", "history"]
    assert mallory.of_type(inbox(mallory.person), "message") == []
