"""Pictures of the main screens for docs/screenshots/ (PNG), at a laptop's 1280x800 and a
phone's 390x844, taken from the real app on a real stack: the sign-in page, a room with a
conversation, people and a device, and the phone's room drawer. README.md shows two of them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from tests.e2e.web.pages import Tab, account, handle_for, unique
from tests.support.web import WebStack

NewTab = Callable[..., Tab]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
PNG = b"\x89PNG\r\n\x1a\n"


def save(tab: Tab, name: str) -> Path:
    """The tab as it looks once drawers have finished sliding."""
    tab.page.wait_for_function(
        """() => [...document.querySelectorAll(".drawer")].every((d) =>
            d.getAnimations().every((a) => a.playState !== "running"))"""
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.page.screenshot(path=str(path))
    assert path.read_bytes().startswith(PNG)
    return path


@pytest.mark.parametrize("kind", SIZES)
def test_screenshots_of_the_main_screens(tabs: NewTab, web_stack: WebStack, kind: str) -> None:
    size = SIZES[kind]
    room = unique("garden")
    visitor = tabs("visitor", viewport=size).open()
    expect(visitor.page.locator("#guest")).to_be_visible()
    save(visitor, f"sign-in-{kind}")

    grace = tabs("grace", viewport=size).sign_in(account(web_stack, handle_for("grace")))
    bob = tabs("bob").as_guest("Bob")
    if kind == "phone":
        grace.page.click("#rooms-toggle")
        grace.page.fill("#join-room", room)
        grace.page.press("#join-room", "Enter")
    else:
        grace.join(room)
    bob.join(room)
    bob.say("Morning! Is the greenhouse sensor back up?")
    grace.say("It is: see https://example.org/greenhouse for the graphs.\nBack in a minute.")
    bob.say("Great, thanks")
    grace.expect_message("Great, thanks")
    bob.page.locator("#text").press_sequentially("typing")
    expect(grace.page.locator("#typing")).to_contain_text("is typing")
    save(grace, f"chat-{kind}")

    if kind == "phone":
        grace.page.click("#rooms-toggle")
        expect(grace.page.locator("#sidebar")).to_be_visible()
        save(grace, "rooms-drawer-phone")
        grace.page.keyboard.press("Escape")
        grace.page.click("#people-toggle")
        expect(grace.page.locator("#people")).to_be_visible()
        save(grace, "people-drawer-phone")
