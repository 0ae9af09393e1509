"""Many rooms on one connection: AWS IoT's 8 filters per SUBSCRIBE and 50 subscriptions per
connection (enforced by the local gateway as well) never silence the chat."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import Page, expect

from infra.local.gateway.lifecycle import DisconnectReason
from tests.e2e.web.pages import Tab, unique
from tests.support.web import WebStack

NewTab = Callable[..., Tab]
# Installed before the page's scripts: every MQTT SUBSCRIBE the page writes to a WebSocket,
# as its list of topic filters, in window.subscribes (MQTT 3.1.1 framing: a fixed header with
# the remaining length, the packet identifier, then per filter its length, bytes and QoS).
RECORD_SUBSCRIBES = """
(() => {
  const subscribes = (window.subscribes = []);
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
      : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(0);
    let at = 0;
    while (at < bytes.length) {
      const kind = bytes[at] >> 4;
      let length = 0, shift = 0, i = at + 1;
      for (;;) {
        const b = bytes[i++];
        length |= (b & 127) << shift;
        shift += 7;
        if (!(b & 128)) break;
      }
      const end = i + length;
      if (kind === 8) {
        const filters = [];
        for (let c = i + 2; c < end; ) {
          const size = (bytes[c] << 8) | bytes[c + 1];
          filters.push(new TextDecoder().decode(bytes.subarray(c + 2, c + 2 + size)));
          c += 2 + size + 1;
        }
        subscribes.push(filters);
      }
      at = end;
    }
    return send.call(this, data);
  };
})();
"""


def subscribes(page: Page) -> list[list[str]]:
    return page.evaluate("() => window.subscribes")


def test_a_person_in_12_rooms_keeps_receiving_in_all_of_them_after_a_reconnect(
    tabs: NewTab, web_stack: WebStack
) -> None:
    rooms = [unique(f"r{i:02d}") for i in range(12)]
    ada_tab = tabs("ada")
    ada_tab.page.add_init_script(RECORD_SUBSCRIBES)
    ada = ada_tab.as_guest("Ada")
    for room in rooms:
        ada.join(room)
    bob = tabs("bob").as_guest("Bob")
    for room in rooms:
        bob.join(room)
    bob.open_room(rooms[0])
    bob.say(f"before in {rooms[0]}")
    ada.open_room(rooms[0])
    ada.expect_message(f"before in {rooms[0]}")

    # The connection drops; the page comes back and subscribes to everything again.
    before = len(subscribes(ada.page))
    broker = web_stack.stack.gateway.broker
    ada_id, ada_session = ada.client_id, ada.session_id

    def drop() -> bool:  # runs on the stack's loop
        conn = broker.connections.get(ada_session)
        if conn is not None:
            broker.close(conn, DisconnectReason.CONNECTION_LOST)
        return conn is not None

    assert web_stack.stack.call(drop)
    inboxes = {f"chat/in/{ada_id}", f"chat/in/{ada_session}"}
    wanted = {*inboxes, "chat/pub/lobby", *(f"chat/pub/{r}" for r in rooms)}
    ada.page.wait_for_function(
        """([before, wanted]) => {
            const since = new Set(window.subscribes.slice(before).flat());
            return wanted.every((topic) => since.has(topic));
        }""",
        arg=[before, sorted(wanted)],
    )
    ada.wait_online()
    sent = subscribes(ada.page)
    assert all(len(packet) <= 8 for packet in sent), sent
    assert len(sent[before:]) >= 2  # 15 filters take two SUBSCRIBEs

    for room in rooms:
        bob.open_room(room)
        bob.say(f"after in {room}")
    for room in rooms[1:]:
        # Each room not on screen shows its unread badge.
        expect(ada.page.locator("#rooms li", has_text=f"#{room}").locator(".badge")).to_have_text(
            "1"
        )
    for room in rooms:
        ada.open_room(room)
        ada.expect_message(f"after in {room}")
    expect(ada.page.locator("#notice")).not_to_contain_text("not allowed")


def test_joining_past_the_room_cap_is_refused_with_a_clear_message(tabs: NewTab) -> None:
    ada = tabs("ada").as_guest("Ada")
    # 47 rooms besides lobby reach the cap of 48 (two of the 50 subscriptions are the
    # person's inbox and the session's replies). Joined for real: the rooms a page shows
    # come from the server (hello's answer), this browser's storage is only a cache.
    for i in range(47):
        ada.join(unique(f"cap{i:02d}"))
    expect(ada.page.locator("#rooms li")).to_have_count(48)
    one_more = unique("one-more")
    ada.page.fill("#join-room", one_more)
    ada.page.click("#join-form button")
    expect(ada.page.locator("#notice")).to_contain_text("Leave a room to join")
    expect(ada.page.locator("#rooms li")).to_have_count(48)
    expect(ada.page.locator("#join-room")).to_have_value(one_more)  # kept to try again
    # Leaving one makes room: the same join now works.
    ada.page.locator("#rooms li").nth(47).locator("button.leave").click()
    expect(ada.page.locator("#rooms li")).to_have_count(47)
    ada.page.click("#join-form button")
    expect(ada.page.locator("#conv-title")).to_have_text(f"#{one_more}")
    expect(ada.page.locator("#rooms li")).to_have_count(48)
