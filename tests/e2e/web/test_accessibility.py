"""Accessibility: axe-core (the npm package pinned in client/web's lock file) finds no serious
or critical violation on the sign-in and chat pages, and the chat works from the keyboard
alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from tests.e2e.web.pages import Tab, unique

NewTab = Callable[..., Tab]
AXE = Path(__file__).resolve().parents[3] / "client" / "web" / "node_modules" / "axe-core"
RUN_AXE = """async () => {
    const result = await axe.run(document, { resultTypes: ["violations"] });
    return result.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5),
    }));
}"""


def with_axe(tab: Tab) -> Tab:
    """axe-core installed in the tab before the page's scripts (an init script: the page's
    Content-Security-Policy stays as strict as ever)."""
    script = AXE / "axe.min.js"
    if not script.is_file():
        pytest.skip("axe-core is not installed: run scripts/setup (npm ci in client/web)")
    tab.page.add_init_script(path=str(script))
    return tab


def serious(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["desktop", "phone"])
def test_axe_finds_no_serious_violation_on_the_sign_in_and_chat_pages(
    tabs: NewTab, size: tuple[int, int]
) -> None:
    tab = with_axe(tabs("axe", viewport=size)).open()
    expect(tab.page.locator("#guest")).to_be_visible()
    assert serious(tab.page.evaluate(RUN_AXE)) == []

    tab.page.fill("#display-name", "Ada")
    tab.page.click("#guest")
    tab.wait_online()
    room = unique("room")
    if size[0] < 768:
        tab.page.click("#rooms-toggle")
        tab.page.fill("#join-room", room)
        tab.page.press("#join-room", "Enter")
    else:
        tab.join(room)
    tab.say("hello https://example.org and a second line")
    tab.expect_message("hello https://example.org and a second line")
    assert serious(tab.page.evaluate(RUN_AXE)) == []
    if size[0] < 768:  # the drawers, open
        tab.page.click("#people-toggle")
        expect(tab.page.locator("#people")).to_be_visible()
        assert serious(tab.page.evaluate(RUN_AXE)) == []


def test_the_chat_works_from_the_keyboard_alone(tabs: NewTab) -> None:
    tab = tabs("keys", viewport=(390, 844)).open()
    page = tab.page
    expect(page.locator("#guest")).to_be_visible()
    # Tab order starts at the top of the page: the display name, then "Continue as guest".
    page.keyboard.press("Tab")
    expect(page.locator("#display-name")).to_be_focused()
    page.keyboard.type("Kay")
    page.keyboard.press("Tab")
    expect(page.locator("#guest")).to_be_focused()
    page.keyboard.press("Enter")
    tab.wait_online()

    # The room drawer opens from its button, focus moves into it, Escape closes it again.
    page.locator("#rooms-toggle").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#sidebar")).to_be_visible()
    focus_inside = "() => document.getElementById('sidebar').contains(document.activeElement)"
    assert page.evaluate(focus_inside)
    page.keyboard.press("Escape")
    expect(page.locator("#sidebar")).not_to_be_visible()
    expect(page.locator("#rooms-toggle")).to_be_focused()

    # Joining a room from the keyboard leaves focus in the composer, ready to type.
    room = unique("keys")
    page.keyboard.press("Enter")
    page.locator("#join-room").focus()
    page.keyboard.type(room)
    page.keyboard.press("Enter")
    expect(page.locator("#conv-title")).to_have_text(f"#{room}")
    expect(page.locator("#text")).to_be_focused()
    page.keyboard.type("typed, never clicked")
    page.keyboard.press("Enter")
    tab.expect_message("typed, never clicked")

    # Every control has a name a screen reader can say.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll("button, input, textarea, select")]
            .filter((el) => el.offsetParent !== null || el.closest(".drawer"))
            .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                && !el.textContent.trim())
            .map((el) => el.id || el.outerHTML.slice(0, 60))"""
    )
    assert unnamed == []
