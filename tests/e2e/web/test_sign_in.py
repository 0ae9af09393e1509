"""The sign-in page as a newcomer meets it: only what applies is shown, the rules are said
before the first try, and the status badge tells the truth through signing out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from tests.e2e.web.pages import Tab, handle_for, unique

NewTab = Callable[..., Tab]


def test_the_sign_in_page_shows_no_confirm_card_or_empty_bars_before_sign_up(
    tabs: NewTab,
) -> None:
    tab = tabs("newcomer").open()
    page = tab.page
    expect(page.locator("#guest")).to_be_visible()
    expect(page.locator("#confirm-form")).to_be_hidden()
    expect(page.locator("#notice")).to_be_hidden()
    expect(page.locator("#auth-error")).to_be_hidden()
    expect(page.locator("#conn-status")).to_have_text("offline")

    # Every password rule is on screen before the first try, and ticks as it is met.
    rules = page.locator("#password-rules li")
    expect(rules).to_have_count(5)
    for rule in rules.all():
        expect(rule).to_be_visible()
    page.fill("#sign-up-password", "abc")
    expect(rules.filter(has_text="lowercase")).to_have_attribute("data-met", "true")
    expect(rules.filter(has_text="8 characters")).to_have_attribute("data-met", "false")
    page.fill("#sign-up-password", "Abcdefg-1")
    for rule in rules.all():
        expect(rule).to_have_attribute("data-met", "true")

    # A handle that looks like a guest's is refused before anything is sent.
    email = f"{unique('newcomer')}@example.com"
    page.fill("#sign-up-email", email)
    page.fill("#sign-up-handle", "guest-1234")
    page.fill("#sign-up-password", "Correct-horse-9")
    page.click("#sign-up-form button")
    expect(page.locator("#auth-error")).to_contain_text("does not start with guest-")
    expect(page.locator("#confirm-form")).to_be_hidden()

    # A refused password: Cognito's error, still no confirm card.
    page.fill("#sign-up-handle", handle_for("newcomer"))
    page.fill("#sign-up-password", "weakweak")
    page.click("#sign-up-form button")
    expect(page.locator("#auth-error")).to_be_visible()
    expect(page.locator("#auth-error")).to_contain_text("Password")
    expect(page.locator("#confirm-form")).to_be_hidden()
    assert len(tab.console_errors) == 1 and "400" in tab.console_errors[0]
    tab.console_errors.clear()

    # Accepted: now the code step, saying where a local stack keeps the code.
    page.fill("#sign-up-password", "Correct-horse-9")
    page.click("#sign-up-form button")
    expect(page.locator("#confirm-form")).to_be_visible()
    expect(page.locator("#confirm-email")).to_have_text(email)
    expect(page.locator("#code-hint")).to_contain_text("cognito/outbox.jsonl")
    expect(page.locator("#auth-error")).to_be_hidden()


def test_the_status_badge_is_truthful_through_sign_out(tabs: NewTab) -> None:
    tab = tabs("guest").as_guest("Gus")
    status = tab.page.locator("#conn-status")
    expect(status).to_have_text("online")
    tab.page.click("#sign-out")
    expect(tab.page.locator("#auth")).to_be_visible()
    expect(status).to_have_attribute("data-state", "offline")
    expect(status).to_have_text("offline")
    expect(tab.page.locator("#confirm-form")).to_be_hidden()
    expect(tab.page.locator("#notice")).to_be_hidden()
    # And back in: online again.
    tab.page.click("#guest")
    tab.wait_online()
    expect(status).to_have_text("online")
