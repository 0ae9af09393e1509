"""Devices seen in a room (their status from the telemetry path, their answers marked as a
device's), and people changing what they said."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from cli import devices
from tests.e2e.web.pages import Tab, account, handle_for, unique
from tests.support.web import WebStack

NewTab = Callable[..., Tab]
ROOT = Path(__file__).resolve().parents[3]
TELEMETRY_PERIOD_S = 3


@pytest.fixture
def edge_device(web_stack: WebStack, tmp_path: Path) -> Iterator[Callable[[str, str], None]]:
    """``start(thing, room)``: register a device and run ``iotchat edge run`` for it, as its
    owner would, reporting telemetry every TELEMETRY_PERIOD_S seconds."""
    started: list[subprocess.Popen[bytes]] = []

    def start(thing: str, room: str) -> None:
        folder = tmp_path / thing
        devices.create_device(thing, folder, Path(web_stack.stack.stack.stack_file))
        command = [sys.executable, "-m", "cli.main", "edge", "run", "--device-dir", str(folder)]
        command += ["--room", room, "--interval", str(TELEMETRY_PERIOD_S)]
        quiet = subprocess.DEVNULL
        started.append(subprocess.Popen(command, cwd=ROOT, stdout=quiet, stderr=quiet))

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_a_room_shows_its_devices_status_and_marks_their_answers(
    tabs: NewTab, edge_device: Callable[[str, str], None]
) -> None:
    room = unique("lab")
    thing = unique("pi")
    ada = tabs("ada").as_guest("Ada")
    ada.join(room)
    edge_device(thing, room)

    device = ada.page.locator(f'#devices li[data-thing="{thing}"]')
    expect(device).to_be_visible(timeout=60_000)  # the process starts, then one period
    expect(device.locator("dt")).to_contain_text(["status", "uptime", "load", "memory"])
    expect(device.locator("dd").nth(0)).to_have_text("online")
    expect(device.locator("dd").nth(1)).to_have_text(re.compile(r"^(\d+d )?(\d+h )?\d+m$"))
    expect(device.locator("dd").nth(3)).to_have_text(re.compile(r"^\d+ / \d+ MiB used$"))
    # Updated with each reading: the time of the reading moves within a period or two.
    first = device.locator("time").get_attribute("datetime")
    expect(device.locator("time")).not_to_have_attribute(
        "datetime", first or "", timeout=(3 * TELEMETRY_PERIOD_S + 10) * 1000
    )

    # What the device says is marked as a device's, by its thing name, whole.
    online = ada.page.locator("#messages li.from-device", has_text=f"{thing} online")
    expect(online).to_have_count(1)
    expect(online.locator(".sender")).to_have_text(thing)
    expect(online.locator(".kind")).to_have_text("device")
    ada.say("/status")
    answer = ada.page.locator("#messages li.from-device", has_text=f"{thing}: up ")
    expect(answer).to_have_count(1, timeout=30_000)
    # A person's message never carries the mark.
    expect(ada.expect_message("/status").locator(".kind")).to_have_count(0)


def test_people_edit_and_delete_their_own_messages_and_only_those(
    tabs: NewTab, web_stack: WebStack
) -> None:
    room = unique("room")
    ada = tabs("ada").sign_in(account(web_stack, handle_for("ada")))
    ada_again = tabs("ada-phone", viewport=(390, 844)).sign_in(
        account_email(ada)
    )  # a second session of the same person
    bob = tabs("bob").as_guest("Bob")
    for tab in (ada, bob):
        tab.join(room)
    ada_again.page.click("#rooms-toggle")
    ada_again.page.fill("#join-room", room)
    ada_again.page.press("#join-room", "Enter")

    ada.say("teh first draft")
    ada.say("a regrettable remark")
    bob.say("Bob's own words")
    bob.expect_message("a regrettable remark")

    # Only one's own messages offer Edit and Delete.
    expect(ada.expect_message("Bob's own words").locator("button.edit")).to_have_count(0)
    expect(bob.expect_message("teh first draft").locator("button.edit")).to_have_count(0)
    expect(bob.expect_message("Bob's own words").locator("button.edit")).to_have_count(1)

    draft = ada.expect_message("teh first draft")
    draft.locator("button.edit").click()
    expect(ada.page.locator("#text")).to_have_value("teh first draft")
    expect(ada.page.locator("#editing")).to_be_visible()
    ada.page.fill("#text", "the first draft")
    ada.page.press("#text", "Enter")
    expect(ada.page.locator("#editing")).to_be_hidden()
    for tab in (ada, ada_again, bob):
        edited = tab.expect_message("the first draft")
        expect(edited.locator(".state")).to_have_text("(edited)")
        assert "teh first draft" not in tab.messages()

    remark = ada.expect_message("a regrettable remark")
    remark.locator("button.delete").click()
    expect(remark.locator("button.delete")).to_have_text("Delete for everyone?")
    remark.locator("button.delete").click()
    for tab in (ada, ada_again, bob):
        expect(tab.page.locator("#messages li.deleted .text")).to_have_text(["message deleted"])
        assert "a regrettable remark" not in tab.messages()

    # History after a reload shows the same: the edit, and the deletion's placeholder.
    bob.page.reload()
    bob.wait_online()
    bob.open_room(room)
    expect(bob.expect_message("the first draft").locator(".state")).to_have_text("(edited)")
    expect(bob.page.locator("#messages li.deleted")).to_have_count(1)
    assert "a regrettable remark" not in bob.messages()
    assert "teh first draft" not in bob.messages()


def account_email(tab: Tab) -> str:
    """The email a signed-in tab shows ("signed in as ...")."""
    text = tab.page.locator("#who-am-i").text_content() or ""
    return text.removeprefix("signed in as ")
