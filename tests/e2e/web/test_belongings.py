"""Rooms and groups follow the person, not the browser: hello's answer lists them
(docs/protocol.md), so signing in from a second browser context (its own, empty
localStorage) shows them, and what only one browser's storage remembered is dropped."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from tests.e2e.web.pages import Tab, account, handle_for, unique
from tests.e2e.web.test_rooms import RECORD_SUBSCRIBES, subscribes
from tests.support.web import WebStack

NewTab = Callable[..., Tab]


def test_rooms_and_an_accepted_group_appear_after_signing_in_from_a_second_browser(
    tabs: NewTab, web_stack: WebStack
) -> None:
    ada_handle, bob_handle = handle_for("ada"), handle_for("bob")
    ada_email = account(web_stack, ada_handle)
    ada = tabs("ada-laptop").sign_in(ada_email)
    bob = tabs("bob").sign_in(account(web_stack, bob_handle))
    rooms = [unique(f"kept{i}") for i in range(9)]  # with lobby and two inboxes: 12 filters
    left = unique("left")
    for room in [*rooms, left]:
        ada.join(room)
    # Joined on the server (she shows online there) before she leaves it again.
    expect(ada.online().filter(has_text=f"@{ada_handle}")).to_have_count(1)
    ada.page.locator("#rooms li", has_text=f"#{left}").locator("button.leave").click()
    expect(ada.page.locator("#rooms li", has_text=f"#{left}")).to_have_count(0)

    # Bob's two groups: Ada accepts one; the other stays an invitation.
    accepted, invited_only = unique("accepted"), unique("pending")
    for name in (accepted, invited_only):
        bob.page.fill("#group-name", name)
        bob.page.click("#group-form button")
        bob.page.locator("#groups .conv", has_text=name).click()
        bob.say(f"first words in {name}")
        bob.page.fill("#invite-member", f"@{ada_handle}")
        bob.page.click("#invite-form button")
        expect(ada.page.locator("#invitations li", has_text=name)).to_have_count(1)
    ada.page.locator("#invitations li", has_text=accepted).locator("button.accept").click()
    expect(ada.page.locator("#groups .conv", has_text=accepted)).to_have_count(1)

    # A second browser context: nothing in its storage but a room the server never heard of.
    phone = tabs("ada-phone")
    phone.page.add_init_script(RECORD_SUBSCRIBES)
    phone.open()
    stale = unique("stale")
    phone.page.evaluate(
        """([person, room]) => localStorage.setItem("iotchat.rooms." + person,
            JSON.stringify([room]))""",
        [ada.client_id, stale],
    )
    phone.sign_in(ada_email)
    assert phone.client_id == ada.client_id
    for room in ["lobby", *rooms]:
        expect(phone.page.locator("#rooms li", has_text=f"#{room}")).to_have_count(1)
    expect(phone.page.locator("#rooms li")).to_have_count(len(rooms) + 1)
    expect(phone.page.locator("#rooms li", has_text=f"#{left}")).to_have_count(0)
    expect(phone.page.locator("#rooms li", has_text=f"#{stale}")).to_have_count(0)
    expect(phone.page.locator("#groups .conv", has_text=accepted)).to_have_count(1)
    expect(phone.page.locator("#groups .conv", has_text=invited_only)).to_have_count(0)
    expect(phone.page.locator("#invitations li", has_text=invited_only)).to_have_count(1)

    # The rooms and the group are live there, not just listed.
    bob.join(rooms[-1])
    bob.say("to the room, seen on the phone")
    phone.open_room(rooms[-1])
    phone.expect_message("to the room, seen on the phone")
    phone.page.locator("#groups .conv", has_text=accepted).click()
    phone.expect_message(f"first words in {accepted}")  # the group's history
    bob.page.locator("#groups .conv", has_text=accepted).click()
    bob.say("to the group, seen on the phone")
    phone.expect_message("to the group, seen on the phone")
    sent = subscribes(phone.page)
    assert sent and all(len(packet) <= 8 for packet in sent), sent
    expect(phone.page.locator("#notice")).not_to_contain_text("not allowed")
