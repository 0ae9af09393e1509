"""The web client in a real browser against a real local stack: what people see and do."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from playwright.sync_api import expect

from infra.local.gateway.lifecycle import DisconnectReason
from infra.local.identity import Credential
from tests.e2e.web.pages import Tab, account, handle_for, outbox_code, unique
from tests.support.web import WebStack

NewTab = Callable[[str], Tab]


def guests_in_a_room(tabs: NewTab, *names: str) -> tuple[str, list[Tab]]:
    """A new room and, per name, a tab signed in as a guest of that name that joined it."""
    room = unique("room")
    guests = [tabs(name.lower()).as_guest(name) for name in names]
    for guest in guests:
        guest.join(room)
    return room, guests


def test_two_guests_chat_in_a_room_and_history_survives_a_reload(tabs: NewTab) -> None:
    room, (ada, bob) = guests_in_a_room(tabs, "Ada", "Bob")

    ada.say("hello from Ada")
    seen_by_bob = bob.expect_message("hello from Ada")
    # Named as the backend stored her: display name, generated guest handle, a guest's mark.
    expect(seen_by_bob.locator(".sender")).to_have_text(f"Ada @{ada.handle}")
    expect(seen_by_bob.locator(".kind.guest")).to_have_text("guest")
    expect(seen_by_bob.locator("time")).to_have_text(re.compile(r"\d\d:\d\d:\d\d"))
    bob.say("hi Ada, Bob here")
    ada.expect_message("hi Ada, Bob here")
    # Each sees the other's message once and their own as "you".
    expect(ada.expect_message("hello from Ada").locator(".sender")).to_have_text("you")

    # A reload keeps the identity and the rooms; the conversation comes back from history.
    ada.page.reload()
    ada.wait_online()
    ada.open_room(room)
    ada.expect_message("hello from Ada")
    ada.expect_message("hi Ada, Bob here")
    assert ada.messages() == ["hello from Ada", "hi Ada, Bob here"]


def test_presence_shows_who_is_online_and_who_left(tabs: NewTab) -> None:
    room, (ada, bob) = guests_in_a_room(tabs, "Ada", "Bob")
    bob_id = bob.client_id

    bob_in_adas_list = ada.online().filter(has_text="Bob")
    expect(bob_in_adas_list).to_have_count(1)
    expect(bob.online().filter(has_text="Ada")).to_have_count(1)
    # A third tab arriving later learns who is already there from `who`.
    cy = tabs("cy").as_guest("Cy")
    cy.join(room)
    expect(cy.online()).to_have_count(3)

    bob.close()  # the tab goes away: no leave, just a dropped connection
    expect(bob_in_adas_list).to_have_count(0)
    expect(cy.page.locator(f'#online .person[data-client-id="{bob_id}"]')).to_have_count(0)
    expect(ada.online()).to_have_count(2)

    # Leaving a room (its leave button) is seen by those still there.
    cy.page.locator("#rooms li", has_text=f"#{room}").locator("button.leave").click()
    expect(cy.page.locator("#rooms li", has_text=f"#{room}")).to_have_count(0)
    expect(ada.online().filter(has_text="Cy")).to_have_count(0)
    expect(ada.online()).to_have_count(1)  # Ada alone


def test_html_in_messages_and_names_is_shown_as_text(tabs: NewTab) -> None:
    room = unique("room")
    evil_name = '<b id="injected-name">Mallory</b>'
    evil_text = "<img src=x onerror=alert(1)>"
    mallory = tabs("mallory").as_guest(evil_name)
    ada = tabs("ada").as_guest("Ada")
    mallory.join(room)
    ada.join(room)

    mallory.say(evil_text)
    item = ada.expect_message(evil_text)
    expect(item.locator(".text")).to_have_text(evil_text)
    expect(item.locator(".sender")).to_contain_text(evil_name)
    expect(ada.online().filter(has_text=evil_name)).to_have_count(1)
    for tab in (ada, mallory):
        assert tab.page.locator("img").count() == 0
        assert tab.page.locator("#injected-name").count() == 0
        assert tab.dialogs == []
    # History renders the same way.
    ada.page.reload()
    ada.wait_online()
    ada.open_room(room)
    ada.expect_message(evil_text)
    assert ada.page.locator("img").count() == 0
    assert ada.dialogs == []


def test_sign_up_with_the_emailed_code_then_chat(tabs: NewTab, web_stack: WebStack) -> None:
    room = unique("room")
    email = f"{unique('grace')}@example.com"
    grace = tabs("grace").open()
    grace.page.fill("#display-name", "Grace")
    grace.page.fill("#sign-up-email", email)
    handle = handle_for("grace")
    grace.page.fill("#sign-up-handle", handle)
    grace.page.fill("#sign-up-password", "Correct-horse-9")
    grace.page.click("#sign-up-form button")
    expect(grace.page.locator("#confirm-form")).to_be_visible()
    expect(grace.page.locator("#confirm-email")).to_have_text(email)

    code = outbox_code(web_stack.state_dir, email)
    grace.page.fill("#confirm-code", "000000" if code != "000000" else "111111")
    grace.page.click("#confirm-form button")
    expect(grace.page.locator("#auth-error")).not_to_be_empty()  # a wrong code is refused
    # The refused ConfirmSignUp (HTTP 400) is the one error this tab may log.
    assert len(grace.console_errors) == 1 and "400" in grace.console_errors[0]
    grace.console_errors.clear()

    grace.page.fill("#confirm-code", code)
    grace.page.click("#confirm-form button")
    grace.wait_online()
    expect(grace.page.locator("#who-am-i")).to_have_text(f"signed in as {email}")

    ada = tabs("ada").as_guest("Ada")
    grace.join(room)
    ada.join(room)
    grace.say("signed in and chatting")
    from_grace = ada.expect_message("signed in and chatting")
    expect(from_grace.locator(".sender")).to_have_text(f"Grace @{handle}")
    expect(from_grace.locator(".kind.guest")).to_have_count(0)  # signed in: no guest mark

    # Signing in again later (a new tab) reaches the same identity.
    again = tabs("grace-again").open()
    again.page.fill("#sign-in-email", email)
    again.page.fill("#sign-in-password", "Correct-horse-9")
    again.page.click("#sign-in-form button")
    again.wait_online()
    assert again.client_id == grace.client_id


def test_direct_messages_and_groups_by_consent_between_signed_in_people(
    tabs: NewTab, web_stack: WebStack
) -> None:
    room = unique("room")
    ada_handle, bob_handle = handle_for("ada"), handle_for("bob")
    ada = tabs("ada").sign_in(account(web_stack, ada_handle))
    bob = tabs("bob").sign_in(account(web_stack, bob_handle))
    cy = tabs("cy").as_guest("Cy")
    ada.join(room)
    bob.join(room)
    cy.join(room)

    # Direct: Ada picks Bob from the room's online list (Cy, a guest, offers no such button).
    expect(ada.online().filter(has_text=f"@{bob_handle}").locator("button.dm")).to_have_count(1)
    expect(ada.online().filter(has_text="Cy").locator("button.dm")).to_have_count(0)
    ada.online().filter(has_text=f"@{bob_handle}").locator("button.dm").click()
    expect(ada.page.locator("#conv-title")).to_have_text(f"Direct: @{bob_handle}")
    ada.say("just between us")
    bob.page.locator("#dms .conv").click()
    bob.expect_message("just between us")
    bob.say("agreed")
    ada.expect_message("agreed")
    # A direct conversation can also start from a handle typed in the sidebar.
    cy_sees = cy.page.locator("#account-only")
    expect(cy_sees).to_contain_text("need an account")
    expect(cy.page.locator("#dm-form")).to_be_hidden()
    expect(cy.page.locator("#group-form")).to_be_hidden()

    # A group by consent: Ada creates it and invites Bob by handle; nothing reaches Bob
    # before he accepts; then the group's history and new messages do.
    group_name = unique("ops")
    ada.page.fill("#group-name", group_name)
    ada.page.click("#group-form button")
    ada.page.locator("#groups .conv", has_text=group_name).click()
    expect(ada.page.locator("#conv-title")).to_have_text(f"Group: {group_name}")
    ada.say("before Bob came")
    ada.page.fill("#invite-member", f"@{bob_handle}")
    ada.page.click("#invite-form button")
    invitation = bob.page.locator("#invitations li", has_text=group_name)
    expect(invitation).to_contain_text(f"@{ada_handle}")
    expect(bob.page.locator("#groups .conv")).to_have_count(0)
    invitation.locator("button.accept").click()
    expect(invitation).to_have_count(0)
    bob.page.locator("#groups .conv", has_text=group_name).click()
    bob.expect_message("before Bob came")  # the group's history, once a member
    bob.say("Bob in the group")
    ada.expect_message("Bob in the group")
    expect(ada.page.locator("#members li")).to_have_count(2)
    expect(ada.page.locator("#messages .system", has_text="joined")).to_have_count(1)
    expect(cy.page.locator("#groups .conv")).to_have_count(0)
    assert "Bob in the group" not in cy.messages()

    # Only the creator renames and removes; members see both.
    expect(bob.page.locator("#rename-form")).to_be_hidden()
    renamed = unique("ops-renamed")
    ada.page.fill("#group-rename", renamed)
    ada.page.click("#rename-form button")
    expect(bob.page.locator("#conv-title")).to_have_text(f"Group: {renamed}")
    expect(bob.page.locator("#messages .system", has_text="renamed")).to_have_count(1)
    ada.page.locator("#members li", has_text=f"@{bob_handle}").locator("button.remove").click()
    expect(bob.page.locator("#groups .conv")).to_have_count(0)
    expect(ada.page.locator("#members li")).to_have_count(1)
    ada.say("after Bob left")
    ada.expect_message("after Bob left")
    assert "after Bob left" not in bob.messages()


def test_a_declined_invitation_delivers_nothing(tabs: NewTab, web_stack: WebStack) -> None:
    ada = tabs("ada").sign_in(account(web_stack, handle_for("ada")))
    bob_handle = handle_for("bob")
    bob = tabs("bob").sign_in(account(web_stack, bob_handle))
    group_name = unique("secret")
    ada.page.fill("#group-name", group_name)
    ada.page.click("#group-form button")
    ada.page.locator("#groups .conv", has_text=group_name).click()
    ada.page.fill("#invite-member", bob_handle)
    ada.page.click("#invite-form button")
    invitation = bob.page.locator("#invitations li", has_text=group_name)
    invitation.locator("button.decline").click()
    expect(invitation).to_have_count(0)
    expect(ada.page.locator("#messages .system", has_text="declined")).to_have_count(1)
    ada.say("only for members")
    ada.expect_message("only for members")
    expect(bob.page.locator("#groups .conv")).to_have_count(0)


def test_scrolling_back_pages_through_older_history(tabs: NewTab) -> None:
    room = unique("room")
    ada = tabs("ada").as_guest("Ada")
    ada.join(room)
    texts = [f"message {i:03d}" for i in range(60)]
    for text in texts:
        ada.say(text)
    ada.expect_message(texts[-1])

    bob = tabs("bob").as_guest("Bob")
    bob.join(room)
    bob.expect_message(texts[-1])
    expect(bob.page.locator("#messages li.message")).to_have_count(50)  # one page: the newest 50
    assert sorted(bob.messages()) == texts[10:]
    older = bob.page.locator("#older")
    expect(older).to_be_visible()
    older.click()
    expect(bob.page.locator("#messages li.message")).to_have_count(60)
    expect(older).to_be_hidden()  # nothing older left
    # Every message once, in the backend's time order (messages sent within the same
    # millisecond are ordered as history orders them, by sender and id).
    assert sorted(bob.messages()) == texts
    times = bob.page.locator("#messages time").evaluate_all(
        "nodes => nodes.map((n) => Date.parse(n.getAttribute('datetime')))"
    )
    assert times == sorted(times)


def test_reconnects_after_network_loss_and_fills_the_gap(tabs: NewTab, web_stack: WebStack) -> None:
    _, (ada, bob) = guests_in_a_room(tabs, "Ada", "Bob")
    ada.say("before the outage")
    bob.expect_message("before the outage")

    # The outage: Bob's connection drops, his browser goes offline, and until the network is
    # back the gateway refuses his handshakes (the browser's offline mode does not reliably
    # stop WebSockets, so the refusal is made where it cannot be missed).
    stack = web_stack.stack.stack
    broker = web_stack.stack.gateway.broker
    keys = stack.static_credentials.credentials
    bob_id = bob.client_id
    bob_session = bob.session_id
    hidden: dict[str, Credential] = {}

    def network_down() -> bool:  # runs on the stack's loop: no Playwright calls in here
        hidden.update({k: c for k, c in keys.items() if c.principal.identifier == bob_id})
        for key in hidden:
            del keys[key]
        conn = broker.connections.get(bob_session)
        if conn is not None:
            broker.close(conn, DisconnectReason.CONNECTION_LOST)
        return bool(hidden) and conn is not None

    assert web_stack.stack.call(network_down)
    expect(bob.page.locator("#conn-status")).to_contain_text("retrying in")
    # Offline only now: Chromium's offline emulation can hold back the close of a WebSocket the
    # server ended, which would leave the page believing it is still connected.
    bob.context.set_offline(True)
    ada.say("said during the outage")
    ada.expect_message("said during the outage")
    assert "said during the outage" not in bob.messages()

    # Back online: Bob reconnects at once (the browser's "online" event), subscribes again
    # and fills the gap from history.
    web_stack.stack.call(lambda: keys.update(hidden))
    bob.context.set_offline(False)
    bob.wait_online()
    bob.expect_message("said during the outage")
    ada.say("after the outage")
    bob.expect_message("after the outage")
    assert bob.messages() == ["before the outage", "said during the outage", "after the outage"]
    expect(bob.online().filter(has_text="Ada")).to_have_count(1)
    # The refused handshakes during the outage are the only errors this tab may log.
    bob.console_errors[:] = [e for e in bob.console_errors if "WebSocket" not in e]


def test_the_page_runs_under_a_strict_content_security_policy(tabs: NewTab) -> None:
    tab = tabs("csp")
    response = tab.page.goto(tab.url)
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-eval" not in csp and "unsafe-inline" not in csp
    tab.page.click("#guest")
    tab.wait_online()  # the whole app (mqtt.js included) works under it: no console errors

    # The browser enforces it: neither a string compiled as code (what eval does) nor an
    # injected inline script runs. Both are started from the page's own tasks, as an attack
    # would be; Playwright's evaluate itself is exempt from the policy.
    violation = """(start) => new Promise((resolve) => {
        document.addEventListener("securitypolicyviolation",
            (e) => resolve([e.effectiveDirective, e.blockedURI]), { once: true });
        start();
    })"""
    blocked = tab.page.evaluate(
        violation.replace("start()", 'setTimeout("window.evaluated = true", 0)')
    )
    assert blocked == ["script-src", "eval"]
    blocked = tab.page.evaluate(
        violation.replace(
            "start()",
            'const s = document.createElement("script");'
            ' s.textContent = "window.injected = true"; document.body.append(s)',
        )
    )
    assert blocked == ["script-src-elem", "inline"]
    assert tab.page.evaluate("() => window.evaluated === undefined")
    assert tab.page.evaluate("() => window.injected === undefined")
    # Those two refusals were provoked here; anything else would fail the test.
    provoked = [e for e in tab.console_errors if "Content Security Policy" in e]
    assert len(provoked) >= 1
    tab.console_errors[:] = [e for e in tab.console_errors if e not in provoked]


def test_a_browser_sees_what_iotchat_send_says_from_the_terminal(
    tabs: NewTab, web_stack: WebStack, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    room = unique("room")
    ada = tabs("ada").as_guest("Ada")
    ada.join(room)
    env = {
        **os.environ,
        "IOTCHAT_STACK_FILE": str(web_stack.stack.stack.stack_file),
        "IOTCHAT_SESSION_FILE": str(tmp_path / "terminal-sessions.json"),
    }
    sent = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "send",
            "--room",
            room,
            "--name",
            "Term",
            "from a shell",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    line = ada.expect_message("from a shell")
    # Shown as the backend knows the terminal's guest, never by the name it claims.
    expect(line.locator(".sender")).to_contain_text("@guest-")
    # And the other way: what the browser says reaches a terminal listener's history.
    ada.say("back to the shell")
    heard = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import json, sys; from cli.terminal import open_session, connect; "
                "from client import events; "
                f"c = connect(open_session(None), 'mqtt5'); c.join({room!r}); "
                "e = c.wait_for(lambda e: isinstance(e, events.History), 20); c.stop(); "
                "print(json.dumps([m.text for m in e.messages]))"
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert heard.returncode == 0, heard.stderr
    assert "back to the shell" in heard.stdout and "from a shell" in heard.stdout
