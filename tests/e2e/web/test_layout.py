"""The web client at phone widths: one column, nothing wider than the screen, the room list
and the people in drawers that open and close, by touch and by keyboard."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from tests.e2e.web.pages import Tab, unique

NewTab = Callable[..., Tab]

FITS_THE_SCREEN = "() => document.documentElement.scrollWidth <= window.innerWidth"


@pytest.mark.parametrize("size", [(360, 740), (390, 844)], ids=["360x740", "390x844"])
def test_a_phone_sees_one_column_and_can_chat(tabs: NewTab, size: tuple[int, int]) -> None:
    room = unique("room")
    phone = tabs("phone", viewport=size).as_guest("Pia")
    page = phone.page
    assert page.evaluate(FITS_THE_SCREEN)
    expect(page.locator("#text")).to_be_visible()
    expect(page.locator("#send")).to_be_visible()
    # The room list is a closed drawer until its button opens it.
    expect(page.locator("#sidebar")).not_to_be_visible()
    page.click("#rooms-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
    expect(page.locator("#rooms-toggle")).to_have_attribute("aria-expanded", "true")
    page.fill("#join-room", room)
    page.press("#join-room", "Enter")
    expect(page.locator("#conv-title")).to_have_text(f"#{room}")
    expect(page.locator("#sidebar")).not_to_be_visible()  # opening a room closes the drawer

    desk = tabs("desk").as_guest("Dan")
    desk.join(room)
    long_word = "x" * 300
    text = f"hello phone https://example.org/{long_word} {long_word}"
    desk.say(text)
    expect(phone.expect_message(text)).to_be_visible()
    phone.say("hello desk")
    desk.expect_message("hello desk")
    expect(phone.expect_message("hello desk")).to_be_visible()
    assert page.evaluate(FITS_THE_SCREEN)  # a long word or URL wraps instead of widening

    # People open from their button and close with Escape, focus back on the button.
    page.click("#people-toggle")
    expect(page.locator("#people")).to_be_in_viewport(ratio=1)
    expect(phone.online().filter(has_text="Dan")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#people")).not_to_be_visible()
    expect(page.locator("#people-toggle")).to_be_focused()
    # The scrim closes an open drawer too.
    page.click("#rooms-toggle")
    expect(page.locator("#sidebar")).to_be_in_viewport(ratio=1)
    page.mouse.click(size[0] - 10, size[1] // 2)
    expect(page.locator("#sidebar")).not_to_be_visible()
    assert page.evaluate(FITS_THE_SCREEN)


def test_from_tablet_width_up_three_columns_and_no_drawer_buttons(tabs: NewTab) -> None:
    tab = tabs("tablet", viewport=(800, 1000)).as_guest("Tia")
    for column in ("#sidebar", "#conversation", "#people"):
        expect(tab.page.locator(column)).to_be_visible()
    expect(tab.page.locator("#rooms-toggle")).to_be_hidden()
    expect(tab.page.locator("#people-toggle")).to_be_hidden()
    boxes = [tab.page.locator(c).bounding_box() for c in ("#sidebar", "#conversation", "#people")]
    assert all(box is not None for box in boxes)
    lefts = [box["x"] for box in boxes if box is not None]
    assert lefts == sorted(lefts)  # side by side, left to right
    assert tab.page.evaluate(FITS_THE_SCREEN)
