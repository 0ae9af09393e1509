"""Direct messages reach exactly the two people in the conversation, and only they can read
its history. They need signed-in accounts and go through chat/private (docs/protocol.md); a
guest is neither sender nor recipient."""

from __future__ import annotations

import time

import pytest

from tests.e2e.chat.conftest import SUBACK_FAILURE, People, inbox, unique

pytestmark = pytest.mark.timeout(60)


def test_direct_messages_reach_only_the_two_parties(people: People) -> None:
    ada = people.connect("Ada", signed_in=True)
    bob = people.connect("Bob", signed_in=True)
    eve = people.connect("Eve", signed_in=True)

    # Nobody can listen in on someone else's inbox.
    for topic_filter in (inbox(ada.client_id), inbox(bob.client_id), "chat/in/+", "chat/in/#"):
        assert eve.subscribe(topic_filter) == [SUBACK_FAILURE], topic_filter

    started = int(time.time() * 1000)
    first = unique("dm")
    ada.send_private("message", id=first, recipient=bob.client_id, body="psst, Bob", name="Ada")

    def is_first(m: dict) -> bool:
        return m.get("type") == "message" and m.get("id") == first

    got = bob.wait_for_message(inbox(bob.client_id), is_first, "Ada's direct message")
    assert got["body"] == "psst, Bob"
    assert got["recipient"] == bob.client_id
    assert got["sender"] == ada.client_id
    assert started <= got["ts"] <= time.time() * 1000
    assert "room" not in got
    # The sender gets its own copy too (other devices of the same person see the conversation).
    assert ada.wait_for_message(inbox(ada.client_id), is_first, "the sender's copy") == got

    reply = unique("dm")
    bob.send_private("message", id=reply, recipient=ada.client_id, body="hi Ada")
    back = ada.wait_for_message(inbox(ada.client_id), lambda m: m.get("id") == reply, "Bob's reply")
    assert (back["sender"], back["recipient"]) == (bob.client_id, ada.client_id)

    # Both parties read the same conversation, newest first.
    for me, other in ((ada, bob), (bob, ada)):
        page = me.history("with", other.client_id)
        assert [m["id"] for m in page["messages"]] == [reply, first]
        assert page["cursor"] is None

    # Eve's own conversation with Ada is empty (answered, so every delivery is done by now)...
    assert eve.history("with", ada.client_id)["messages"] == []
    assert eve.history("with", bob.client_id)["messages"] == []
    # ...and nothing of Ada and Bob's ever reached her.
    assert eve.of_type(inbox(eve.client_id), "message") == []
    # (her profile, from her hello, and her two history pages: nothing else)
    assert [topic for topic, _ in eve.raw] == [inbox(eve.client_id)] * 3


def test_a_guest_gets_no_direct_messages_and_sends_none(people: People) -> None:
    """A guest identity's credentials are anyone's who knows its id (on AWS too), so nothing
    private is ever sent to one, and a guest's own attempt is refused in plain words."""
    ada = people.connect("Ada", signed_in=True)
    guest = people.connect("Guest")
    refused = unique("dm")
    ada.send_private("message", id=refused, recipient=guest.client_id, body="psst")
    ada.wait_error("SIGN_IN_REQUIRED", ref=refused)
    tried = unique("dm")
    guest.send("message", id=tried, recipient=ada.client_id, body="hi")
    assert "signed-in" in guest.wait_error("SIGN_IN_REQUIRED", ref=tried)["message"]
    # The legitimate conversation still works, and the guest got nothing of it.
    bob = people.connect("Bob", signed_in=True)
    fine = unique("dm")
    ada.send_private("message", id=fine, recipient=bob.client_id, body="psst")
    bob.wait_for_message(inbox(bob.client_id), lambda m: m.get("id") == fine, "the message")
    assert guest.of_type(inbox(guest.client_id), "message") == []
    assert ada.history("with", guest.client_id)["messages"] == []
