"""Nothing a person sent is lost: a message the network ate is sent again, with its id, when
the page reconnects, and shown once everywhere."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from tests.e2e.web.pages import Tab, unique

NewTab = Callable[..., Tab]

# Installed before the page's scripts: the first WebSocket write holding window.loseText
# never leaves the browser and (unless window.closeWithIt is false) the socket dies with it, as
# when a phone loses its network while a message is in flight. window.lostWrites counts what
# was eaten.
LOSE_ONE_WRITE = """
(() => {
  window.loseText = null;
  window.lostWrites = 0;
  window.closeWithIt = true;
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (window.loseText && ArrayBuffer.isView(data)) {
      const text = new TextDecoder().decode(data);
      if (text.includes(window.loseText)) {
        window.loseText = null;
        window.lostWrites += 1;
        if (window.closeWithIt) this.close();
        return undefined;
      }
    }
    return send.call(this, data);
  };
})();
"""


def test_a_message_lost_in_flight_is_sent_again_and_shown_once(tabs: NewTab) -> None:
    room = unique("room")
    bob_tab = tabs("bob")
    bob_tab.page.add_init_script(LOSE_ONE_WRITE)
    bob = bob_tab.as_guest("Bob")
    ada = tabs("ada").as_guest("Ada")
    bob.join(room)
    ada.join(room)

    text = unique("lost in flight")
    bob.page.evaluate("(text) => { window.loseText = text; }", text)
    bob.say(text)
    assert bob.page.evaluate("() => window.lostWrites") == 1
    # Bob sees it at once, marked as not yet delivered, until the backend carries it back.
    mine = bob.expect_message(text)
    bob.wait_online()
    expect(mine).not_to_have_class(re.compile(r"\bpending\b"))
    expect(mine.locator(".state")).to_have_count(0)
    ada.expect_message(text)  # exactly once
    bob.say("and the next one")
    ada.expect_message("and the next one")
    assert ada.messages()[-2:] == [text, "and the next one"]

    # After a reload Bob's history has it once too, and nothing is left to resend.
    bob.page.reload()
    bob.wait_online()
    bob.open_room(room)
    bob.expect_message(text)
    assert bob.page.evaluate(
        "(id) => sessionStorage.getItem('iotchat.outbox.' + id)", bob.client_id
    ) in ("[]", None)
    # The socket closed under it: the page logs nothing for that, but tolerate the browser's
    # own note about a WebSocket closed before it opened, should one appear.
    bob.console_errors[:] = [e for e in bob.console_errors if "WebSocket" not in e]


def test_a_message_lost_on_a_connection_that_stays_up_is_sent_again_after_a_while(
    tabs: NewTab,
) -> None:
    room = unique("room")
    bob_tab = tabs("bob")
    bob_tab.page.add_init_script(LOSE_ONE_WRITE)
    bob = bob_tab.as_guest("Bob")
    ada = tabs("ada").as_guest("Ada")
    bob.join(room)
    ada.join(room)

    text = unique("lost quietly")
    bob.page.evaluate("(text) => { window.loseText = text; window.closeWithIt = false; }", text)
    bob.say(text)
    assert bob.page.evaluate("() => window.lostWrites") == 1
    expect(bob.expect_message(text)).to_have_class(re.compile(r"\bpending\b"))
    # Nothing tells the page the message was lost; its outbox resends it after 10 s.
    arrived = ada.page.locator("#messages li", has=ada.page.get_by_text(text, exact=True))
    expect(arrived).to_have_count(1, timeout=30_000)
    expect(bob.expect_message(text)).not_to_have_class(re.compile(r"\bpending\b"), timeout=30_000)
    assert ada.messages().count(text) == 1
