"""Groups by consent: an invitation is a request, and nothing of a group (messages, history,
member list, membership events) reaches someone who has not accepted; members leave, the
creator removes and renames, and every change shows in the group."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chat.accounts import signed_in
from tests.e2e.chat.conftest import ChatClient, People, inbox, unique

pytestmark = pytest.mark.timeout(120)


def about(client: ChatClient, group: str) -> list[dict[str, Any]]:
    """Everything on the client's inbox that names ``group``."""
    return [m for m in client.on(inbox(client.client_id)) if m.get("groupId") == group]


def kinds(client: ChatClient, group: str) -> list[str]:
    return [m["type"] for m in about(client, group)]


def next_on_inbox(client: ChatClient, kind: str, group: str, **match: Any) -> dict[str, Any]:
    return client.wait_for_message(
        inbox(client.client_id),
        lambda m: (
            m.get("type") == kind
            and m.get("groupId") == group
            and all(m.get(k) == v for k, v in match.items())
        ),
        f"{kind} of {group} {match}",
    )


def post(author: ChatClient, group: str, text: str) -> str:
    """A group message, waited for until its author's own copy arrived (each member's copy is
    published in turn by the same invocation, so by then everyone who gets one has it)."""
    message_id = unique("g")
    author.send_private("message", id=message_id, groupId=group, body=text)
    author.wait_for_message(
        inbox(author.client_id), lambda m: m.get("id") == message_id, "the author's copy"
    )
    return message_id


def event(client: ChatClient, group: str, name: str, person: str) -> dict[str, Any]:
    return client.wait_for_message(
        inbox(client.client_id),
        lambda m: (
            m.get("type") == "membership"
            and m.get("groupId") == group
            and m.get("event") == name
            and m["person"]["person"] == person
        ),
        f"membership {name} of {person}",
    )


def test_invite_accept_decline_leave_remove_rename(people: People) -> None:
    ada, _ = signed_in(people, "ada")
    bob, bob_profile = signed_in(people, "bob")
    carol, carol_profile = signed_in(people, "carol")

    create_id = unique("c")
    ada.send_private("create", id=create_id, name="ops", members=[bob_profile["handle"]])
    created = ada.wait_for_message(
        inbox(ada.client_id), lambda m: m.get("type") == "group", "the new group"
    )
    group = created["groupId"]
    assert [m["person"] for m in created["members"]] == [ada.client_id]  # asked, not added

    invitation = next_on_inbox(bob, "invitation", group)
    assert invitation["name"] == "ops" and invitation["by"]["person"] == ada.client_id

    # Before Bob accepts, nothing of the group reaches him.
    early = post(ada, group, "before Bob said yes")
    bob.send_private("history", groupId=group)
    assert bob.wait_error("NOT_A_MEMBER")["code"] == "NOT_A_MEMBER"
    assert kinds(bob, group) == ["invitation"]

    # He accepts: he is a member, sees the group and what it says from now on.
    bob.send_private("accept", groupId=group)
    joined = next_on_inbox(bob, "group", group)
    assert {m["person"] for m in joined["members"]} == {ada.client_id, bob.client_id}
    event(ada, group, "joined", bob.client_id)
    after = post(ada, group, "welcome, Bob")
    bob.wait_for_message(inbox(bob.client_id), lambda m: m.get("id") == after, "the welcome")
    bob.send_private("history", groupId=group)
    page = next_on_inbox(bob, "history", group)
    assert [m["id"] for m in page["messages"]] == [after, early]

    # Carol declines: the members hear it, she gets nothing else, and cannot accept later.
    ada.send_private("invite", groupId=group, member=carol_profile["handle"])
    next_on_inbox(carol, "invitation", group)
    event(bob, group, "invited", carol.client_id)
    carol.send_private("decline", groupId=group)
    event(ada, group, "declined", carol.client_id)
    carol.send_private("accept", groupId=group)
    assert carol.wait_error("NOT_INVITED")["code"] == "NOT_INVITED"
    post(ada, group, "after Carol said no")
    assert kinds(carol, group) == ["invitation"]

    # Bob renames? Only the creator may; Ada does, and both see the new name.
    bob.send_private("rename", groupId=group, name="not yours")
    assert bob.wait_error("NOT_OWNER")["code"] == "NOT_OWNER"
    ada.send_private("rename", groupId=group, name="ops-team")
    for member in (ada, bob):
        next_on_inbox(member, "group", group, name="ops-team")
        event(member, group, "renamed", ada.client_id)

    # Carol is invited again and accepts; Bob may not remove her, Ada does.
    ada.send_private("invite", groupId=group, member=carol_profile["handle"])
    carol.wait_count(
        inbox(carol.client_id),
        lambda m: m.get("type") == "invitation" and m.get("groupId") == group,
        2,
    )
    carol.send_private("accept", groupId=group)
    event(ada, group, "joined", carol.client_id)
    bob.send_private("remove", groupId=group, member=carol_profile["handle"])
    assert bob.wait_error("NOT_OWNER")["code"] == "NOT_OWNER"
    ada.send_private("remove", groupId=group, member=carol_profile["handle"])
    event(carol, group, "removed", carol.client_id)
    event(bob, group, "removed", carol.client_id)
    carol_seen = len(about(carol, group))
    post(ada, group, "after Carol was removed")
    refused = unique("g")
    carol.send_private("message", id=refused, groupId=group, body="still here?")
    assert carol.wait_error("NOT_A_MEMBER", ref=refused)["code"] == "NOT_A_MEMBER"
    assert [m for m in about(carol, group)[carol_seen:] if m["type"] != "error"] == []

    # Bob leaves: Ada hears it, and the group's next message no longer reaches him.
    bob.send_private("leave", groupId=group)
    event(ada, group, "left", bob.client_id)
    bob_seen = len(about(bob, group))
    last = post(ada, group, "after Bob left")
    assert [m for m in about(bob, group)[bob_seen:] if m.get("id") == last] == []
    # The creator cannot leave her own group.
    ada.send_private("leave", groupId=group)
    assert ada.wait_error("INVALID_REQUEST")["code"] == "INVALID_REQUEST"
