"""A page object for the web client: what a person does in a tab, and what they see.

Each tab is its own browser context (its own storage, so its own Cognito identity), records
console errors, page errors and JavaScript dialogs, and is asserted to have none of them
when the test ends. Waits go through Playwright's auto-waiting assertions, never sleeps.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.support.cognito import PASSWORD, unsigned_client
from tests.support.waiting import wait_for
from tests.support.web import WebStack

TIMEOUT_MS = 15_000
expect.set_options(timeout=TIMEOUT_MS)


def unique(prefix: str) -> str:
    """A fresh room name or text, so tests sharing a stack never see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


DESKTOP = (1200, 760)


class Tab:
    def __init__(
        self, browser: Browser, url: str, label: str, viewport: tuple[int, int] = DESKTOP
    ) -> None:
        self.url = url
        self.label = label
        width, height = viewport
        self.context: BrowserContext = browser.new_context(
            viewport={"width": width, "height": height}
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page: Page = self.context.new_page()
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        self.page.on("dialog", self._dialog)
        self.closed = False

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.console_errors.append(f"{message.type}: {message.text}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    # ------------------------------------------------------------------ signing in

    def open(self) -> Tab:
        self.page.goto(self.url)
        return self

    def as_guest(self, name: str | None = None) -> Tab:
        self.open()
        if name is not None:
            self.page.fill("#display-name", name)
        self.page.click("#guest")
        self.wait_online()
        return self

    def wait_online(self) -> None:
        expect(self.page.locator("#conn-status")).to_have_attribute("data-state", "online")

    def sign_in(self, email: str, password: str = PASSWORD) -> Tab:
        self.open()
        self.page.fill("#sign-in-email", email)
        self.page.fill("#sign-in-password", password)
        self.page.click("#sign-in-form button")
        self.wait_online()
        return self

    @property
    def client_id(self) -> str:
        """The person: the tab's Cognito identity id."""
        text = self.page.locator("#my-id").text_content() or ""
        assert re.fullmatch(r"[a-z0-9-]+:[0-9a-f-]{36}", text), text
        return text

    @property
    def session_id(self) -> str:
        """This tab's MQTT client id: the identity id and the page's session part."""
        value = self.page.locator("#my-id").get_attribute("data-session") or ""
        assert value.startswith(self.client_id + "_web-"), value
        return value

    @property
    def handle(self) -> str:
        """The handle the backend gave (guests) or the person chose (signed in)."""
        label = self.page.locator("#my-name")
        expect(label).to_contain_text("@")
        return (label.text_content() or "").rsplit("@", 1)[1].strip()

    # ------------------------------------------------------------------ chatting

    def join(self, room: str) -> None:
        self.page.fill("#join-room", room)
        self.page.click("#join-form button")
        expect(self.page.locator("#conv-title")).to_have_text(f"#{room}")

    def open_room(self, room: str) -> None:
        self.page.locator("#rooms .conv", has_text=f"#{room}").click()
        expect(self.page.locator("#conv-title")).to_have_text(f"#{room}")

    def say(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.press("#text", "Enter")
        expect(self.page.locator("#text")).to_have_value("")

    def messages(self) -> list[str]:
        return self.page.locator("#messages .text").all_text_contents()

    def expect_message(self, text: str) -> Any:
        """The message's list item, once it is on screen (exactly once)."""
        item = self.page.locator("#messages li", has=self.page.get_by_text(text, exact=True))
        expect(item).to_have_count(1)
        return item

    def online(self) -> Any:
        return self.page.locator("#online .person")

    # ------------------------------------------------------------------ evidence

    def screenshot(self, folder: Path, name: str) -> None:
        if not self.closed:
            self.page.screenshot(path=str(folder / f"{name}-{self.label}.png"), full_page=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.context.close()

    def problems(self) -> list[str]:
        return [*self.console_errors, *self.page_errors, *(f"dialog {d}" for d in self.dialogs)]


def account(web_stack: WebStack, handle: str) -> str:
    """A confirmed account with this chat handle, made through the user pool's API as a
    person signing up would; returns its email (the password is PASSWORD)."""
    email = f"{handle}@example.com"
    idp = unsigned_client(web_stack.stack, "cognito-idp")
    client_id = web_stack.config["userPoolClientId"]
    idp.sign_up(
        ClientId=client_id,
        Username=email,
        Password=PASSWORD,
        UserAttributes=[
            {"Name": "email", "Value": email},
            {"Name": "custom:handle", "Value": handle},
        ],
    )
    code = outbox_code(web_stack.state_dir, email)
    idp.confirm_sign_up(ClientId=client_id, Username=email, ConfirmationCode=code)
    return email


def handle_for(prefix: str) -> str:
    """A fresh handle (the chat's handles are unique for good)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def outbox_code(state_dir: Path, username: str) -> str:
    """The newest verification code the local user pool "mailed" to ``username``."""
    path = state_dir / "cognito" / "outbox.jsonl"

    def codes() -> list[str]:
        if not path.exists():
            return []
        records = [json.loads(line) for line in path.read_text().splitlines() if line]
        return [r["code"] for r in records if r["username"].lower() == username.lower()]

    return wait_for(codes, timeout=10)[-1]
