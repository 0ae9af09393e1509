"""What people expect of any chat, in the browser: where a conversation starts, following the
newest message, links, line breaks, typing, unread counts, days, being offline, and
notifications they asked for."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from infra.local.gateway.lifecycle import DisconnectReason
from infra.local.identity import Credential
from tests.e2e.web.pages import Tab, account, handle_for, unique
from tests.support.web import WebStack

NewTab = Callable[..., Tab]


def pair_in_a_room(tabs: NewTab) -> tuple[str, Tab, Tab]:
    room = unique("room")
    ada = tabs("ada").as_guest("Ada")
    bob = tabs("bob").as_guest("Bob")
    ada.join(room)
    bob.join(room)
    return room, ada, bob


def test_an_empty_room_says_it_is_the_start(tabs: NewTab) -> None:
    room = unique("empty")
    ada = tabs("ada").as_guest("Ada")
    ada.join(room)
    marker = ada.page.locator("#start-marker")
    expect(marker).to_have_text(f"No messages yet. This is the start of #{room}.")
    ada.say("first words")
    expect(marker).to_have_text(f"This is the start of #{room}.")


def test_the_newest_message_is_followed_or_announced_by_a_pill(tabs: NewTab) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    for i in range(40):
        bob.say(f"filler {i:02d}")
    ada.expect_message("filler 39")
    pane = ada.page.locator("#messages-pane")
    at_bottom = "(p) => p.scrollHeight - p.scrollTop - p.clientHeight < 40"
    assert pane.evaluate(at_bottom)

    # Scrolled up, a new message does not move the page: a pill says it is there.
    pane.evaluate("(p) => { p.scrollTop = 0; }")
    bob.say("while Ada reads old ones")
    ada.expect_message("while Ada reads old ones")
    pill = ada.page.locator("#new-pill")
    expect(pill).to_be_visible()
    assert pane.evaluate("(p) => p.scrollTop") == 0
    pill.click()
    expect(pill).to_be_hidden()
    assert pane.evaluate(at_bottom)

    # Scrolled up and sending: the page jumps to her own message.
    pane.evaluate("(p) => { p.scrollTop = 0; }")
    ada.say("my own words")
    expect(ada.expect_message("my own words")).to_be_in_viewport()
    assert pane.evaluate(at_bottom)


def test_links_are_safe_and_everything_else_is_text(tabs: NewTab) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    text = (
        "docs at https://example.org/a?b=1&c=2. not javascript:alert(1) "
        "nor <a href='https://evil.example'>this</a> nor data:text/html,hi"
    )
    ada.say(text)
    item = bob.expect_message(text)
    links = item.locator("a")
    expect(links).to_have_count(2)  # the URL, and the one inside the quoted markup, as links
    first = links.first
    expect(first).to_have_attribute("href", "https://example.org/a?b=1&c=2")
    expect(first).to_have_text("https://example.org/a?b=1&c=2")
    for link in links.all():
        expect(link).to_have_attribute("rel", "noopener noreferrer")
        expect(link).to_have_attribute("target", "_blank")
        assert (link.get_attribute("href") or "").startswith("https://")
    # The markup is shown as the characters typed, not as an element.
    expect(item.locator(".text")).to_have_text(text)
    unsafe = bob.page.locator("#messages a[href^='javascript'], #messages a[href^='data']")
    assert unsafe.count() == 0


def test_shift_enter_keeps_a_line_break(tabs: NewTab) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    ada.page.fill("#text", "line one")
    ada.page.press("#text", "Shift+Enter")
    ada.page.keyboard.type("line two")
    expect(ada.page.locator("#text")).to_have_value("line one\nline two")  # not sent yet
    ada.page.press("#text", "Enter")
    expect(ada.page.locator("#text")).to_have_value("")
    item = bob.expect_message("line one\nline two")
    # Shown on two lines: its text's boxes sit at two heights.
    tops = item.locator(".text").evaluate(
        "(node) => [...node.getClientRects()].filter((r) => r.width > 1).map((r) => r.top)"
    )
    assert len({round(top) for top in tops}) == 2, tops


def test_typing_in_one_tab_shows_in_another(tabs: NewTab) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    ada.page.locator("#text").press_sequentially("hel")
    expect(bob.page.locator("#typing")).to_have_text(f"Ada @{ada.handle} is typing…")
    expect(ada.page.locator("#typing")).to_have_text("")  # not oneself


def test_unread_badges_per_room_and_a_count_in_the_title(tabs: NewTab) -> None:
    room, ada, bob = pair_in_a_room(tabs)
    other = unique("other")
    bob.join(other)  # Bob now looks at `other`
    ada.say("one")
    ada.say("two")
    badge = bob.page.locator("#rooms li", has_text=f"#{room}").locator(".badge")
    expect(badge).to_have_text("2")
    expect(bob.page).to_have_title("(2) iotchat")
    bob.open_room(room)
    expect(badge).to_have_count(0)
    expect(bob.page).to_have_title("iotchat")


def test_days_are_separated_and_one_senders_run_is_grouped(tabs: NewTab) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    ada.say("first of a run")
    bob.expect_message("first of a run")  # two sends in one millisecond could swap places
    ada.say("second of a run")
    bob.say("Bob answers")
    bob.expect_message("Bob answers")
    expect(bob.page.locator("#messages li.day")).to_have_text(["Today"])
    expect(bob.expect_message("first of a run")).not_to_have_class(re.compile("continued"))
    expect(bob.expect_message("second of a run")).to_have_class(re.compile("continued"))
    expect(bob.expect_message("Bob answers")).not_to_have_class(re.compile("continued"))
    labels = bob.page.evaluate(
        """async () => {
            const { dayLabel } = await import("/js/view.js");
            const now = Date.parse("2026-03-10T12:00:00");
            return [now, now - 86400000, Date.parse("2026-03-01T12:00:00")]
                .map((ts) => dayLabel(ts, now));
        }"""
    )
    assert labels[:2] == ["Today", "Yesterday"]
    assert "2026" in labels[2] and "1" in labels[2]


def test_offline_disables_the_composer_and_presence_is_unknown(
    tabs: NewTab, web_stack: WebStack
) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    ada_here = bob.page.locator(f'#online .person[data-client-id="{ada.client_id}"]')
    expect(ada_here).to_have_count(1)
    stack = web_stack.stack.stack
    broker = web_stack.stack.gateway.broker
    keys = stack.static_credentials.credentials
    bob_id, bob_session = bob.client_id, bob.session_id
    hidden: dict[str, Credential] = {}

    def network_down() -> bool:  # on the stack's loop: the network is gone until restored
        hidden.update({k: c for k, c in keys.items() if c.principal.identifier == bob_id})
        for key in hidden:
            del keys[key]
        conn = broker.connections.get(bob_session)
        if conn is not None:
            broker.close(conn, DisconnectReason.CONNECTION_LOST)
        return bool(hidden) and conn is not None

    assert web_stack.stack.call(network_down)
    expect(bob.page.locator("#text")).to_be_disabled()
    expect(bob.page.locator("#send")).to_be_disabled()
    expect(bob.page.locator("#presence-unknown")).to_be_visible()
    expect(bob.page.locator("#online")).to_be_hidden()

    web_stack.stack.call(lambda: keys.update(hidden))
    bob.wait_online()
    expect(bob.page.locator("#text")).to_be_enabled()
    expect(bob.page.locator("#presence-unknown")).to_be_hidden()
    expect(ada_here).to_have_count(1)
    expect(ada_here).to_be_visible()
    bob.say("back")
    ada.expect_message("back")
    # The refused handshakes while the network was gone are the only errors it may log.
    bob.console_errors[:] = [e for e in bob.console_errors if "WebSocket" not in e]


# Installed before the page's scripts: a Notification that records instead of showing, the
# permission granted, and a page whose visibility the test sets (window.testHidden).
FAKE_NOTIFICATIONS = """
(() => {
  window.shown = [];
  class RecordingNotification {
    static permission = "granted";
    static async requestPermission() { return "granted"; }
    constructor(title, options) { window.shown.push({ title, body: options.body }); }
  }
  window.Notification = RecordingNotification;
  window.testHidden = false;
  Object.defineProperty(Document.prototype, "visibilityState", {
    get() { return window.testHidden ? "hidden" : "visible"; },
  });
})();
"""


def test_notifications_are_opt_in_and_only_for_direct_messages_and_mentions_while_hidden(
    tabs: NewTab, web_stack: WebStack
) -> None:
    bob_tab = tabs("bob")
    bob_tab.page.add_init_script(FAKE_NOTIFICATIONS)
    room = unique("room")
    bob_handle = handle_for("bob")
    bob = bob_tab.sign_in(account(web_stack, bob_handle))
    ada = tabs("ada").sign_in(account(web_stack, handle_for("ada")))
    bob.join(room)
    ada.join(room)
    shown = "() => window.shown"

    bob.page.evaluate("() => { window.testHidden = true; }")
    ada.say(f"@{bob_handle} before opting in")
    bob.expect_message(f"@{bob_handle} before opting in")

    bob.page.click("#notify")
    expect(bob.page.locator("#notify")).to_have_attribute("aria-pressed", "true")
    ada.say("just chatting")
    ada.say(f"hey @{bob_handle}, look")
    bob.expect_message(f"hey @{bob_handle}, look")
    bob.page.wait_for_function("() => window.shown.length >= 1")
    # Neither the mention before opting in nor the plain message (both came first) showed.
    notes = bob.page.evaluate(shown)
    assert [n["body"] for n in notes] == [f"hey @{bob_handle}, look"]
    assert room in notes[0]["title"]

    ada.online().filter(has_text=bob_handle).locator("button.dm").click()
    ada.say("a direct word")
    bob.page.wait_for_function("() => window.shown.length === 2")
    assert bob.page.evaluate(shown)[1]["body"] == "a direct word"

    bob.page.evaluate("() => { window.testHidden = false; }")
    ada.say("seen while looking")
    bob.page.locator("#dms .conv").click()
    bob.expect_message("seen while looking")
    assert len(bob.page.evaluate(shown)) == 2  # a visible tab already shows it


def test_a_new_display_name_shows_everywhere_and_a_deceptive_one_is_refused(
    tabs: NewTab,
) -> None:
    _, ada, bob = pair_in_a_room(tabs)
    handle = ada.handle
    ada.say("said under my first name")
    said = bob.expect_message("said under my first name")
    expect(said.locator(".sender")).to_have_text(f"Ada @{handle}")

    ada.page.fill("#my-display-name", "Ada Lovelace")
    ada.page.press("#my-display-name", "Enter")
    expect(ada.page.locator("#my-name")).to_have_text(f"Ada Lovelace @{handle}")
    # Others see the stored name change on what she said and in who is here.
    expect(said.locator(".sender")).to_have_text(f"Ada Lovelace @{handle}")
    expect(bob.online().filter(has_text="Ada Lovelace")).to_have_count(1)

    # A name with a right-to-left override is refused, and the stored one stays.
    ada.page.fill("#my-display-name", "Admin\u202e")
    ada.page.press("#my-display-name", "Enter")
    expect(ada.page.locator("#notice")).to_contain_text("That name cannot be used")
    expect(ada.page.locator("#my-display-name")).to_have_value("Ada Lovelace")
    expect(said.locator(".sender")).to_have_text(f"Ada Lovelace @{handle}")
